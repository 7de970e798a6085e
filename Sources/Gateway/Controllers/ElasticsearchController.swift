import HTTPTypes
import Hummingbird
import NIOCore
import Shared

/// What shippers ask an Elasticsearch node before they send to `/_bulk`, answered as an Elasticsearch 8 node does:
/// `GET /` and `HEAD /` (the node, and whether the credentials are good), `GET /_license` (Beats and Logstash refuse a
/// node without an active license) and `GET /_cluster/health` (Vector's health check: green while Redis answers).
/// Authenticated as the bulk routes are; errors in Elasticsearch's shape.
struct ElasticsearchController {
    let authenticator: Authenticator
    let publisher: any EventPublisher
    let retryAfterSeconds: Int

    /// The version the gateway answers as: the bulk API it serves is Elasticsearch 8's.
    static let version = "8.11.0"

    var endpoints: RouteCollection<GatewayRequestContext> {
        let routes = RouteCollection(context: GatewayRequestContext.self)
        routes.get("/") { request, context in await node(request, context: context, body: true) }
        routes.head("/") { request, context in await node(request, context: context, body: false) }
        routes.get("_license") { request, context in
            await answer(request, context: context, body: true) { Self.licenseText }
        }
        routes.get("_cluster/health") { request, context in
            await answer(request, context: context, body: true) {
                guard await publisher.isReady() else {
                    throw GatewayError.unavailable("Redis is not reachable", retryAfter: retryAfterSeconds)
                }
                return Self.healthText
            }
        }
        return routes
    }

    private func node(_ request: Request, context: GatewayRequestContext, body: Bool) async -> Response {
        await answer(request, context: context, body: body) { Self.nodeText }
    }

    /// `text` once the request is authenticated, or the error in Elasticsearch's shape.
    private func answer(
        _ request: Request, context: GatewayRequestContext, body: Bool, _ make: () async throws -> String
    ) async -> Response {
        let format = ElasticsearchBulkFormat()
        let text: String
        do {
            let credentials = try format.credentials(of: request.head).get()
            switch authenticator.organization(of: credentials, request: request.head, peer: context.peer, on: context.eventLoop) {
            case .now(let result): _ = try result.get()
            case .later(let future): _ = try await future.get()
            }
            text = try await make()
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

    /// An active basic license, for the shippers that check one.
    static let licenseText =
        ([
            "license": [
                "status": "active", "uid": "operyn-ingest", "type": "basic", "issue_date": "2024-01-01T00:00:00.000Z",
                "issue_date_in_millis": 1_704_067_200_000, "max_nodes": 1_000, "max_resource_units": .null, "issued_to": "operyn",
                "issuer": "operyn", "start_date_in_millis": -1,
            ]
        ] as JSONValue).jsonText

    /// A green cluster of one node.
    static let healthText =
        ([
            "cluster_name": "operyn", "status": "green", "timed_out": false, "number_of_nodes": 1, "number_of_data_nodes": 1,
            "active_primary_shards": 0, "active_shards": 0, "relocating_shards": 0, "initializing_shards": 0, "unassigned_shards": 0,
            "delayed_unassigned_shards": 0, "number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0, "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": .number("100.0"),
        ] as JSONValue).jsonText
}
