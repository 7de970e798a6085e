import Synchronization

/// Runs work with a time limit that holds even when the work ignores cancellation.
///
/// A task group would cancel the work at the deadline and then wait for it to end: a client call that never looks
/// at cancellation (postgres-nio's `copyFrom` waiting for a connection that died mid-copy did exactly that) would hold
/// the caller, and with it the worker, for ever. Here the caller is answered at the deadline, the work is cancelled
/// and left to end on its own.
enum Deadline {
    /// `body`'s value, or `nil` when it has not finished within `timeout`. Cancelling the caller cancels `body`.
    static func run<T: Sendable>(within timeout: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T? {
        let work = Task { try await body() }
        let answer = Answer<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T?, any Error>) in
                answer.set(continuation)
                let timer = Task {
                    try await Task.sleep(for: timeout)
                    work.cancel()
                    answer.resume(with: .success(nil))
                }
                Task {
                    let result = await work.result
                    timer.cancel()  // no sleeping task left behind per call
                    answer.resume(with: result.map { Optional($0) })
                }
            }
        } onCancel: {
            work.cancel()
        }
    }

    /// The caller's continuation, resumed by whichever of the work and the timer comes first.
    private final class Answer<T: Sendable>: Sendable {
        private let state = Mutex<(continuation: CheckedContinuation<T?, any Error>?, result: Result<T?, any Error>?)>((nil, nil))

        func set(_ continuation: CheckedContinuation<T?, any Error>) {
            let early = state.withLock { state -> Result<T?, any Error>? in
                guard let result = state.result else {
                    state.continuation = continuation
                    return nil
                }
                return result
            }
            if let early { continuation.resume(with: early) }
        }

        func resume(with result: Result<T?, any Error>) {
            let continuation = state.withLock { state -> CheckedContinuation<T?, any Error>? in
                guard state.result == nil else { return nil }  // answered already
                state.result = result
                defer { state.continuation = nil }
                return state.continuation
            }
            continuation?.resume(with: result)
        }
    }
}
