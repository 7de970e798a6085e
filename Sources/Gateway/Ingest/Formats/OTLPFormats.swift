import Foundation
import HTTPTypes
import NIOCore
import OTLP
import Shared

/// OTLP/HTTP (`POST /v1/logs`, `/v1/metrics`): an export request in protobuf or in OTLP's JSON mapping (the variant,
/// 1 and 0), answered 200 with an export response in the same encoding. The records that map to valid events are
/// queued, the others counted in the answer's `partial_success`; errors are a `google.rpc.Status`.
struct OTLPFormat: IngestFormat {
    let kind: EventKind
    var isBatch: Bool { true }
    var successStatus: HTTPResponse.Status { .ok }
    var deduplicatesRetries: Bool { true }

    private static func encoding(_ variant: UInt8) -> OTLPEncoding { variant == 1 ? .protobuf : .json }

    func variant(of request: HTTPRequest) -> Result<UInt8, GatewayError> {
        switch OTLPEncoding(contentType: request.headerFields.value(of: .contentType)) {
        case .protobuf: return .success(1)
        case .json: return .success(0)
        case nil:
            let type = request.headerFields.value(of: .contentType).map { "'\($0.prefix(100))'" } ?? "none"
            return .failure(.unsupportedMediaType("Content-Type must be application/x-protobuf or application/json, got \(type)"))
        }
    }

    func successContentType(variant: UInt8) -> String { Self.encoding(variant).contentType }

    /// A `google.rpc.Status` in the request's encoding (JSON when it names neither).
    func answer(_ error: GatewayError, request: HTTPRequest) -> FormatAnswer {
        let encoding = OTLPEncoding(contentType: request.headerFields.value(of: .contentType)) ?? .json
        return FormatAnswer(
            status: error.status, headers: error.headers, body: ByteBuffer(bytes: encoding.status(httpStatus: error.status.code, message: error.message)),
            contentType: encoding.contentType)
    }

    /// A protobuf answer is kept as base64.
    func record(_ answer: [UInt8], variant: UInt8) -> String {
        variant == 1 ? Data(answer).base64EncodedString() : String(decoding: answer, as: UTF8.self)
    }

    func answer(recorded: String, variant: UInt8) -> [UInt8] {
        variant == 1 ? Array(Data(base64Encoded: recorded) ?? Data()) : Array(recorded.utf8)
    }

    func parse(_ body: ByteBuffer, _ request: FormatRequest) throws(GatewayError) -> ParsedBody {
        let encoding = Self.encoding(request.variant)
        let validator = request.validator
        let batch: OTLPBatch
        let answer: [UInt8]
        do {
            switch kind {
            case .metrics:
                let export = try body.withUnsafeReadableBytes { bytes throws(OTLPBodyError) in
                    try encoding.decode(OTLPExportMetricsServiceRequest.self, from: bytes)
                }
                batch = OTLPMetrics(validator: validator).events(export, now: request.receivedAt)
                try request.checkCount(batch.events.count, of: "metric rows")
                var response = OTLPExportMetricsServiceResponse()
                if let message = batch.rejectionMessage {
                    response.partialSuccess.rejectedDataPoints = Int64(batch.rejected)
                    response.partialSuccess.errorMessage = message
                }
                answer = encoding.encode(response)
            default:
                let export = try body.withUnsafeReadableBytes { bytes throws(OTLPBodyError) in
                    try encoding.decode(OTLPExportLogsServiceRequest.self, from: bytes)
                }
                try request.checkCount(OTLPLogs.recordCount(export), of: "log records")
                batch = OTLPLogs(validator: validator).events(export, encoding: encoding, now: request.receivedAt)
                var response = OTLPExportLogsServiceResponse()
                if let message = batch.rejectionMessage {
                    response.partialSuccess.rejectedLogRecords = Int64(batch.rejected)
                    response.partialSuccess.errorMessage = message
                }
                answer = encoding.encode(response)
            }
        } catch let error as OTLPBodyError {
            throw .badRequest(error.message)
        } catch let error as GatewayError {
            throw error
        } catch {
            throw .badRequest("\(error)")
        }
        return ParsedBody(events: request.queued(batch.events), bytes: body.readableBytes, answer: answer)
    }

    func operation(_ route: IngestRoute, limits: EventLimits) -> JSONValue {
        kind == .metrics
            ? OpenAPIDocument.otlp(
                "Export OpenTelemetry metrics (OTLP/HTTP)", request: "OTLPMetricsRequest", response: "OTLPMetricsResponse", limits: limits)
            : OpenAPIDocument.otlp("Export OpenTelemetry logs (OTLP/HTTP)", request: "OTLPLogsRequest", response: "OTLPLogsResponse", limits: limits)
    }
}
