import NIOCore
import Shared

/// Where accepted events go. The future succeeds only once every event is durably queued; it fails with a
/// `PublishError` otherwise, and then none of a batch is queued.
protocol EventPublisher: Sendable {
    /// Queues `events` all or nothing, from `eventLoop` (the one that read the request); completes on it.
    func publish(_ events: [QueuedEvent], on eventLoop: any EventLoop) -> EventLoopFuture<Void>
    /// Queues `events` (of a request of `bytes` bytes) if they fit their organization's `limit` and `idempotency`'s key
    /// was not used before, all or nothing; otherwise nothing is queued and the decision says why (or, for a retry,
    /// what the first request was answered). With neither, as `publish(_:on:)`.
    func publish(
        _ events: [QueuedEvent], bytes: Int, limit: RateLimit, idempotency: GuardedAppend.Idempotency?, on eventLoop: any EventLoop
    ) -> EventLoopFuture<PublishDecision>
    /// Whether the queue answers right now.
    func isReady() async -> Bool
}

/// The queue could not take the events; the client should retry.
struct PublishError: Error, Sendable {
    /// What Redis said, for the request's log line; never sent to the client.
    var reason: String
}

extension EventPublisher {
    /// Publishes without a limit, answered as admitted with no budget.
    func publishUnlimited(_ events: [QueuedEvent], on eventLoop: any EventLoop) -> EventLoopFuture<PublishDecision> {
        publish(events, on: eventLoop).map { .queued }
    }
}
