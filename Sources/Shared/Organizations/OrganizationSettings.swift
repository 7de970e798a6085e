/// An organization's own settings (`RedisKeys.settings`, a hash), set with `operyn-admin orgs set-limit`,
/// `set-rate` and `set-retention`, and read by the workers (the quota script, retention), the gateways (rate
/// limits) and `GET /usage`. Each rule states its fields beside itself; this record reads and writes them together:
///
/// | fields | rule |
/// |---|---|
/// | `service_limit` | `ServiceLimit` |
/// | `events_per_second`, `events_burst`, `bytes_per_second`, `bytes_burst` | `RateLimit` (any of them set: an override) |
/// | `retention_days`, `retention_days:<kind>` | `RetentionPolicy` (the organization also listed in `retentionOrganizations`) |
public struct OrganizationSettings: Sendable, Equatable {
    /// Its service limit, if it has its own.
    public var serviceLimit: Int?
    /// Its rate limit, if it has its own.
    public var rateLimit: RateLimit?
    /// Its retention in days, for every kind (key `nil`) and for one kind.
    public var retentionDays: [EventKind?: Int]

    public init(serviceLimit: Int? = nil, rateLimit: RateLimit? = nil, retentionDays: [EventKind?: Int] = [:]) {
        self.serviceLimit = serviceLimit
        self.rateLimit = rateLimit
        self.retentionDays = retentionDays
    }

    /// The settings the hash's fields hold; malformed values read as absent.
    public init(hash: [String: String]) {
        serviceLimit = hash[ServiceLimit.settingsField].flatMap { Int($0) }
        rateLimit = RateLimit.settingsFields.contains { hash[$0] != nil } ? RateLimit.of(settings: hash, fallback: .none) : nil
        retentionDays = [:]
        for kind in [nil] + EventKind.allCases.map(Optional.some) {
            if let days = hash[RetentionPolicy.field(kind)].flatMap({ Int($0) }) { retentionDays[kind] = days }
        }
    }

    /// `org`'s settings.
    public static func read(_ org: String, redis: RedisClient, keys: RedisKeys) async throws(RedisError) -> OrganizationSettings {
        OrganizationSettings(hash: try await redis.send(HGETALL(keys.settings(org: org))))
    }

    /// Gives `org` a rate limit of its own, or (`nil`) removes it: every gateway applies it within its cache time.
    public static func setRateLimit(_ limit: RateLimit?, of org: String, redis: RedisClient, keys: RedisKeys) async throws(RedisError) {
        if let limit {
            _ = try await redis.send(HSET(keys.settings(org: org), fields: limit.settingsValues))
        } else {
            _ = try await redis.send(HDEL(keys.settings(org: org), fields: RateLimit.settingsFields))
        }
    }

    /// Gives `org` a retention of its own for `kind` (every kind: `nil`), or (`days` `nil`) removes it; the
    /// organization stays listed for the retention run while it has any.
    public static func setRetention(
        _ days: Int?, of org: String, kind: EventKind?, redis: RedisClient, keys: RedisKeys
    ) async throws(RedisError) {
        let key = keys.settings(org: org)
        if let days {
            _ = try await redis.send(HSET(key, fields: [(RetentionPolicy.field(kind), String(days))]))
            _ = try await redis.send(SADD(keys.retentionOrganizations, members: [org]))
        } else {
            _ = try await redis.send(HDEL(key, fields: [RetentionPolicy.field(kind)]))
            if try await read(org, redis: redis, keys: keys).retentionDays.isEmpty {
                _ = try await redis.send(SREM(keys.retentionOrganizations, members: [org]))
            }
        }
    }
}
