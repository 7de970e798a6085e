import HTTPTypes
import NIOCore
import Shared
import Synchronization

/// Each organization's rate limit: its override in its settings hash (`operyn-admin orgs set-rate`), else the
/// gateway's default (`OPERYN_RATE_*`). Lookups are cached for `ttlMilliseconds`, so an override reaches every gateway
/// within that time; the table is bounded and cleared when full.
final class OrganizationRateLimits: Sendable {
    private struct Entry {
        var limit: RateLimit
        var fetchedAt: NIODeadline
    }

    /// The limit of organizations without an override.
    let fallback: RateLimit
    private let redis: RedisClient?
    private let keys: RedisKeys
    private let ttlMilliseconds: Int
    private let capacity: Int
    private let entries = Mutex<[String: Entry]>([:])

    /// Limits read from `redis` under `keys` (no overrides without one: `fallback` for everyone).
    init(fallback: RateLimit, redis: RedisClient?, keys: RedisKeys, ttlMilliseconds: Int, capacity: Int = 100_000) {
        self.fallback = fallback
        self.redis = redis
        self.keys = keys
        self.ttlMilliseconds = ttlMilliseconds
        self.capacity = capacity
    }

    /// The limit of `organization` when it is known without asking Redis (cached and fresh, or no overrides at all).
    func cachedLimit(of organization: String) -> RateLimit? {
        guard redis != nil else { return fallback }
        guard let entry = entries.withLock({ $0[organization] }), entry.fetchedAt + .milliseconds(Int64(ttlMilliseconds)) > .now() else { return nil }
        return entry.limit
    }

    /// The limit of `organization`, from the cache when fresh, else from Redis; completes on `eventLoop`. A Redis
    /// failure fails it (the request gets the same 503 as a failed append).
    func limit(of organization: String, on eventLoop: any EventLoop) -> EventLoopFuture<RateLimit> {
        if let known = cachedLimit(of: organization) { return eventLoop.makeSucceededFuture(known) }
        guard let redis else { return eventLoop.makeSucceededFuture(fallback) }
        let now = NIODeadline.now()
        let fallback = fallback
        return redis.send(HMGET(keys.settings(org: organization), fields: RateLimit.settingsFields), on: eventLoop).map { values in
            var settings: [String: String] = [:]
            for (field, value) in zip(RateLimit.settingsFields, values) { settings[field] = value }
            let limit = RateLimit.of(settings: settings, fallback: fallback)
            self.entries.withLock { entries in
                if entries.count >= self.capacity { entries.removeAll(keepingCapacity: true) }
                entries[organization] = Entry(limit: limit, fetchedAt: now)
            }
            return limit
        }
    }
}

/// The IETF rate-limit header fields (draft-ietf-httpapi-ratelimit-headers) of an answer a limit applied to: one
/// policy per limited measure, named `events` and `bytes` (`q`: the burst, `w`: seconds it takes to come back) and
/// what is left of each (`r`) and in how many seconds it is full again (`t`).
enum RateLimitHeaders {
    static let policy = HTTPField.Name("RateLimit-Policy")!
    static let current = HTTPField.Name("RateLimit")!

    /// The fields after an admitted request.
    static func fields(_ budgets: [RateBudget]) -> [(HTTPField.Name, String)] {
        guard !budgets.isEmpty else { return [] }
        // Written piece by piece: every answer of a limited organization carries both (interpolating and joining cost
        // a microsecond a request).
        var (policies, state) = ("", "")
        policies.reserveCapacity(64)
        state.reserveCapacity(48)
        for budget in budgets {
            if !policies.isEmpty {
                policies += ", "
                state += ", "
            }
            policies += "\""
            policies += budget.measure
            policies += "\";q="
            policies += String(budget.quota)
            policies += ";w="
            policies += String(budget.windowSeconds)
            policies += unit(budget.measure)
            state += "\""
            state += budget.measure
            state += "\";r="
            state += String(budget.remaining)
            state += ";t="
            state += String(budget.resetSeconds)
        }
        return [(policy, policies), (current, state)]
    }

    /// The fields of a refusal by `limit`: the refusing measure has nothing left until `retryAfterSeconds`.
    static func fields(refusal: RateRefusal, limit: RateLimit, retryAfterSeconds: Int) -> [(HTTPField.Name, String)] {
        var policies: [String] = []
        var state: [String] = []
        for (measure, rate, burst) in [("events", limit.eventsPerSecond, limit.eventsBurst), ("bytes", limit.bytesPerSecond, limit.bytesBurst)]
        where rate > 0 {
            policies.append(#""\#(measure)";q=\#(burst);w=\#(max(1, (burst + rate - 1) / rate))\#(unit(measure))"#)
            if measure == refusal.measure { state.append(#""\#(measure)";r=0;t=\#(retryAfterSeconds)"#) }
        }
        return [(policy, policies.joined(separator: ", ")), (current, state.joined(separator: ", "))]
    }

    private static func unit(_ measure: String) -> String { measure == "bytes" ? #";qu="content-bytes""# : "" }
}
