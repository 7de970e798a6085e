import Logging
import ServiceLifecycle

/// The consumer group's backlog per stream: entries not yet delivered (lag) and delivered but not
/// acknowledged (pending). The gateway's backpressure and the worker's metrics read it.
public struct StreamBacklog: Sendable, Equatable {
    /// Entries not yet delivered to any consumer, per kind.
    public var lag: [EventKind: Int] = [:]
    /// Entries delivered and not yet acknowledged, per kind.
    public var pending: [EventKind: Int] = [:]

    /// Lag plus pending over every stream.
    public var total: Int { lag.values.reduce(0, +) + pending.values.reduce(0, +) }

    /// Reads `XINFO GROUPS` and `XLEN` on every stream; a stream without the group counts its whole length as lag.
    /// The lag is never taken above the stream's length minus its pending entries: Redis derives it from counters
    /// (`entries-added` − `entries-read`) that it cannot always tell (null) and that can go wrong after an AOF
    /// reload under faults (seen in the soak: a lag of 110 604 on a stream holding nothing), while undelivered
    /// entries are always in the stream.
    public static func read(redis: RedisClient, keys: RedisKeys) async throws(RedisError) -> StreamBacklog {
        var backlog = StreamBacklog()
        for kind in EventKind.allCases {
            let stream = keys.stream(kind)
            let groups: [[String: RedisReply]]
            do {
                groups = try await redis.send(XINFOGROUPS(stream))
            } catch  where error.serverPrefix == "ERR" {
                backlog.lag[kind] = 0  // no such stream yet
                backlog.pending[kind] = 0
                continue
            }
            let length = try await redis.send(XLEN(stream))
            if let group = groups.first(where: { $0["name"]?.string == keys.consumerGroup }) {
                let pending = Int(group["pending"]?.integer ?? 0)
                let bound = max(0, length - pending)
                backlog.pending[kind] = pending
                backlog.lag[kind] = group["lag"]?.integer.map { min(max(0, Int($0)), bound) } ?? bound
            } else {
                backlog.pending[kind] = 0
                backlog.lag[kind] = length
            }
        }
        return backlog
    }
}

/// Reads the backlog on a fixed interval until shutdown and hands each reading to `onReading`; logs
/// Redis's durability settings the first time Redis answers. The gateway's backpressure and the worker's
/// lag gauges both run on it.
public struct StreamBacklogMonitor: Service {
    let redis: RedisClient
    let keys: RedisKeys
    let intervalMilliseconds: Int
    let logger: Logger
    let onReading: @Sendable (StreamBacklog) -> Void

    /// A monitor reading every `intervalMilliseconds`.
    public init(
        redis: RedisClient, keys: RedisKeys, intervalMilliseconds: Int, logger: Logger, onReading: @escaping @Sendable (StreamBacklog) -> Void
    ) {
        self.redis = redis
        self.keys = keys
        self.intervalMilliseconds = intervalMilliseconds
        self.logger = logger
        self.onReading = onReading
    }

    public func run() async throws {
        var durabilityLogged = false
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            if let reading = try? await StreamBacklog.read(redis: redis, keys: keys) {
                onReading(reading)
                if !durabilityLogged, let durability = try? await RedisDurability.read(from: redis) {
                    durability.log(to: logger)
                    logger.info("redis.ready", metadata: ["redis.url": "\(redis.configuration.redactedURL)", "redis.prefix": "\(keys.prefix)"])
                    durabilityLogged = true
                }
            }
            try? await Task.sleep(for: .milliseconds(intervalMilliseconds))
        }
    }
}
