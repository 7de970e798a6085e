import HTTPTypes
import NIOCore
import Shared

/// An OTLP export that arrived over gRPC, taken through the same steps as the OTLP/HTTP route (`IngestService`):
/// its metadata read as that route reads its header fields, then who is asking, the admission, the decoder and
/// mapping of `OTLPFormat`, the rate limit, the idempotency record and the append, on one of the gateway's event loops.
/// The answer is the route's protobuf answer (the export response with its partial success), or its `GatewayError`.
struct GRPCIngest: Sendable {
    let service: IngestService
    let eventLoops: any EventLoopGroup

    /// The metadata an export may carry, as the HTTP route reads them: the credentials, the organization and a retry's
    /// key (`idempotency-key`). gRPC metadata keys are lowercase.
    static let forwarded: [HTTPField.Name] = [.apiKey, .organizationID, IngestService.idempotencyKey, .authorization]

    /// The answer to one export of `message` (the serialized export request) to `path` (`/v1/logs` or `/v1/metrics`).
    /// `metadata` gives the first value of a key, `peer` is the client's address (failed authentications are counted
    /// against it).
    func export(_ message: ByteBuffer, path: String, metadata: (String) -> String?, peer: String) async -> Result<IngestService.Answer, GatewayError> {
        var fields = HTTPFields()
        fields[.contentType] = "application/x-protobuf"
        for name in Self.forwarded {
            if let value = metadata(name.canonicalName) { fields[name] = value }
        }
        let request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: path, headerFields: fields)
        guard let match = IngestRoute.match(request) else { return .failure(GatewayError(status: .notFound, message: "No route for \(path)")) }
        let started = NIODeadline.now()
        let eventLoop = eventLoops.any()
        let service = service
        let answered = eventLoop.flatSubmit { () -> EventLoopFuture<IngestService.Answer> in
            let credentials: Credentials
            switch match.route.format.credentials(of: request) {
            case .success(let read): credentials = read
            case .failure(let error): return eventLoop.makeFailedFuture(error)
            }
            let organization: EventLoopFuture<String>
            switch service.authenticator.organization(of: credentials, request: request, peer: peer, on: eventLoop) {
            case .now(let result): organization = eventLoop.makeCompletedFuture(result.mapError { $0 as any Error })
            case .later(let lookup): organization = lookup
            }
            return organization.flatMap { organization in
                switch service.admit(request, route: match.route, organization: organization) {
                case .success(let admission):
                    guard message.readableBytes <= admission.limit else { return eventLoop.makeFailedFuture(GatewayError.tooLarge(limit: admission.limit)) }
                    return service.accept(message, match: match, admission: admission, started: started, on: eventLoop)
                case .failure(let error):
                    return eventLoop.makeFailedFuture(error)
                }
            }
        }
        do {
            return .success(try await answered.get())
        } catch let error as GatewayError {
            return .failure(error)
        } catch {
            return .failure(GatewayError(status: .internalServerError, message: "Internal server error", cause: "\(error)"))
        }
    }

    /// The address part of a gRPC peer (`ipv4:127.0.0.1:5000`, `ipv6:[::1]:5000`, `unix:/path`).
    static func address(ofPeer peer: String) -> String {
        var rest = Substring(peer)
        for scheme in ["ipv4:", "ipv6:"] where rest.hasPrefix(scheme) {
            rest = rest.dropFirst(scheme.count)
            if let colon = rest.lastIndex(of: ":") { rest = rest[..<colon] }
            if rest.hasPrefix("[") && rest.hasSuffix("]") { rest = rest.dropFirst().dropLast() }
        }
        return String(rest.prefix(64))
    }
}
