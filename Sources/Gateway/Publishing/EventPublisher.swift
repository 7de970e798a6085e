import Shared

/// Where accepted events go. Returns only once every event is durably queued; throws otherwise,
/// and then none of a batch is queued.
protocol EventPublisher: Sendable {
    /// Queues `events` all or nothing.
    func publish(_ events: [QueuedEvent]) async throws(PublishError)
    /// Whether the queue answers right now.
    func isReady() async -> Bool
}

/// The queue could not take the events; the client should retry.
struct PublishError: Error, Sendable {
    /// What Redis said, for the request's log line (`ErrorMiddleware`); never sent to the client.
    var reason: String
}
