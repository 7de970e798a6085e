/// An organization's all-time counts (`RedisKeys.counts`, a hash): its events stored, per kind (`stored:<kind>`),
/// and not stored, per reason (`rejected:<reason>`). The workers count them as they acknowledge the entries
/// (`Acknowledgement`, exact under retries); `operyn-admin orgs` reads them. The one description of the fields.
public struct OrganizationCounters: Sendable, Equatable {
    /// Every field and its count.
    public var counts: [String: Int]

    /// The field counting `kind`'s events stored.
    public static func storedField(_ kind: EventKind) -> String { "stored:\(kind.rawValue)" }
    /// The field counting events refused for `reason` (`Rejection.quotaReason`).
    public static func rejectedField(_ reason: String) -> String { "rejected:\(reason)" }

    /// Counters from the hash's fields; values that are not whole numbers are left out.
    public init(hash: [String: String]) { counts = hash.compactMapValues { Int($0) } }

    /// Whether `field` counts stored events.
    public static func isStored(_ field: String) -> Bool { field.hasPrefix("stored:") }

    /// Events stored, of every kind.
    public var stored: Int { counts.filter { Self.isStored($0.key) }.values.reduce(0, +) }
    /// Events not stored, for every reason.
    public var rejected: Int { counts.filter { $0.key.hasPrefix("rejected:") }.values.reduce(0, +) }

    /// `org`'s counters.
    public static func read(_ org: String, redis: RedisClient, keys: RedisKeys) async throws(RedisError) -> OrganizationCounters {
        OrganizationCounters(hash: try await redis.send(HGETALL(keys.counts(org: org))))
    }
}
