import HTTPTypes
import Hummingbird
import NIOCore
import Prometheus

/// `/health/live`, `/health/ready` and `/metrics`: open endpoints for orchestrators and scrapers.
struct OperationsController<Context: RequestContext> {
    let publisher: any EventPublisher
    let registry: PrometheusCollectorRegistry
    let retryAfterSeconds: Int

    var endpoints: RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        routes.get("health/live") { _, _ in Self.json(#"{"status":"ok"}"#) }
        routes.get("health/ready") { _, _ in
            guard await publisher.isReady() else {
                throw GatewayError.unavailable("Redis is not reachable", retryAfter: retryAfterSeconds)
            }
            return Self.json(#"{"status":"ok","redis":"up"}"#)
        }
        routes.get("metrics") { _, _ in
            var text: [UInt8] = []
            registry.emit(into: &text)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: text))
            )
        }
        return routes
    }

    static func json(_ text: String) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
