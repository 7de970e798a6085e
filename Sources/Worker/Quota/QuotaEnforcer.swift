import Shared

/// Enforces each organization's service quota in Redis sets, atomically across all workers.
///
/// A service already in the organization's set always passes; a new one is added only while the set
/// holds fewer services than the limit (`ServiceLimit`: the organization's own setting, else 5 for the
/// `default` organization, else `defaultLimit`).
struct QuotaEnforcer: Sendable {
    /// KEYS[1] the services set, KEYS[2] the settings hash; ARGV[1] the service, ARGV[2] the default limit.
    static let script = RedisScript(
        """
        if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
        local limit = tonumber(redis.call('HGET', KEYS[2], '\(ServiceLimit.settingsField)') or ARGV[2])
        if redis.call('SCARD', KEYS[1]) < limit then
            redis.call('SADD', KEYS[1], ARGV[1])
            return 1
        end
        return 0
        """
    )

    let redis: RedisClient
    let keys: RedisKeys
    /// The limit of organizations other than `default` without an override.
    let defaultLimit: Int

    /// The limit applied to `org` when Redis holds no override.
    func fallbackLimit(for org: String) -> Int {
        ServiceLimit.fallback(for: org, deploymentDefault: defaultLimit)
    }

    /// Whether `service` may write to `org`, admitting it when there is room.
    func admit(org: String, service: String) async throws(RedisError) -> Bool {
        let reply = try await redis.run(
            Self.script,
            keys: [keys.services(org: org), keys.settings(org: org)],
            arguments: [Array(service.utf8), Array(String(fallbackLimit(for: org)).utf8)]
        )
        return reply.integer == 1
    }
}
