import Shared
import Testing

@Suite("GCRA in Swift")
struct GCRATests {
    @Test func aBurstThenTheRateAndWhatIsLeft() {
        let gcra = GCRA(rate: 10, burst: 20)
        var tat = 0.0
        let now = 1_000_000.0
        guard case .admitted(let arrival) = gcra.take(15, tat: tat, now: now) else {
            Issue.record("15 of a burst of 20 refused")
            return
        }
        tat = arrival
        #expect(gcra.budget("events", arrival: arrival, now: now) == RateBudget(measure: "events", quota: 20, windowSeconds: 2, remaining: 5, resetSeconds: 2))
        #expect(gcra.remaining(tat: tat, now: now) == 5 && gcra.remaining(tat: nil, now: now) == 20)
        guard case .admitted(let full) = gcra.take(5, tat: tat, now: now) else {
            Issue.record("the rest of the burst refused")
            return
        }
        #expect(gcra.take(1, tat: full, now: now) == .refused(retryAfterMilliseconds: 100), "one interval at 10 a second")
        #expect(gcra.take(1, tat: full, now: now + 100) == .admitted(arrival: full + 100))
        #expect(gcra.take(21, tat: 0, now: now) == .refused(retryAfterMilliseconds: nil), "larger than the burst: never")
        #expect(gcra.remaining(tat: full, now: now + 1_000) == 10, "a second refills 10")
    }
}
