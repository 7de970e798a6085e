import Shared

/// Enforces each organization's service quota in Redis sets, atomically across all workers.
///
/// A service already in the organization's set always passes; a new one is added only while the set
/// holds fewer services than the limit (`ServiceLimit`: the organization's own setting, else 5 for the
/// `default` organization, else `defaultLimit`).
struct QuotaEnforcer: Sendable {
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
        try await redis.send(
            AdmitService(service, services: keys.services(org: org), settings: keys.settings(org: org), fallbackLimit: fallbackLimit(for: org)))
    }
}

/// Admits a service to an organization's set if it is there already or the set holds fewer than the organization's
/// limit (its settings hash's `service_limit`, else `fallbackLimit`), in one script: true when admitted.
struct AdmitService: RedisScriptCommand {
    /// KEYS[1] the services set, KEYS[2] the settings hash; ARGV[1] the service, ARGV[2] the limit without an override.
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

    var arguments: [[UInt8]]

    init(_ service: String, services: String, settings: String, fallbackLimit: Int) {
        arguments = Self.invocation(keys: [services, settings], arguments: [Array(service.utf8), Array(String(fallbackLimit).utf8)])
    }

    func response(from reply: RedisReply) throws(RedisError) -> Bool { try reply.expectInteger("service admission") == 1 }
}
