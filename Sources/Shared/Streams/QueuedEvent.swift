/// An event as it travels through a stream: the event with its id, organization and arrival time.
public struct QueuedEvent: Sendable, Equatable {
    /// The id made by the gateway (a lowercase UUID), returned in the 202 and the stored row's key.
    public var id: String
    /// The organization the event belongs to.
    public var org: String
    /// When the gateway accepted it.
    public var receivedAt: Timestamp
    /// The validated event.
    public var event: IngestEvent

    /// Makes a queued event.
    public init(id: String, org: String, receivedAt: Timestamp, event: IngestEvent) {
        self.id = id
        self.org = org
        self.receivedAt = receivedAt
        self.event = event
    }
}
