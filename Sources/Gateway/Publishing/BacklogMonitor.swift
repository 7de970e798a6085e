import Logging
import ServiceLifecycle
import Shared
import Synchronization

/// The consumer group's backlog (entries not yet delivered plus pending), read in the background so
/// requests only load an atomic.
final class Backlog: Sendable {
    private let value = Atomic<Int>(0)
    /// Above this the gateway answers 503.
    let highWater: Int

    init(highWater: Int) { self.highWater = highWater }

    /// The latest reading.
    var current: Int { value.load(ordering: .relaxed) }

    /// Whether new events should be refused.
    var isOverHighWater: Bool { current > highWater }

    func update(_ reading: Int) { value.store(reading, ordering: .relaxed) }
}

/// Refreshes a `Backlog` from `XINFO GROUPS` on every stream.
struct BacklogMonitor: Service {
    let redis: RedisClient
    let keys: RedisKeys
    let backlog: Backlog
    let intervalMilliseconds: Int
    let logger: Logger

    /// Refreshes the reading until shutdown; logs Redis's durability settings the first time Redis answers.
    func run() async throws {
        var durabilityLogged = false
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            if let reading = try? await StreamBacklog.read(redis: redis, keys: keys).total {
                backlog.update(reading)
                if !durabilityLogged, let durability = try? await RedisDurability.read(from: redis) {
                    durability.log(to: logger)
                    logger.info("gateway.redis.ready", metadata: ["redis.url": "\(redis.configuration.redactedURL)", "redis.prefix": "\(keys.prefix)"])
                    durabilityLogged = true
                }
            }
            try? await Task.sleep(for: .milliseconds(intervalMilliseconds))
        }
    }
}
