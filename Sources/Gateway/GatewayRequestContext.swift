import Hummingbird

/// The request context of every gateway route: the core context plus the organization the
/// authentication middleware resolved.
struct GatewayRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The organization the request writes to (`x-organization-id`, or `default`).
    var organization = "default"

    init(source: Source) {
        coreContext = .init(source: source)
    }

    /// Bodies are read by the controller with the limit of each route, not here.
    var maxUploadSize: Int { .max }
}
