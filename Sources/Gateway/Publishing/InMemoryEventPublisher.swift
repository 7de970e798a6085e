import NIOCore
import Shared
import Synchronization

/// The in-memory twin of `RedisEventPublisher`, for fast route tests: keeps what it is given, or
/// fails on demand like an unreachable Redis.
final class InMemoryEventPublisher: EventPublisher {
    private let state = Mutex<(events: [QueuedEvent], failing: Bool)>(([], false))

    init() {}

    /// Everything published so far, in order.
    var events: [QueuedEvent] { state.withLock { $0.events } }

    /// Makes later calls fail (`true`) or succeed again.
    func setFailing(_ failing: Bool) { state.withLock { $0.failing = failing } }

    func publish(_ events: [QueuedEvent], on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let accepted = state.withLock { state in
            guard !state.failing else { return false }
            state.events += events
            return true
        }
        return accepted ? eventLoop.makeSucceededVoidFuture() : eventLoop.makeFailedFuture(PublishError(reason: "in-memory publisher set to fail"))
    }

    func isReady() async -> Bool { state.withLock { !$0.failing } }
}
