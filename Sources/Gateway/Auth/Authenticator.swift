import HTTPTypes
import NIOCore
import Shared

extension HTTPField.Name {
    /// `x-api-key`.
    static let apiKey = HTTPField.Name("x-api-key")!
    /// `x-organization-id`.
    static let organizationID = HTTPField.Name("x-organization-id")!
    /// `x-forwarded-for`, read only when the gateway is told to trust it.
    static let forwardedFor = HTTPField.Name("x-forwarded-for")!
}

/// Authenticates ingest requests and resolves the organization they write to.
///
/// - The server-wide key (`OPERYN_API_KEY`, compared in constant time) may write to any organization:
///   `x-organization-id`, or `default` when omitted.
/// - An organization key (found by its SHA-256) writes to its own organization only: `x-organization-id` may be
///   omitted, and a different one is a 403.
/// - Without a valid key: 401 when a key is required (`OPERYN_API_KEY` set, or `OPERYN_REQUIRE_API_KEY`), else the
///   request is open and goes to `x-organization-id` or `default`, as the spec says.
/// - A client whose authentications failed too often is answered 429 until its window ends.
///
/// `x-organization-id` outside `^[A-Za-z0-9_-]{1,64}$` is a 400 before any Redis key is built from it. Everything
/// is decided on the calling event loop; only an organization key missing from the cache waits for Redis.
struct Authenticator: Sendable {
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

    /// A decision now, or one that waits for an organization key lookup.
    enum Decision {
        case now(Result<String, GatewayError>)
        case later(EventLoopFuture<String>)
    }

    /// The organization `request` writes to, or the error to answer (429, 401, 403, 400, or 503 when Redis cannot
    /// be asked about a key). `peer` is the connection's address.
    func organization(of request: HTTPRequest, peer: String, on eventLoop: any EventLoop) -> Decision {
        organization(of: Credentials(headers: request), request: request, peer: peer, on: eventLoop)
    }

    /// The organization `credentials` (as the request's format read them) write to.
    func organization(of credentials: Credentials, request: HTTPRequest, peer: String, on eventLoop: any EventLoop) -> Decision {
        let client = clientAddress(request, peer: peer)
        if let seconds = failures.retryAfter(client: client) {
            return .now(
                .failure(
                    GatewayError(
                        status: .tooManyRequests, message: "Too many failed authentication attempts; retry after \(seconds) seconds",
                        headers: [.retryAfter: String(seconds)])))
        }
        let header = credentials.organization
        let source = credentials.organizationSource
        guard let provided = credentials.key else {
            return .now(keyRequired ? refused(client) : organization(header, key: nil, source: source))
        }
        if let serverKey, Self.constantTimeEqual(provided.utf8, serverKey) { return .now(organization(header, key: nil, source: source)) }
        guard let organizationKeys, provided.hasPrefix(APIKey.scheme) else {
            return .now(keyRequired ? refused(client) : organization(header, key: nil, source: source))
        }
        let now = Timestamp.now.milliseconds
        let digest = APIKey.sha256(provided)
        if let cached = organizationKeys.cachedRecord(sha256: digest) {
            return .now(decide(cached, header: header, source: source, client: client, now: now))
        }
        let retryAfterSeconds = retryAfterSeconds
        return .later(
            organizationKeys.record(sha256: digest, on: eventLoop)
                .flatMapErrorThrowing { _ in
                    throw GatewayError.unavailable("Authentication is unavailable; retry later", retryAfter: retryAfterSeconds)
                }
                .flatMapThrowing { record in try decide(record, header: header, source: source, client: client, now: now).get() })
    }

    private func decide(_ record: APIKeyRecord?, header: String?, source: String, client: String, now: Int64) -> Result<String, GatewayError> {
        if let record, record.isValid(at: now) { return organization(header, key: record.organization, source: source) }
        return keyRequired ? refused(client) : organization(header, key: nil, source: source)
    }

    private func refused(_ client: String) -> Result<String, GatewayError> {
        failures.recordFailure(client: client)
        return .failure(.unauthorized())
    }

    /// `x-organization-id` checked against the allow-list and against the key's own organization.
    private func organization(_ header: String?, key keyOrganization: String?, source: String = "x-organization-id") -> Result<String, GatewayError> {
        guard let header else { return .success(keyOrganization ?? OrganizationID.default) }
        guard OrganizationID.isValid(header) else {
            return .failure(.badRequest("Invalid \(source): must match ^[A-Za-z0-9_-]{1,64}$"))
        }
        if let keyOrganization, keyOrganization != header {
            return .failure(GatewayError(status: .forbidden, message: "API key does not belong to organization \(header)"))
        }
        return .success(header)
    }

    /// The address failures are counted against: the peer, or the first `x-forwarded-for` hop when trusted.
    private func clientAddress(_ request: HTTPRequest, peer: String) -> String {
        if trustForwardedFor, let forwarded = request.headerFields.value(of: .forwardedFor) {
            let first = (forwarded.split(separator: ",", maxSplits: 1).first ?? "").filter { $0 != " " && $0 != "\t" }
            if !first.isEmpty { return String(first.prefix(64)) }
        }
        return peer
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
