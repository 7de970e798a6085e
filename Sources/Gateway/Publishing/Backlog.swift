import Synchronization

/// The consumer group's backlog in events (not yet delivered plus pending; see `StreamBacklog.totalEvents`), read in
/// the background so requests only load an atomic.
final class Backlog: Sendable {
    private let value = Atomic<Int>(0)
    /// Above this the gateway answers 503.
    let highWater: Int

    init(highWater: Int) { self.highWater = highWater }

    /// The latest reading.
    var current: Int { value.load(ordering: .relaxed) }

    /// Whether new events should be refused.
    var isOverHighWater: Bool { current > highWater }

    func update(_ reading: Int) { value.store(reading, ordering: .relaxed) }
}
