import HTTPTypes
import Hummingbird
import Shared

extension HTTPField.Name {
    /// `x-api-key`.
    static let apiKey = HTTPField.Name("x-api-key")!
    /// `x-organization-id`.
    static let organizationID = HTTPField.Name("x-organization-id")!
}

/// Authenticates with `x-api-key` (when a key is configured; compared in constant time) and resolves the
/// organization from `x-organization-id` (`default` when omitted), refusing ids outside
/// `^[A-Za-z0-9_-]{1,64}$` before any Redis key is built from them.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext

    /// The server-wide key's bytes; `nil` leaves the endpoints open.
    let apiKey: [UInt8]?

    init(apiKey: String?) {
        self.apiKey = apiKey.map { Array($0.utf8) }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let apiKey {
            guard let provided = request.headers[.apiKey], Self.constantTimeEqual(Array(provided.utf8), apiKey) else {
                throw GatewayError.unauthorized()
            }
        }
        var context = context
        if let organization = request.headers[.organizationID] {
            guard OrganizationID.isValid(organization) else {
                throw GatewayError.badRequest("Invalid x-organization-id: must match ^[A-Za-z0-9_-]{1,64}$")
            }
            context.organization = organization
        } else {
            context.organization = OrganizationID.default
        }
        return try await next(request, context)
    }

    /// Compares without an early exit, so the time taken does not tell how much of a guess was right.
    static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        var difference = UInt8(lhs.count == rhs.count ? 0 : 1)
        for index in 0..<max(lhs.count, rhs.count) {
            let left = index < lhs.count ? lhs[index] : 0
            let right = index < rhs.count ? rhs[index] : 0
            difference |= left ^ right
        }
        return difference == 0
    }
}
