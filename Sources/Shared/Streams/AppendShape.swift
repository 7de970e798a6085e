import Synchronization

/// The events per entry of what one gateway appended, by kind, as a running mean that favours the newest appends:
/// the gateway's own estimate of its backlog's shape for when the workers have published none (they were stopped
/// before they could) or an older one.
public final class AppendShape: Sendable {
    /// Per kind: events and entries appended, in fixed point (× 16), halved whenever the entries pass 4 096 so that
    /// the mean follows what is appended now.
    private let counts = Mutex<[EventKind: (events: Int, entries: Int)]>([:])

    public init() {}

    /// One entry of `events` events of `kind` appended.
    public func record(_ kind: EventKind, events: Int) {
        counts.withLock { counts in
            var (total, entries) = counts[kind] ?? (0, 0)
            total += events * 16
            entries += 16
            if entries > 4_096 * 16 { (total, entries) = (total / 2, entries / 2) }
            counts[kind] = (total, entries)
        }
    }

    /// The mean events per entry of `kind`'s appends; `nil` before any.
    public func eventsPerEntry(_ kind: EventKind) -> Double? {
        counts.withLock { counts in
            guard let (events, entries) = counts[kind], entries > 0 else { return nil }
            return Double(events) / Double(entries)
        }
    }
}
