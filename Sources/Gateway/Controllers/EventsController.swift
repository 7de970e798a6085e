import CompressNIO
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Shared

/// The four ingestion endpoints. Each request reads top to bottom: backpressure → body (type,
/// encoding, size) → validate → publish → 202. Auth has run before, in `AuthMiddleware`.
struct EventsController {
    typealias Context = GatewayRequestContext

    let publisher: any EventPublisher
    let validator: EventValidator
    let backlog: Backlog
    let metrics: GatewayMetrics
    let retryAfterSeconds: Int

    var limits: EventLimits { validator.limits }

    /// The routes, under `/events`.
    var endpoints: RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        routes.post("logs") { request, context in try await single(.logs, request, context) }
        routes.post("logs/batch") { request, context in try await batch(.logs, request, context) }
        routes.post("metrics") { request, context in try await single(.metrics, request, context) }
        routes.post("deployments") { request, context in try await single(.deployments, request, context) }
        return routes
    }

    func single(_ kind: EventKind, _ request: Request, _ context: Context) async throws -> Response {
        try checkBacklog()
        let body = try await Self.readBody(request, limit: limits.maxBodyBytes)
        let event: IngestEvent
        do {
            event = try validator.event(kind, body: body.readableBytesView)
        } catch {
            throw GatewayError.badRequest(error.message)
        }
        let receivedAt = Timestamp.now
        let queued = QueuedEvent(id: EventID.make(milliseconds: receivedAt.milliseconds), org: context.organization, receivedAt: receivedAt, event: event)
        try await publish([queued])
        metrics.accepted[kind]?.increment()
        return Self.accepted(#"{"id":""# + queued.id + #"","queued":true}"#)
    }

    func batch(_ kind: EventKind, _ request: Request, _ context: Context) async throws -> Response {
        try checkBacklog()
        let body = try await Self.readBody(request, limit: limits.maxBatchBodyBytes)
        let events: [IngestEvent]
        do {
            events = try validator.batch(kind, body: body.readableBytesView)
        } catch {
            throw GatewayError.badRequest(error.message)
        }
        let receivedAt = Timestamp.now
        let ids = EventID.make(count: events.count, milliseconds: receivedAt.milliseconds)
        let queued = zip(ids, events).map { QueuedEvent(id: $0, org: context.organization, receivedAt: receivedAt, event: $1) }
        try await publish(queued)
        metrics.accepted[kind]?.increment(by: Int64(queued.count))
        return Self.accepted(#"{"accepted":\#(queued.count)}"#)
    }

    private func checkBacklog() throws {
        if backlog.isOverHighWater {
            metrics.backpressureRejections.increment()
            throw GatewayError.unavailable("Ingestion backlog is over its high-water mark; retry later", retryAfter: retryAfterSeconds)
        }
    }

    private func publish(_ events: [QueuedEvent]) async throws {
        do {
            try await publisher.publish(events)
        } catch {
            throw GatewayError.unavailable("Event queue is unavailable; retry later", retryAfter: retryAfterSeconds, cause: error.reason)
        }
    }

    private static func accepted(_ json: String) -> Response {
        Response(
            status: .accepted,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: json))
        )
    }

    /// Reads a JSON body of at most `limit` bytes (after gzip decoding), refusing early what the headers
    /// already show to be too large (413), not JSON (415) or in an unknown encoding (415).
    static func readBody(_ request: Request, limit: Int) async throws -> ByteBuffer {
        if let type = request.headers[.contentType], type != "application/json" {
            let mediaType = type.split(separator: ";", maxSplits: 1)[0].trimmingCharacters(in: .whitespaces).lowercased()
            guard mediaType == "application/json" || (mediaType.hasPrefix("application/") && mediaType.hasSuffix("+json")) else {
                throw GatewayError.unsupportedMediaType("Content-Type must be application/json, got '\(mediaType.prefix(100))'")
            }
        }
        var gzip = false
        if let raw = request.headers[.contentEncoding], case let encoding = raw.trimmingCharacters(in: .whitespaces).lowercased(), !encoding.isEmpty {
            switch encoding {
            case "gzip", "x-gzip": gzip = true
            case "identity": break
            default: throw GatewayError.unsupportedMediaType("Content-Encoding must be gzip or identity, got '\(encoding.prefix(100))'")
            }
        }
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw GatewayError.tooLarge(limit: limit)
        }
        var body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw GatewayError.tooLarge(limit: limit)
        }
        guard gzip else { return body }
        do {
            return try body.decompress(with: .gzip(), maxSize: limit)
        } catch let error as CompressNIOError where error == .bufferOverflow {
            throw GatewayError.tooLarge(limit: limit, what: "body (decompressed)")
        } catch {
            throw GatewayError.badRequest("Request body is not valid gzip")
        }
    }
}
