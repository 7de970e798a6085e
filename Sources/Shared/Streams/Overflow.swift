/// An organization whose new events go to its partition's overflow stream, as the worker deciding the overflow
/// records it in `RedisKeys.overflowTenants` (value `<since ms> <reason> <backlog events> <events per second>`).
public struct OverflowTenant: Sendable, Equatable {
    /// Why the organization overflows.
    public enum Reason: String, Sendable {
        /// Its queued backlog passed `OPERYN_OVERFLOW_BACKLOG_EVENTS`.
        case backlog
        /// Its rate passed `OPERYN_OVERFLOW_RATE_EVENTS` per second.
        case rate
    }

    /// Since when (Unix milliseconds).
    public var since: Int64
    public var reason: Reason
    /// Its backlog at the last decision, in events (appended and not yet stored, rejected or dead-lettered).
    public var backlogEvents: Int
    /// Its rate at the last decision, in events per second.
    public var eventsPerSecond: Int

    public init(since: Int64, reason: Reason, backlogEvents: Int, eventsPerSecond: Int) {
        self.since = since
        self.reason = reason
        self.backlogEvents = backlogEvents
        self.eventsPerSecond = eventsPerSecond
    }

    /// The hash value.
    public var value: String { "\(since) \(reason.rawValue) \(backlogEvents) \(eventsPerSecond)" }

    /// Reads a hash value; `nil` for one that is not of this form.
    public init?(value: String) {
        let parts = value.split(separator: " ")
        guard parts.count == 4, let since = Int64(parts[0]), let reason = Reason(rawValue: String(parts[1])), let backlog = Int(parts[2]),
            let rate = Int(parts[3])
        else { return nil }
        self.init(since: since, reason: reason, backlogEvents: backlog, eventsPerSecond: rate)
    }

    /// Every overflowing organization, by id.
    public static func read(redis: RedisClient, keys: RedisKeys) async throws(RedisError) -> [String: OverflowTenant] {
        var tenants: [String: OverflowTenant] = [:]
        for (org, value) in try await redis.send(HGETALL(keys.overflowTenants)) {
            if let tenant = OverflowTenant(value: value) { tenants[org] = tenant }
        }
        return tenants
    }

    /// As `GET /usage` and `operyn-admin status --json` show it.
    public var json: JSONValue {
        .object([
            ("since", .string(Timestamp(milliseconds: since).iso8601)), ("reason", .string(reason.rawValue)),
            ("backlogEvents", .number(String(backlogEvents))), ("eventsPerSecond", .number(String(eventsPerSecond))),
        ])
    }
}

/// When an organization overflows (worker settings; see the operations page).
public struct OverflowSettings: Sendable, Equatable {
    /// `OPERYN_OVERFLOW_BACKLOG_EVENTS` (50000; 0 off): a backlog of this many events of one organization sends its new
    /// events to the overflow stream: at the drain rate of two workers, other organizations of its partition then wait
    /// behind at most about half a second of its events.
    public var backlogEvents = 50_000
    /// `OPERYN_OVERFLOW_RATE_EVENTS` (25000; 0 off): so does a rate of this many events per second, before a backlog
    /// has formed.
    public var eventsPerSecond = 25_000
    /// `OPERYN_OVERFLOW_SHARE` (25, percent): of a batch, what the overflow streams may take while other streams have
    /// entries waiting; all of it when they have none.
    public var sharePercent = 25
    /// `OPERYN_OVERFLOW_CHECK_MS` (500): how often the deciding worker weighs every organization. The gateways read
    /// the decision every 250 ms: an organization overflows within about a second of passing a threshold.
    public var checkMilliseconds = 500
    /// How long an organization stays below a quarter of the backlog threshold and half the rate threshold before
    /// its events go back to its partition's stream (`OPERYN_OVERFLOW_COOLDOWN_SECONDS`, 30), so that it does not
    /// flap.
    public var cooldownSeconds = 30

    public init() {}

    public init(_ reader: ConfigurationReader) throws(ConfigurationError) {
        backlogEvents = try reader.integer(
            "OPERYN_OVERFLOW_BACKLOG_EVENTS", default: backlogEvents, in: 0...Int(Int32.max),
            about: "an organization with this many events queued overflows: its new events go to its partition's overflow streams, so the rest "
                + "of the partition passes it ([overflow](operations.md#hot-organizations-overflow)); `0`: never for its backlog")
        eventsPerSecond = try Self.rate(reader)
        sharePercent = try reader.integer(
            "OPERYN_OVERFLOW_SHARE", default: sharePercent, in: 1...100,
            about: "percent of a batch the overflow streams may take while other streams have entries waiting")
        checkMilliseconds = try reader.integer(
            "OPERYN_OVERFLOW_CHECK_MS", default: checkMilliseconds, in: 50...60_000,
            about: "how often the deciding worker (one at a time, under a lease) weighs every organization")
        cooldownSeconds = try reader.integer(
            "OPERYN_OVERFLOW_COOLDOWN_SECONDS", default: cooldownSeconds, in: 0...86_400,
            about: "how long an overflowing organization stays calm (under a quarter of the backlog threshold, half the rate) before it goes back")
    }

    /// `OPERYN_OVERFLOW_RATE_EVENTS`, as the workers and the gateway read it.
    public static func rate(_ reader: ConfigurationReader) throws(ConfigurationError) -> Int {
        try reader.integer(
            "OPERYN_OVERFLOW_RATE_EVENTS", default: OverflowSettings().eventsPerSecond, in: 0...Int(Int32.max),
            about: "an organization sending this many events a second overflows (a gateway alone seeing that rate over a quarter of a second "
                + "sends it there at once); `0`: never for its rate")
    }
}
