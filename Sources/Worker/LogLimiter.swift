import NIOCore
import Synchronization

/// Lets a message through at most once a minute per key.
final class LogLimiter: Sendable {
    private let last = Mutex<[String: NIODeadline]>([:])
    private let intervalMilliseconds: Int

    init(intervalMilliseconds: Int = 60_000) { self.intervalMilliseconds = intervalMilliseconds }

    func shouldLog(_ key: String) -> Bool {
        let now = NIODeadline.now()
        return last.withLock { last in
            if let previous = last[key], previous + .milliseconds(Int64(intervalMilliseconds)) > now { return false }
            if last.count > 10_000 { last.removeAll() }
            last[key] = now
            return true
        }
    }
}
