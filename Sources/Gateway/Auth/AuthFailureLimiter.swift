import NIOCore
import Shared
import Synchronization

/// Counts failed authentications per client address in fixed windows; past `limit` failures in a window the client
/// is answered 429 until the window ends. Other clients are not slowed: it is one dictionary lookup under a lock, no
/// waiting. The table is bounded (windows that ended are swept when it fills; if it is still full it is cleared).
final class AuthFailureLimiter: Sendable {
    private struct Window {
        var failures: Int
        var endsAt: NIODeadline
    }

    /// Failures allowed per window; `0` turns the limiter off.
    let limit: Int
    /// The window's length.
    let windowMilliseconds: Int
    private let capacity: Int
    private let windows = Mutex<[String: Window]>([:])

    /// A limiter allowing `limit` failures per client per `windowMilliseconds`.
    init(limit: Int, windowMilliseconds: Int, capacity: Int = 100_000) {
        self.limit = limit
        self.windowMilliseconds = windowMilliseconds
        self.capacity = capacity
    }

    /// The seconds until `client` may try again, or `nil` when it is not blocked.
    func retryAfter(client: String) -> Int? {
        guard limit > 0 else { return nil }
        let now = NIODeadline.now()
        return windows.withLock { windows in
            guard let window = windows[client], window.endsAt > now, window.failures >= limit else { return nil }
            return max(1, (window.endsAt.millisecondsFromNow + 999) / 1_000)
        }
    }

    /// Records one failed authentication of `client`.
    func recordFailure(client: String) {
        guard limit > 0 else { return }
        let now = NIODeadline.now()
        windows.withLock { windows in
            if var window = windows[client], window.endsAt > now {
                window.failures += 1
                windows[client] = window
                return
            }
            if windows.count >= capacity {
                windows = windows.filter { $0.value.endsAt > now }
                if windows.count >= capacity { windows.removeAll(keepingCapacity: true) }
            }
            windows[client] = Window(failures: 1, endsAt: now + .milliseconds(Int64(windowMilliseconds)))
        }
    }
}
