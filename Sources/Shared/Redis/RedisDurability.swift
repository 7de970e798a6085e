import Logging

/// What the Redis server is configured for, as far as a 202 depends on it.
public struct RedisDurability: Sendable, Equatable {
    /// `appendonly`: whether the AOF is on.
    public var appendOnly: String
    /// `appendfsync`: `always`, `everysec` or `no`.
    public var appendFsync: String
    /// `maxmemory-policy`: must be `noeviction`, or streams can be evicted.
    public var maxMemoryPolicy: String

    /// Reads the three settings with `CONFIG GET`.
    public static func read(from client: RedisClient) async throws(RedisError) -> RedisDurability {
        let values = try await client.pipeline([CONFIGGET("appendonly"), CONFIGGET("appendfsync"), CONFIGGET("maxmemory-policy")])
        func value(_ index: Int, _ name: String) -> String { (try? values[index].get()[name]) ?? "unknown" }
        return RedisDurability(appendOnly: value(0, "appendonly"), appendFsync: value(1, "appendfsync"), maxMemoryPolicy: value(2, "maxmemory-policy"))
    }

    /// Problems an operator should know about; empty when accepted events survive a Redis restart.
    public var warnings: [String] {
        var warnings: [String] = []
        if appendOnly != "yes" {
            warnings.append("appendonly is '\(appendOnly)': accepted events since the last snapshot are lost if Redis restarts")
        } else if appendFsync == "no" {
            warnings.append("appendfsync is 'no': the OS decides when accepted events reach disk")
        }
        if maxMemoryPolicy != "noeviction" {
            warnings.append("maxmemory-policy is '\(maxMemoryPolicy)': Redis may evict streams holding accepted events; set noeviction")
        }
        return warnings
    }

    /// Logs the settings at info, and each warning.
    public func log(to logger: Logger) {
        logger.info(
            "redis.durability",
            metadata: ["redis.appendonly": "\(appendOnly)", "redis.appendfsync": "\(appendFsync)", "redis.maxmemory_policy": "\(maxMemoryPolicy)"]
        )
        for warning in warnings { logger.warning("redis.durability.warning", metadata: ["redis.warning": "\(warning)"]) }
    }
}
