/// How long stored events are kept: a default (`OPERYN_RETENTION_DAYS`, `nil`: for ever) and overrides per
/// organization, for every kind or for one, set with `operyn-admin orgs set-retention` and kept in Redis (fields
/// `retention_days` and `retention_days:<kind>` of the organization's settings hash, the organization listed in
/// `RedisKeys.retentionOrganizations`).
///
/// An event expires once `days` whole days have passed since it was accepted (`received_at`).
public struct RetentionPolicy: Sendable, Equatable {
    /// Days kept when an organization has no override; `nil` keeps everything.
    public var defaultDays: Int?
    /// Per organization: days for every kind (key `nil`) and for one kind.
    public var overrides: [String: [EventKind?: Int]]

    /// The longest retention that can be set, 100 years.
    public static let maximumDays = 36_500
    /// The settings hash field of an override: for every kind, or for `kind`.
    public static func field(_ kind: EventKind?) -> String { kind.map { "retention_days:\($0.rawValue)" } ?? "retention_days" }
    /// Every field an override may use.
    public static let fields = [field(nil)] + EventKind.allCases.map { field($0) }

    public init(defaultDays: Int? = nil, overrides: [String: [EventKind?: Int]] = [:]) {
        self.defaultDays = defaultDays
        self.overrides = overrides
    }

    /// The days `organization`'s events of `kind` are kept (`nil`: for ever): its override for the kind, else its
    /// override for every kind, else the default.
    public func days(organization: String, kind: EventKind) -> Int? {
        if let own = overrides[organization] { return own[kind] ?? own[nil] ?? defaultDays }
        return defaultDays
    }

    /// Where `days(organization:kind:)` comes from: `kind` (its override for the kind), `organization` (its
    /// override for every kind) or `default`.
    public func source(organization: String, kind: EventKind) -> String {
        if overrides[organization]?[kind] != nil { return "kind" }
        if overrides[organization]?[nil] != nil { return "organization" }
        return "default"
    }

    /// The longest retention in force for `kind` (`nil`: some of it is kept for ever): whole days older than this
    /// can be dropped for every organization at once.
    public func longest(_ kind: EventKind) -> Int? {
        guard var longest = defaultDays else { return nil }
        for own in overrides.values {
            if let days = own[kind] ?? own[nil] { longest = max(longest, days) }
        }
        return longest
    }

    /// The organizations whose events of `kind` expire sooner than `longest(kind)` by their override.
    public func shorter(_ kind: EventKind) -> [(organization: String, days: Int)] {
        let longest = longest(kind)
        return overrides.keys.sorted().compactMap { organization in
            guard let days = days(organization: organization, kind: kind) else { return nil }
            if let longest, days >= longest { return nil }
            return (organization, days)
        }
    }

    /// The instant before which events kept `days` have expired at `now`.
    public static func cutoff(days: Int, now: Timestamp) -> Timestamp {
        Timestamp(milliseconds: now.milliseconds - Int64(days) * 86_400_000)
    }

    /// The overrides kept in Redis, with `defaultDays`: the organizations listed in `retentionOrganizations`, each
    /// one's settings read in one pipeline.
    public static func read(redis: RedisClient, keys: RedisKeys, defaultDays: Int?) async throws(RedisError) -> RetentionPolicy {
        let organizations = try await redis.send(SMEMBERS(keys.retentionOrganizations)).sorted()
        var policy = RetentionPolicy(defaultDays: defaultDays)
        guard !organizations.isEmpty else { return policy }
        let results = try await redis.pipeline(organizations.map { HMGET(keys.settings(org: $0), fields: fields) })
        for (organization, result) in zip(organizations, results) {
            let own = overrides(from: try result.get())
            if !own.isEmpty { policy.overrides[organization] = own }
        }
        return policy
    }

    /// An organization's overrides from the values of `fields`, in their order.
    private static func overrides(from values: [String?]) -> [EventKind?: Int] {
        var own: [EventKind?: Int] = [:]
        for (kind, value) in zip([nil] + EventKind.allCases.map(Optional.some), values) {
            if let days = value.flatMap({ Int($0) }) { own[kind] = days }
        }
        return own
    }

    /// One organization's overrides (for `GET /usage` and `orgs show`), with `defaultDays`.
    public static func read(redis: RedisClient, keys: RedisKeys, organization: String, defaultDays: Int?) async throws(RedisError) -> RetentionPolicy {
        let own = overrides(from: try await redis.send(HMGET(keys.settings(org: organization), fields: fields)))
        return RetentionPolicy(defaultDays: defaultDays, overrides: own.isEmpty ? [:] : [organization: own])
    }

    /// `organization`'s retention per kind as JSON: `{"logs": {"days": 30, "source": "default"}, …}`, days `null`
    /// when kept for ever.
    public func json(organization: String) -> JSONValue {
        .object(
            EventKind.allCases.map { kind in
                let days = days(organization: organization, kind: kind)
                return (
                    kind.rawValue,
                    .object([("days", days.map { .number(String($0)) } ?? .null), ("source", .string(source(organization: organization, kind: kind)))])
                )
            })
    }
}

/// What one kind's table holds, as the retention run last read it and the worker published it
/// (`RedisKeys.storage`): for `operyn-admin status` and `orgs show`.
public struct StorageReport: Sendable, Equatable {
    /// The UTC day of the oldest stored event, `YYYY-MM-DD` (`nil`: none stored).
    public var oldestDay: String?
    /// Day partitions (PostgreSQL; 0 in SQLite).
    public var partitions: Int
    /// Bytes on disk: the table with its indexes (PostgreSQL), the kind's pages (SQLite).
    public var bytes: Int64

    public init(oldestDay: String?, partitions: Int, bytes: Int64) {
        self.oldestDay = oldestDay
        self.partitions = partitions
        self.bytes = bytes
    }

    /// The published fields of every kind, with the default retention and when they were read.
    public static func fields(_ reports: [EventKind: StorageReport], defaultDays: Int?, at: Timestamp) -> [(String, String)] {
        var fields = [("retention_days", defaultDays.map(String.init) ?? "none"), ("at", at.iso8601)]
        for (kind, report) in reports.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            fields += [
                ("\(kind.rawValue):oldest_day", report.oldestDay ?? ""), ("\(kind.rawValue):partitions", String(report.partitions)),
                ("\(kind.rawValue):bytes", String(report.bytes)),
            ]
        }
        return fields
    }

    /// What the workers last published: each kind's report, the default retention (`nil`: for ever, or never
    /// published: `published` tells), and when.
    public struct Published: Sendable, Equatable {
        public var reports: [EventKind: StorageReport]
        public var defaultDays: Int?
        public var published: Bool
        public var at: String?
    }

    /// Reads what the workers published.
    public static func read(redis: RedisClient, keys: RedisKeys) async throws(RedisError) -> Published {
        let values = try await redis.send(HGETALL(keys.storage))
        var reports: [EventKind: StorageReport] = [:]
        for kind in EventKind.allCases {
            guard let partitions = values["\(kind.rawValue):partitions"].flatMap({ Int($0) }) else { continue }
            let oldest = values["\(kind.rawValue):oldest_day"].flatMap { $0.isEmpty ? nil : $0 }
            reports[kind] = StorageReport(
                oldestDay: oldest, partitions: partitions, bytes: values["\(kind.rawValue):bytes"].flatMap { Int64($0) } ?? 0)
        }
        return Published(
            reports: reports, defaultDays: values["retention_days"].flatMap { Int($0) }, published: values["retention_days"] != nil, at: values["at"])
    }
}
