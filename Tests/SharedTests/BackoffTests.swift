import Shared
import Testing

@Suite("Backoff: the one retry schedule")
struct BackoffTests {
    @Test func delaysDoubleUpToTheCeilingAndResetAfterASuccess() {
        var backoff = Backoff(firstMilliseconds: 100, maxMilliseconds: 1_000)
        #expect((0..<6).map { _ in backoff.next() } == [100, 200, 400, 800, 1_000, 1_000])
        backoff.reset()
        #expect(backoff.next() == 100)
        let cluster = Backoff(firstMilliseconds: 20, maxMilliseconds: 200)
        #expect((0..<6).map(cluster.delay(attempt:)) == [20, 40, 80, 160, 200, 200])
        #expect(cluster.delay(attempt: 1_000) == 200 && cluster.delay(attempt: -1) == 20)
    }

    @Test func retryingRunsUntilASuccessAndStopsWhenToldTo() async throws {
        var backoff = Backoff(firstMilliseconds: 1, maxMilliseconds: 4)
        var calls = 0
        var seen: [String] = []
        let value = try await backoff.retrying {
            calls += 1
            if calls < 4 { throw Failure(text: "try \(calls)") }
            return calls
        } failed: { error in
            seen.append((error as? Failure)?.text ?? "")
        }
        #expect(value == 4 && seen == ["try 1", "try 2", "try 3"])
        #expect(backoff.currentMilliseconds == 4, "three waits: 1, 2, 4 ms; the next would be 4")

        var stopping = Backoff(firstMilliseconds: 1, maxMilliseconds: 4)
        await #expect(throws: Failure.self) {
            try await stopping.retrying { () async throws -> Int in
                throw Failure(text: "fatal")
            } failed: {
                throw $0
            }
        }
    }

    struct Failure: Error { var text: String }
}
