import Logging
import ServiceLifecycle

/// The consumer group's backlog per stream: entries not yet delivered (lag) and delivered but not
/// acknowledged (pending), and about how many events they hold. The gateway's backpressure and the worker's metrics
/// read it.
public struct StreamBacklog: Sendable, Equatable {
    /// Entries not yet delivered to any consumer, per kind.
    public var lag: [EventKind: Int] = [:]
    /// Entries delivered and not yet acknowledged, per kind.
    public var pending: [EventKind: Int] = [:]
    /// Events per entry, per kind: the mean `count` of the stream's newest entries (`sampleSize` of them; a
    /// version-1 entry counts 1). An entry holds one request's events, or a tick's coalesced requests, so the newest
    /// entries tell the shape of the backlog without reading all of it. 1 for an empty stream.
    public var eventsPerEntry: [EventKind: Double] = [:]
    /// Lag plus pending of each stream that has either, in entries.
    public var entriesByStream: [String: Int] = [:]

    /// Lag plus pending over every stream, in entries.
    public var total: Int { lag.values.reduce(0, +) + pending.values.reduce(0, +) }

    /// Lag plus pending over every stream, in events (estimated with `eventsPerEntry`): what the gateway's
    /// high-water mark counts.
    public var totalEvents: Int { EventKind.allCases.reduce(0) { $0 + lagEvents($1) + pendingEvents($1) } }

    /// The lag of `kind`'s stream in events (estimated).
    public func lagEvents(_ kind: EventKind) -> Int { Self.events(inEntries: lag[kind] ?? 0, perEntry: eventsPerEntry[kind] ?? 1) }

    /// The pending entries of `kind`'s stream in events (estimated).
    public func pendingEvents(_ kind: EventKind) -> Int { Self.events(inEntries: pending[kind] ?? 0, perEntry: eventsPerEntry[kind] ?? 1) }

    /// About how many events `entries` entries hold at `perEntry` events each.
    public static func events(inEntries entries: Int, perEntry: Double) -> Int { Int((Double(entries) * perEntry).rounded()) }

    /// How many of the newest entries `eventsPerEntry` reads.
    public static let sampleSize = 64

    /// The mean events per entry of the newest entries of `stream`.
    public static func eventsPerEntry(redis: RedisClient, stream: String) async throws(RedisError) -> Double {
        let sample = try await redis.send(SampleStream(stream, entries: sampleSize))
        guard sample.entries > 0 else { return 1 }
        return max(1, Double(sample.events) / Double(sample.entries))
    }

    /// How a reader learns each stream's events per entry.
    public enum Shape: Sendable {
        /// Samples the newest entries (a script that reads them) and publishes the figures to
        /// `RedisKeys.backlogShape`: the workers, whose Redis user may read entries.
        case sampleAndPublish
        /// Reads what the workers published: the gateways, whose Redis user may not read entries. Where `own` (the
        /// gateway's `AppendShape`) says more events per entry, that is taken instead, so a backlog whose workers
        /// were stopped before they published is not counted at 1 per entry; 1 per entry when neither tells.
        case published(own: AppendShape? = nil)
    }

