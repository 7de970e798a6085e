import Hummingbird

/// The request context of Hummingbird's routes (health, metrics, documents); the ingestion routes are served by
/// `IngestHandler` before the router.
struct GatewayRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }
}
