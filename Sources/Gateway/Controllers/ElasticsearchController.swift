import HTTPTypes
import Hummingbird
import NIOCore
import Shared

/// `GET /` and `HEAD /`, answered as an Elasticsearch 8 node answers them, for the clients and shippers that check
/// the server (and their credentials) before they send to `/_bulk`. Authenticated as the bulk routes are; errors in
/// Elasticsearch's shape.
struct ElasticsearchController {
    let authenticator: Authenticator
    let retryAfterSeconds: Int

    /// The version the gateway answers as: the bulk API it serves is Elasticsearch 8's.
    static let version = "8.11.0"

    var endpoints: RouteCollection<GatewayRequestContext> {
        let routes = RouteCollection(context: GatewayRequestContext.self)
        routes.get("/") { request, context in await node(request, context: context, body: true) }
        routes.head("/") { request, context in await node(request, context: context, body: false) }
        return routes
    }

    private func node(_ request: Request, context: GatewayRequestContext, body: Bool) async -> Response {
        let format = ElasticsearchBulkFormat()
        do {
            let credentials = try format.credentials(of: request.head).get()
            switch authenticator.organization(of: credentials, request: request.head, peer: context.peer, on: context.eventLoop) {
            case .now(let result): _ = try result.get()
            case .later(let future): _ = try await future.get()
            }
        } catch {
            let error =
                (error as? GatewayError) ?? .unavailable("Authentication is unavailable; retry later", retryAfter: retryAfterSeconds, cause: "\(error)")
            let answer = format.answer(error, request: request.head)
            var headers = answer.headers
            headers.append(contentsOf: ElasticsearchBulkFormat.productFields)
            headers[.contentType] = answer.contentType
            return Response(status: answer.status, headers: headers, body: body ? .init(byteBuffer: answer.body) : .init())
        }
        var headers = ElasticsearchBulkFormat.productFields
        headers[.contentType] = "application/json; charset=utf-8"
        let text = Self.nodeText
        headers[.contentLength] = String(text.utf8.count)
        return Response(status: .ok, headers: headers, body: body ? .init(byteBuffer: ByteBuffer(string: text)) : .init())
    }

    /// The node's description.
    static let nodeText: String =
        ([
            "name": "operyn-gateway", "cluster_name": "operyn", "cluster_uuid": "operyn-ingest",
            "version": [
                "number": .string(version), "build_flavor": "default", "build_type": "operyn", "build_hash": "operyn",
                "build_date": "2023-11-04T10:04:57.184859352Z",
                "build_snapshot": false, "lucene_version": "9.8.0", "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0",
            ],
            "tagline": "You Know, for Search",
        ] as JSONValue).jsonText
}
