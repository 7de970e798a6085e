import NIOCore
import Shared
import Synchronization

/// The in-memory twin of `RedisEventPublisher`, for fast route tests: keeps what it is given, or
/// fails on demand like an unreachable Redis.
final class InMemoryEventPublisher: EventPublisher {
    private struct State {
        var events: [QueuedEvent] = []
        var failing = false
        /// GCRA arrival times by organization and measure.
        var budgets: [String: Double] = [:]
        /// Idempotency records by key (kept for ever here).
        var idempotency: [String: GuardedAppend.Idempotency] = [:]
    }

    private let state = Mutex(State())
    /// The clock of the rate limits, in milliseconds; a test may set its own.
    private let clock: @Sendable () -> Double

    init(clock: @escaping @Sendable () -> Double = { Double(NIODeadline.now().uptimeNanoseconds) / 1e6 }) { self.clock = clock }

    /// Everything published so far, in order.
    var events: [QueuedEvent] { state.withLock { $0.events } }

    /// Makes later calls fail (`true`) or succeed again.
    func setFailing(_ failing: Bool) { state.withLock { $0.failing = failing } }

    func publish(_ events: [QueuedEvent], on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let accepted = state.withLock { state in
            guard !state.failing else { return false }
            state.events += events
            return true
        }
        return accepted ? eventLoop.makeSucceededVoidFuture() : eventLoop.makeFailedFuture(PublishError(reason: "in-memory publisher set to fail"))
    }

    /// Limits by the same GCRA as the Redis script, on this process's clock, for route tests of 429 and the rate-limit
    /// headers (the script itself is tested on a real Redis).
    func publish(
        _ events: [QueuedEvent], bytes: Int, limit: RateLimit, idempotency: GuardedAppend.Idempotency?, on eventLoop: any EventLoop
    ) -> EventLoopFuture<PublishDecision> {
        guard !limit.isNone || idempotency != nil else { return publishUnlimited(events, on: eventLoop) }
        let decision: PublishDecision? = state.withLock { state in
            guard !state.failing else { return nil }
            if let idempotency, let record = state.idempotency[idempotency.record] {
                return record.digest == idempotency.digest ? .replayed(answer: record.answer) : .conflict
            }
            let now = clock()
            var arrivals: [String: Double] = [:]
            var budgets: [RateBudget] = []
            for (measure, rate, burst, cost) in [
                ("events", limit.eventsPerSecond, limit.eventsBurst, events.count), ("bytes", limit.bytesPerSecond, limit.bytesBurst, bytes),
            ] where rate > 0 {
                let gcra = GCRA(rate: rate, burst: burst)
                switch gcra.take(cost, tat: state.budgets[events[0].org + measure] ?? 0, now: now) {
                case .refused(let retryAfter): return .limited(RateRefusal(measure: measure, retryAfterMilliseconds: retryAfter, cost: cost))
                case .admitted(let arrival):
                    arrivals[measure] = arrival
                    budgets.append(gcra.budget(measure, arrival: arrival, now: now))
                }
            }
            for (measure, arrival) in arrivals { state.budgets[events[0].org + measure] = arrival }
            if let idempotency { state.idempotency[idempotency.record] = idempotency }
            state.events += events
            return .queued(budgets: budgets)
        }
        guard let decision else { return eventLoop.makeFailedFuture(PublishError(reason: "in-memory publisher set to fail")) }
        return eventLoop.makeSucceededFuture(decision)
    }

    func isReady() async -> Bool { state.withLock { !$0.failing } }
}