    /// Reads `XINFO GROUPS` and `XLEN` on every stream, and, where the backlog is not empty, the events per entry as
    /// `shape` says; a stream without the group counts its whole length as lag.
    /// The lag is never taken above the stream's length minus its pending entries: Redis derives it from counters
    /// (`entries-added` − `entries-read`) that it cannot always tell (null) and that can go wrong after an AOF
    /// reload under faults (seen in the soak: a lag of 110 604 on a stream holding nothing), while undelivered
    /// entries are always in the stream.
    /// In a cluster each kind's figures are the sums over its partitions (events per entry weighted by entries).
    public static func read(redis: RedisClient, keys: RedisKeys, shape: Shape = .sampleAndPublish) async throws(RedisError) -> StreamBacklog {
        var backlog = StreamBacklog()
        var published: [String: String] = [:]
        var own: AppendShape?
        if case .published(let appended) = shape {
            published = try await redis.send(HGETALL(keys.backlogShape))
            own = appended
        }
        var sampled: [String: String] = [:]
        for kind in EventKind.allCases {
            var (lag, pending, events) = (0, 0, 0.0)
            for stream in keys.streams(kind) {
                let reading = try await read(redis: redis, stream: stream, group: keys.consumerGroup)
                lag += reading.lag
                pending += reading.pending
                guard reading.lag + reading.pending > 0 else { continue }
                backlog.entriesByStream[stream] = reading.lag + reading.pending
                let perEntry: Double
                switch shape {
                case .published:
                    perEntry = max(1, published[stream].flatMap(Double.init) ?? 1, own?.eventsPerEntry(kind) ?? 1)
                case .sampleAndPublish:
                    perEntry = try await eventsPerEntry(redis: redis, stream: stream)
                    sampled[stream] = String(perEntry)
                }
                events += Double(reading.lag + reading.pending) * perEntry
            }
            backlog.lag[kind] = lag
            backlog.pending[kind] = pending
            backlog.eventsPerEntry[kind] = lag + pending > 0 ? max(1, events / Double(lag + pending)) : 1
        }
        if !sampled.isEmpty { _ = try await redis.send(HSET(keys.backlogShape, fields: sampled.map { ($0.key, $0.value) })) }
        return backlog
    }

    /// One stream's lag and pending entries.
    public static func read(redis: RedisClient, stream: String, group name: String) async throws(RedisError) -> (lag: Int, pending: Int) {
        let groups: [[String: RedisReply]]
        do {
            groups = try await redis.send(XINFOGROUPS(stream))
        } catch  where error.serverPrefix == "ERR" {
            return (0, 0)  // no such stream yet
        }
        let length = try await redis.send(XLEN(stream))
        var (lag, pending) = (length, 0)
        if let group = groups.first(where: { $0["name"]?.string == name }) {
            pending = Int(group["pending"]?.integer ?? 0)
            let bound = max(0, length - pending)
            lag = group["lag"]?.integer.map { min(max(0, Int($0)), bound) } ?? bound
        }
        return (lag, pending)
    }
}

/// Reads the backlog on a fixed interval until shutdown and hands each reading to `onReading`; logs
/// Redis's durability settings the first time Redis answers. The gateway's backpressure and the worker's
/// lag gauges both run on it.
public struct StreamBacklogMonitor: Service {
    let redis: RedisClient
    let keys: RedisKeys
    let shape: StreamBacklog.Shape
    let intervalMilliseconds: Int
    let logger: Logger
    let onReading: @Sendable (StreamBacklog) -> Void

    /// A monitor reading every `intervalMilliseconds`.
    public init(
        redis: RedisClient, keys: RedisKeys, shape: StreamBacklog.Shape, intervalMilliseconds: Int, logger: Logger,
        onReading: @escaping @Sendable (StreamBacklog) -> Void
    ) {
        self.redis = redis
        self.shape = shape
        self.keys = keys
        self.intervalMilliseconds = intervalMilliseconds
        self.logger = logger
        self.onReading = onReading
    }

    public func run() async throws {
        var durabilityLogged = false
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            if let reading = try? await StreamBacklog.read(redis: redis, keys: keys, shape: shape) {
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

/// Reads the newest `entries` entries of a stream inside Redis and answers how many it read and the events they
/// hold, from their `count` fields: only two numbers cross the network.
public struct SampleStream: RedisScriptCommand {
    public static let script = RedisScript(
        """
        local entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[1])
        local events = 0
        for _, entry in ipairs(entries) do
            local fields, count = entry[2], 1
            for i = 1, #fields - 1, 2 do
                if fields[i] == 'count' then count = tonumber(fields[i + 1]) or 1 end
            end
            events = events + count
        end
        return {#entries, events}
        """
    )

    public var arguments: [[UInt8]]

    /// Samples `stream`'s newest `entries` entries.
    public init(_ stream: String, entries: Int) {
        arguments = Self.invocation(keys: [stream], arguments: [Array(String(entries).utf8)])
    }

    public func response(from reply: RedisReply) throws(RedisError) -> (entries: Int, events: Int) {
        let values = try reply.expectArray("stream sample")
        guard values.count == 2 else { throw .unexpected("stream sample", reply) }
        return (try values[0].expectInteger("stream sample"), try values[1].expectInteger("stream sample"))
    }
}
