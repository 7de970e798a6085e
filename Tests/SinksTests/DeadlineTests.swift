import Dispatch
import NIOCore
import Testing

@testable import Sinks

@Suite("Time limits that hold when the work ignores cancellation")
struct DeadlineTests {
    struct Refused: Error {}

    @Test func aBodyThatIgnoresCancellationIsNotWaitedFor() async throws {
        let started = NIODeadline.now()
        let value = try await Deadline.run(within: .milliseconds(100)) { () async -> Int in
            // Like a client call blind to cancellation: ends when it ends.
            await withCheckedContinuation { continuation in
                DispatchQueue.global().asyncAfter(deadline: .now() + 20) { continuation.resume() }
            }
            return 1
        }
        #expect(value == nil)
        // Answered at the deadline, not when the body ends (20 s); the margin is for a machine busy with parallel suites.
        #expect(NIODeadline.now() - started < .seconds(10), "answered at the deadline, not when the body ended")
    }

    @Test func aBodyInTimeAnswersOrThrows() async throws {
        #expect(try await Deadline.run(within: .seconds(5)) { 42 } == 42)
        await #expect(throws: Refused.self) {
            _ = try await Deadline.run(within: .seconds(5)) { () async throws -> Int in throw Refused() }
        }
    }

    @Test func cancellingTheCallerCancelsTheBody() async throws {
        let started = NIODeadline.now()
        let caller = Task {
            try await Deadline.run(within: .seconds(30)) { () async throws -> Int in
                try await Task.sleep(for: .seconds(30))
                return 1
            }
        }
        try await Task.sleep(for: .milliseconds(100))
        caller.cancel()
        await #expect(throws: CancellationError.self) { _ = try await caller.value }
        #expect(NIODeadline.now() - started < .seconds(15), "not the body's 30 s")
    }
}
