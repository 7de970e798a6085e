import HTTPTypes
import Hummingbird
import Shared

extension HTTPField.Name {
    /// `x-api-key`.
    static let apiKey = HTTPField.Name("x-api-key")!
    /// `x-organization-id`.
    static let organizationID = HTTPField.Name("x-organization-id")!
    /// `x-forwarded-for`, read only when the gateway is told to trust it.
    static let forwardedFor = HTTPField.Name("x-forwarded-for")!
}

/// Authenticates `/events` requests and resolves the organization they write to.
///
/// - The server-wide key (`OPERYN_API_KEY`, compared in constant time) may write to any organization:
///   `x-organization-id`, or `default` when omitted.
/// - An organization key (found by its SHA-256) writes to its own organization only: `x-organization-id` may be
///   omitted, and a different one is a 403.
/// - Without a valid key: 401 when a key is required (`OPERYN_API_KEY` set, or `OPERYN_REQUIRE_API_KEY`), else the
///   request is open and goes to `x-organization-id` or `default`, as the spec says.
/// - A client whose authentications failed too often is answered 429 until its window ends.
///
/// `x-organization-id` outside `^[A-Za-z0-9_-]{1,64}$` is a 400 before any Redis key is built from it.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext

    /// The server-wide key's bytes; `nil` when there is none.
    let serverKey: [UInt8]?
    /// Whether requests without a valid key are refused.
    let keyRequired: Bool
    /// Organization keys; `nil` when they are not looked up.
    let organizationKeys: APIKeyCache?
    /// Failed authentications per client.
    let failures: AuthFailureLimiter
    /// Whether the client address is taken from `x-forwarded-for` (behind a trusted load balancer).
    let trustForwardedFor: Bool
    /// The `Retry-After` of 503 answers when Redis cannot be asked about a key.
    let retryAfterSeconds: Int

    init(
        serverKey: String?, keyRequired: Bool, organizationKeys: APIKeyCache?, failures: AuthFailureLimiter, trustForwardedFor: Bool,
        retryAfterSeconds: Int
    ) {
        self.serverKey = serverKey.map { Array($0.utf8) }
        self.keyRequired = keyRequired || serverKey != nil
        self.organizationKeys = organizationKeys
        self.failures = failures
        self.trustForwardedFor = trustForwardedFor
        self.retryAfterSeconds = retryAfterSeconds
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let client = clientAddress(request, context)
        if let seconds = failures.retryAfter(client: client) {
            throw GatewayError(
                status: .tooManyRequests, message: "Too many failed authentication attempts; retry after \(seconds) seconds",
                headers: [.retryAfter: String(seconds)]
            )
        }
        let keyOrganization: String?
        switch try await authenticate(request.headers[.apiKey]) {
        case .serverKey, .open: keyOrganization = nil
        case .organizationKey(let organization): keyOrganization = organization
        case .refused:
            failures.recordFailure(client: client)
            throw GatewayError.unauthorized()
        }
        var context = context
        if let organization = request.headers[.organizationID] {
            guard OrganizationID.isValid(organization) else {
                throw GatewayError.badRequest("Invalid x-organization-id: must match ^[A-Za-z0-9_-]{1,64}$")
            }
            if let keyOrganization, keyOrganization != organization {
                throw GatewayError(status: .forbidden, message: "API key does not belong to organization \(organization)")
            }
            context.organization = organization
        } else {
            context.organization = keyOrganization ?? OrganizationID.default
        }
        return try await next(request, context)
    }

    private enum Outcome {
        case serverKey, organizationKey(String), open, refused
    }

    private func authenticate(_ provided: String?) async throws -> Outcome {
        guard let provided else { return keyRequired ? .refused : .open }
        if let serverKey, Self.constantTimeEqual(provided.utf8, serverKey) { return .serverKey }
        if let organizationKeys, provided.hasPrefix(APIKey.scheme) {
            let record: APIKeyRecord?
            do {
                record = try await organizationKeys.record(forKey: provided)
            } catch {
                throw GatewayError.unavailable("Authentication is unavailable; retry later", retryAfter: retryAfterSeconds)
            }
            if let record, record.isValid(at: Timestamp.now.milliseconds) { return .organizationKey(record.organization) }
        }
        return keyRequired ? .refused : .open
    }

    /// The address failures are counted against: the peer, or the first `x-forwarded-for` hop when trusted.
    private func clientAddress(_ request: Request, _ context: Context) -> String {
        if trustForwardedFor, let forwarded = request.headers[.forwardedFor] {
            let first = (forwarded.split(separator: ",", maxSplits: 1).first ?? "").filter { $0 != " " && $0 != "\t" }
            if !first.isEmpty { return String(first.prefix(64)) }
        }
        return context.peerAddress
    }

    /// Compares without an early exit, so the time taken does not tell how much of a guess was right.
    /// Reads the header's bytes in place: no copy per request.
    static func constantTimeEqual(_ provided: some Sequence<UInt8>, _ expected: [UInt8]) -> Bool {
        var difference: UInt8 = 0
        var count = 0
        for byte in provided {
            difference |= byte ^ (count < expected.count ? expected[count] : 0)
            count += 1
        }
        return difference == 0 && count == expected.count
    }
}
