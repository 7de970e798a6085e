/// Every Redis key and name the project uses, derived from `OPERYN_KEY_PREFIX` in this one place.
/// docs/operations.md lists them for operators using `redis-cli`.
public struct RedisKeys: Sendable, Equatable {
    /// The prefix of every key (default `operyn`).
    public let prefix: String

    /// Keys under `prefix`.
    public init(prefix: String = "operyn") { self.prefix = prefix }

    /// `<prefix>:stream:<kind>`: the stream the gateway appends events of `kind` to.
    public func stream(_ kind: EventKind) -> String { "\(prefix):stream:\(kind.rawValue)" }

    /// `<prefix>-workers`: the consumer group every worker reads through.
    public var consumerGroup: String { "\(prefix)-workers" }

    /// `<prefix>:stream:deadletter`: entries that failed processing too often, with their reason.
    public var deadLetterStream: String { "\(prefix):stream:deadletter" }

    /// `<prefix>:stream:rejected`: events refused by the service quota, with their reason (capped).
    public var rejectedStream: String { "\(prefix):stream:rejected" }

    /// `<prefix>:attempts`: how often processing each pending entry has failed (hash; field `<kind>:<entry id>`).
    public var attempts: String { "\(prefix):attempts" }

    /// `<prefix>:org:<org>:services`: the set of services an organization has used.
    public func services(org: String) -> String { "\(prefix):org:\(org):services" }

    /// `<prefix>:org:<org>:settings`: per-organization settings (hash; field `service_limit`).
    public func settings(org: String) -> String { "\(prefix):org:\(org):settings" }

    /// `<prefix>:org:<org>:counts`: per-organization counters (hash; `stored:<kind>`, `rejected:<reason>`).
    public func counts(org: String) -> String { "\(prefix):org:\(org):counts" }

    /// `<prefix>:org:<org>:keys`: an organization's API keys (hash; key id → SHA-256 of the key, hex).
    public func apiKeys(org: String) -> String { "\(prefix):org:\(org):keys" }

    /// `<prefix>:apikey:<sha256>`: one API key's record (hash; `id`, `org`, `created_at`, optional `expires_at`), found by
    /// the SHA-256 of the key; the key itself is never stored.
    public func apiKey(sha256 digest: String) -> String { "\(prefix):apikey:\(digest)" }
}

/// Organization ids: `^[A-Za-z0-9_-]{1,64}$`; omitted means `default`.
public enum OrganizationID {
    /// The organization of requests without `x-organization-id`.
    public static let `default` = "default"

    /// Whether `text` is a valid organization id, checked before any key is built from it.
    public static func isValid(_ text: some StringProtocol) -> Bool {
        let bytes = text.utf8
        guard (1...64).contains(bytes.count) else { return false }
        return bytes.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
                true
            default: false
            }
        }
    }
}
