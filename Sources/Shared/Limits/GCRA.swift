/// GCRA (the generic cell rate algorithm) for one measure of a rate limit: a budget of `burst` refilled at `rate` a
/// second, kept as one "theoretical arrival time" (milliseconds). The append scripts do this arithmetic in Lua on
/// Redis's clock (`GuardedAppend.check`); this is the same arithmetic in Swift, written once for the gateway's replay
/// of each coalesced request's budget, the in-memory publisher of route tests, and `GET /usage`'s remaining. It uses
/// the script's IEEE operations in the script's order, so the same inputs give the same numbers (`GCRATests`, and the
/// live `GuardedAppendGroupTests` hold the replay to the script's own answers).
public struct GCRA: Sendable, Equatable {
    /// Units a second (> 0).
    public let rate: Int
    public let burst: Int

    public init(rate: Int, burst: Int) {
        self.rate = rate
        self.burst = burst
    }

    /// Milliseconds one unit of the budget takes to come back.
    public var interval: Double { 1000 / Double(rate) }
    /// How far the arrival time may run ahead of now.
    public var tolerance: Double { Double(burst) * interval }

    public enum Outcome: Sendable, Equatable {
        /// Admitted: the budget's arrival time moves here.
        case admitted(arrival: Double)
        /// Refused with nothing charged: retry after this many milliseconds, or `nil` when the cost is larger than the
        /// burst (waiting would never admit it).
        case refused(retryAfterMilliseconds: Int?)
    }

    /// A request of `cost` units at `now` against the arrival time `tat` (0: a full budget).
    public func take(_ cost: Int, tat: Double, now: Double) -> Outcome {
        guard cost <= burst else { return .refused(retryAfterMilliseconds: nil) }
        let arrival = max(tat, now) + Double(cost) * interval
        guard arrival - now <= tolerance else { return .refused(retryAfterMilliseconds: Int((arrival - now - tolerance).rounded(.up))) }
        return .admitted(arrival: arrival)
    }

    /// The budget of `measure` once an admission moved its arrival time to `arrival`, as the scripts answer it.
    public func budget(_ measure: String, arrival: Double, now: Double) -> RateBudget {
        RateBudget(
            measure: measure, rate: rate, burst: burst, remaining: Int64(((tolerance - (arrival - now)) / interval).rounded(.down)),
            resetMilliseconds: Int64((arrival - now).rounded(.up)))
    }

    /// What is left at `now` of a budget whose arrival time is `tat` (`nil`: never used, full).
    public func remaining(tat: Double?, now: Double) -> Int {
        let used = max(0, (tat ?? 0) - now)
        return max(0, min(burst, Int(((tolerance - used) / interval).rounded(.down))))
    }
}
