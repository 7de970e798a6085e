import Shared

/// An organization and one of its services: what the quota counts.
struct ServiceKey: Hashable, Sendable {
    var org: String
    var service: String

    init(_ event: QueuedEvent) {
        org = event.org
        service = event.event.service
    }
}
