/// An exponential backoff: the first delay, then each one doubled, up to a ceiling. The one schedule of every retry
/// loop: start-up checks, the worker's Redis steps and its wait for the database, the Redis client's reconnects and
/// the cluster client's retries.
public struct Backoff: Sendable, Equatable {
    public let firstMilliseconds: Int
    public let maxMilliseconds: Int
    /// The delay the next `next()` answers.
    public private(set) var currentMilliseconds: Int

    public init(firstMilliseconds: Int, maxMilliseconds: Int) {
        self.firstMilliseconds = firstMilliseconds
        self.maxMilliseconds = max(firstMilliseconds, maxMilliseconds)
        currentMilliseconds = firstMilliseconds
    }

    /// The delay to wait now; the one after it is doubled, up to the ceiling.
    public mutating func next() -> Int {
        defer { currentMilliseconds = min(currentMilliseconds * 2, maxMilliseconds) }
        return currentMilliseconds
    }

    /// Back to the first delay (after a success).
    public mutating func reset() { currentMilliseconds = firstMilliseconds }

    /// The delay before retry number `attempt` (0 for the first retry), without state.
    public func delay(attempt: Int) -> Int {
        min(firstMilliseconds << min(max(attempt, 0), 30), maxMilliseconds)
    }

    /// Runs `body` until it succeeds. After each failure `failed` sees the error (and throws to stop: a shutdown, an
    /// error no retry will mend), then the loop waits the next delay.
    public mutating func retrying<T>(_ body: () async throws -> T, failed: (any Error) throws -> Void) async throws -> T {
        while true {
            do {
                return try await body()
            } catch {
                try failed(error)
                try await Task.sleep(for: .milliseconds(next()))
            }
        }
    }
}
