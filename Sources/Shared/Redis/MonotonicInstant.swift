#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A point on the monotonic clock, in nanoseconds: cheap to read, immune to wall-clock jumps.
public struct MonotonicInstant: Comparable, Sendable {
    /// Nanoseconds since an arbitrary start.
    public var nanoseconds: UInt64

    /// The instant `nanoseconds` after the clock's start.
    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    /// The current instant.
    public static var now: MonotonicInstant {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return MonotonicInstant(nanoseconds: UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec))
    }

    /// This instant moved `milliseconds` later.
    public func adding(milliseconds: Int) -> MonotonicInstant {
        MonotonicInstant(nanoseconds: nanoseconds + UInt64(max(0, milliseconds)) * 1_000_000)
    }

    /// Milliseconds from now until this instant (rounded up); zero or negative once it has passed.
    public var millisecondsFromNow: Int {
        let now = MonotonicInstant.now.nanoseconds
        guard nanoseconds > now else { return -Int((now - nanoseconds) / 1_000_000) }
        return Int((nanoseconds - now + 999_999) / 1_000_000)
    }

    public static func < (lhs: MonotonicInstant, rhs: MonotonicInstant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }
}
