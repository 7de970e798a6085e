import Hummingbird
import NIOCore

/// The request context of Hummingbird's routes (health, metrics, documents, usage); the ingestion routes are served by
/// `IngestHandler` before the router.
struct GatewayRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The client's address, as the authentication failure limiter counts it.
    let peer: String
    /// The loop of the request's connection.
    let eventLoop: any EventLoop

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peer = source.channel.remoteAddress?.ipAddress ?? "unknown"
        eventLoop = source.channel.eventLoop
    }
}
