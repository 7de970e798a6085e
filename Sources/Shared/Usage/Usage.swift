/// What an organization sent and what became of it, per UTC day of acceptance and per kind, kept in Redis for
/// `GET /usage` and `operyn-admin orgs show`: one hash per organization and day (`RedisKeys.usage`), fields
/// `<measure>:<kind>`, kept `ttlSeconds`.
///
/// `rate_limited` is counted by the gateway's append script when it refuses a request; the others by the workers when
/// they finish an entry, under the day its events were accepted, in the step that acknowledges it (exact under
/// retried acknowledgements): `accepted` (every event of the entry), `stored`, `quota_rejected` and `dead_lettered`.
/// So an event accepted but not yet taken by a worker is not counted yet; once the queue drains, the day's accepted
/// equals its stored + quota-rejected + dead-lettered.
public enum Usage {
    /// The measures, as field prefixes.
    public static let measures = ["accepted", "rate_limited", "quota_rejected", "stored", "dead_lettered"]

    /// Days reported: today and the 30 before it.
    public static let days = 31

    /// How long a day's hash is kept: past the 30 days reported.
    public static let ttlSeconds = 32 * 86_400

    /// The UTC day of `timestamp`, `YYYY-MM-DD`.
    public static func day(_ timestamp: Timestamp) -> String { String(timestamp.iso8601.prefix(10)) }

    /// The field of `measure` for `kind`.
    public static func field(_ measure: String, _ kind: EventKind) -> String { "\(measure):\(kind.rawValue)" }
}

/// An organization's usage over the reported days, newest first.
public struct UsageReport: Sendable, Equatable {
    /// One day's counts: measure → kind → events.
    public struct Day: Sendable, Equatable {
        public var date: String
        public var counts: [String: [EventKind: Int]]

        /// The count of `measure` for `kind`.
        public func count(_ measure: String, _ kind: EventKind) -> Int { counts[measure]?[kind] ?? 0 }

        /// The count of `measure` over every kind.
        public func total(_ measure: String) -> Int { counts[measure]?.values.reduce(0, +) ?? 0 }
    }

    public var organization: String
    public var days: [Day]

    /// Reads the reported days ending `today` (one `HGETALL` per day, sent together).
    public static func read(redis: RedisClient, keys: RedisKeys, organization: String, today: Timestamp) async throws(RedisError) -> UsageReport {
        let dates = (0..<Usage.days).map { Usage.day(Timestamp(milliseconds: today.milliseconds - Int64($0) * 86_400_000)) }
        let results = try await redis.pipeline(dates.map { HGETALL(keys.usage(org: organization, day: $0)) })
        var days: [Day] = []
        for (date, result) in zip(dates, results) {
            var counts: [String: [EventKind: Int]] = [:]
            for (field, value) in try result.get() {
                let parts = field.split(separator: ":", maxSplits: 1)
                guard parts.count == 2, let kind = EventKind(rawValue: String(parts[1])), let number = Int(value) else { continue }
                counts[String(parts[0]), default: [:]][kind] = number
            }
            days.append(Day(date: date, counts: counts))
        }
        return UsageReport(organization: organization, days: days)
    }

    /// The JSON of `GET /usage` and `operyn-admin orgs show --json`: per day, each measure by kind (every kind listed).
    public var json: JSONValue {
        let names = [
            "accepted": "accepted", "rate_limited": "rateLimited", "quota_rejected": "quotaRejected", "stored": "stored", "dead_lettered": "deadLettered",
        ]
        return .array(
            days.map { day in
                var members: [(key: String, value: JSONValue)] = [("date", .string(day.date))]
                for measure in Usage.measures {
                    members.append((names[measure]!, .object(EventKind.allCases.map { ($0.rawValue, .number(String(day.count(measure, $0)))) })))
                }
                return .object(members)
            })
    }
}
