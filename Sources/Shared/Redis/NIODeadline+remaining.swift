import NIOCore

extension NIODeadline {
    /// Milliseconds from now until this deadline (rounded up); zero or negative once it has passed: what `poll`
    /// and the reconnect backoff take.
    public var millisecondsFromNow: Int {
        let now = NIODeadline.now().uptimeNanoseconds
        guard uptimeNanoseconds > now else { return -Int((now - uptimeNanoseconds) / 1_000_000) }
        return Int((uptimeNanoseconds - now + 999_999) / 1_000_000)
    }
}
