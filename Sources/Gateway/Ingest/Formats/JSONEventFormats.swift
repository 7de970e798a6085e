import HTTPTypes
import NIOCore
import Shared

/// The API's own bodies: one JSON event (`POST /events/logs`, `/events/metrics`, `/events/deployments`), answered
/// `202 {"id": ..., "queued": true}`, or a JSON array of them (`POST /events/logs/batch`), answered
/// `202 {"accepted": N}`. A body with one invalid event is refused whole (400), nothing queued.
struct JSONEventFormat: IngestFormat {
    let kind: EventKind
    let isBatch: Bool

    /// `application/json` or any `application/...+json`; a request without `Content-Type` is read as JSON.
    func variant(of request: HTTPRequest) -> Result<UInt8, GatewayError> {
        guard let type = request.headerFields.value(of: .contentType), type != "application/json" else { return .success(0) }
        let essence = MediaType.essence(type)
        guard MediaType.isJSON(essence) else {
            return .failure(.unsupportedMediaType("Content-Type must be application/json, got '\(essence.prefix(100))'"))
        }
        return .success(0)
    }

    func parse(_ body: ByteBuffer, _ request: FormatRequest) throws(GatewayError) -> ParsedBody {
        do {
            if isBatch {
                let events = try request.validator.batch(kind, body: body.readableBytesView)
                return ParsedBody(events: request.queued(events), bytes: body.readableBytes, answer: Array(#"{"accepted":\#(events.count)}"#.utf8))
            }
            let event = try request.validator.event(kind, body: body.readableBytesView)
            let id = EventID.make(milliseconds: request.receivedAt.milliseconds)
            return ParsedBody(
                events: [QueuedEvent(id: id, org: request.organization, receivedAt: request.receivedAt, event: event)], bytes: body.readableBytes,
                answer: Array((#"{"id":""# + id + #"","queued":true}"#).utf8))
        } catch {
            throw .badRequest(error.message)
        }
    }

    func operation(_ route: IngestRoute, limits: EventLimits) -> JSONValue {
        switch (kind, isBatch) {
        case (.logs, true):
            OpenAPIDocument.ingest(
                "Ingest multiple log events", "LogEventBatch", "BatchAccepted", example: [OpenAPIDocument.logExample], maxBody: limits.maxBatchBodyBytes)
        case (.logs, false):
            OpenAPIDocument.ingest("Ingest a single log event", "LogEvent", "Queued", example: OpenAPIDocument.logExample, maxBody: limits.maxBodyBytes)
        case (.metrics, _):
            OpenAPIDocument.ingest(
                "Ingest a single metric data point", "MetricEvent", "Queued", example: OpenAPIDocument.metricExample, maxBody: limits.maxBodyBytes)
        case (.deployments, _):
            OpenAPIDocument.ingest(
                "Record a deployment event", "DeploymentEvent", "Queued", example: OpenAPIDocument.deploymentExample, maxBody: limits.maxBodyBytes)
        }
    }
}
