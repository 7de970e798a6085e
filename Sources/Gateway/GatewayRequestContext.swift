import Hummingbird

/// The request context of every gateway route: the core context, the peer's address and the organization the
/// authentication middleware resolved.
struct GatewayRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The organization the request writes to (`x-organization-id`, or `default`).
    var organization = "default"
    /// The peer's IP address (`unknown` in in-process tests), what failed authentications are counted against.
    let peerAddress: String

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peerAddress = source.channel.remoteAddress?.ipAddress ?? "unknown"
    }

    /// Bodies are read by the controller with the limit of each route, not here.
    var maxUploadSize: Int { .max }
}
