/// An organization's ingestion rate: events and bytes (of request bodies, decoded) per second, each with a burst, the
/// most that may arrive at once after a quiet spell. A rate of 0 leaves that measure unlimited.
///
/// Enforced by GCRA (the generic cell rate algorithm, a token bucket kept as one timestamp per measure) in Redis,
/// in the same script that appends the events (`GuardedAppend`): every gateway shares one budget, and a request
/// is admitted and appended, or refused with nothing written, in one round trip.
public struct RateLimit: Sendable, Hashable, CustomStringConvertible {
    public var eventsPerSecond: Int
    public var eventsBurst: Int
    public var bytesPerSecond: Int
    public var bytesBurst: Int

    /// A limit; a burst of 0 is one second's worth of the rate.
    public init(eventsPerSecond: Int = 0, eventsBurst: Int = 0, bytesPerSecond: Int = 0, bytesBurst: Int = 0) {
        self.eventsPerSecond = max(0, eventsPerSecond)
        self.eventsBurst = eventsBurst > 0 ? eventsBurst : max(0, eventsPerSecond)
        self.bytesPerSecond = max(0, bytesPerSecond)
        self.bytesBurst = bytesBurst > 0 ? bytesBurst : max(0, bytesPerSecond)
    }

    /// The deployment's limit for every organization without its own (`OPERYN_RATE_*`).
    public init(_ reader: ConfigurationReader) throws(ConfigurationError) {
        self.init(
            eventsPerSecond: try reader.integer(
                "OPERYN_RATE_EVENTS_PER_SECOND", default: 0, in: 0...1_000_000_000, shown: "`0`: no limit",
                about: "every organization's rate limit in events per second (a batch counts all its events), unless `operyn-admin orgs "
                    + "set-rate` set its own; over it: `429` + `Retry-After` ([rate limits](api.md#rate-limits))"),
            eventsBurst: try reader.integer(
                "OPERYN_RATE_EVENTS_BURST", default: 0, in: 0...1_000_000_000, about: "the events that may arrive at once; `0`: one second's worth"),
            bytesPerSecond: try reader.integer(
                "OPERYN_RATE_BYTES_PER_SECOND", default: 0, in: 0...1_000_000_000_000, shown: "`0`: no limit",
                about: "the same in bytes of request bodies (decompressed)"),
            bytesBurst: try reader.integer(
                "OPERYN_RATE_BYTES_BURST", default: 0, in: 0...1_000_000_000_000, about: "the bytes that may arrive at once; `0`: one second's worth"))
    }

    /// No limit: the default, as the API reference says.
    public static let none = RateLimit()

    /// Whether nothing is limited.
    public var isNone: Bool { eventsPerSecond == 0 && bytesPerSecond == 0 }

    /// The fields of an organization's settings hash that override the default limit (`operyn-admin orgs set-rate`).
    public static let settingsFields = ["events_per_second", "events_burst", "bytes_per_second", "bytes_burst"]

    /// The limit of an organization whose settings hash holds `settings`: its override when it has one (any of
    /// `settingsFields`; the others then count as 0), else `fallback`.
    public static func of(settings: [String: String], fallback: RateLimit) -> RateLimit {
        guard settingsFields.contains(where: { settings[$0] != nil }) else { return fallback }
        func value(_ name: String) -> Int { settings[name].flatMap { Int($0) } ?? 0 }
        return RateLimit(
            eventsPerSecond: value("events_per_second"), eventsBurst: value("events_burst"), bytesPerSecond: value("bytes_per_second"),
            bytesBurst: value("bytes_burst"))
    }

    /// The override's fields, for `HSET` into the settings hash.
    public var settingsValues: [(String, String)] {
        [
            ("events_per_second", String(eventsPerSecond)), ("events_burst", String(eventsBurst)), ("bytes_per_second", String(bytesPerSecond)),
            ("bytes_burst", String(bytesBurst)),
        ]
    }

    public var description: String {
        guard !isNone else { return "none" }
        var parts: [String] = []
        if eventsPerSecond > 0 { parts.append("\(eventsPerSecond) events per second (burst \(eventsBurst))") }
        if bytesPerSecond > 0 { parts.append("\(bytesPerSecond) bytes per second (burst \(bytesBurst))") }
        return parts.joined(separator: " and ")
    }
}

/// What one measure of a limit says after a request was admitted: what is left of the burst and when it is full again.
public struct RateBudget: Sendable, Equatable {
    /// `events` or `bytes`.
    public var measure: String
    /// The burst (the policy's quota).
    public var quota: Int
    /// Seconds a full burst takes to come back (the policy's window): burst ÷ rate, at least 1.
    public var windowSeconds: Int
    /// Left now.
    public var remaining: Int
    /// Seconds until the budget is full again.
    public var resetSeconds: Int

    /// The budget of a measure limited to `rate` a second with `burst`, with `remaining` left (negative: none) and full
    /// again in `resetMilliseconds` (rounded up to seconds): as both append scripts' answers are read.
    public init(measure: String, rate: Int, burst: Int, remaining: Int64, resetMilliseconds: Int64) {
        self.init(
            measure: measure, quota: burst, windowSeconds: max(1, (burst + rate - 1) / rate), remaining: Int(max(0, remaining)),
            resetSeconds: Int((max(0, resetMilliseconds) + 999) / 1_000))
    }

    /// A budget.
    public init(measure: String, quota: Int, windowSeconds: Int, remaining: Int, resetSeconds: Int) {
        self.measure = measure
        self.quota = quota
        self.windowSeconds = windowSeconds
        self.remaining = remaining
        self.resetSeconds = resetSeconds
    }
}

/// A request the limit refused, with nothing written.
public struct RateRefusal: Sendable, Equatable {
    /// `events` or `bytes`.
    public var measure: String
    /// Milliseconds until the request would be admitted; `nil` when it never would: it is larger than the burst.
    public var retryAfterMilliseconds: Int?
    /// The request's cost in that measure.
    public var cost: Int

    /// A refusal.
    public init(measure: String, retryAfterMilliseconds: Int?, cost: Int) {
        self.measure = measure
        self.retryAfterMilliseconds = retryAfterMilliseconds
        self.cost = cost
    }
}
