import HTTPTypes
import NIOCore
import Shared

/// One way events come in: the bodies of a media type and how they become events, and how the requests that carry
/// them are authenticated and answered. `IngestRoute.table` pairs each with its paths; `IngestService` and
/// `IngestHandler` take every format through the same steps (authentication, admission, the body read within its
/// limit and decoded, the append to Redis under the rate limit and the idempotency record, the answer).
///
/// A format is chosen by the route, and the variant of it by the request's head: `variant(of:)` reads the
/// `Content-Type` (OTLP: protobuf or JSON) into a small number that the answer and the idempotency record keep.
protocol IngestFormat: Sendable {
    /// The kind of events its bodies hold.
    var kind: EventKind { get }
    /// Whether a body may hold many events (the batch limits apply).
    var isBatch: Bool { get }
    /// The status of a success.
    var successStatus: HTTPResponse.Status { get }
    /// The variant a request's head asks for, or the error to answer (415 for a media type it does not read).
    func variant(of request: HTTPRequest) -> Result<UInt8, GatewayError>
    /// Who is asking: the key and the organization the request names.
    func credentials(of request: HTTPRequest) -> Result<Credentials, GatewayError>
    /// The body's events and the success's body; a body that is refused as a whole throws its error.
    func parse(_ body: ByteBuffer, _ request: FormatRequest) throws(GatewayError) -> ParsedBody
    /// The `Content-Type` of a success of `variant`.
    func successContentType(variant: UInt8) -> String
    /// An error's answer, in the format's own error shape.
    func answer(_ error: GatewayError, request: HTTPRequest) -> FormatAnswer
    /// Header fields every answer carries (besides the content type and length), if any.
    var answerFields: HTTPFields? { get }
    /// What an idempotency record is keyed by besides the organization and the key: the path, the body's encoding and
    /// the variant (so one body sent as protobuf and as JSON are two requests), then the body.
    func idempotencyScope(path: String, compression: UInt8, variant: UInt8) -> [UInt8]
    /// Whether a retry of the same body by the same organization, without an `Idempotency-Key`, is answered from the
    /// first answer within the retry window (`IngestService.retryWindowSeconds`) and writes nothing: OTLP, whose
    /// exporters retry timeouts, 503s and `UNAVAILABLE` and send no key.
    var deduplicatesRetries: Bool { get }
    /// A success's body as the idempotency record keeps it (text).
    func record(_ answer: [UInt8], variant: UInt8) -> String
    /// A recorded success's body.
    func answer(recorded: String, variant: UInt8) -> [UInt8]
    /// The OpenAPI operation of `route`.
    func operation(_ route: IngestRoute, limits: EventLimits) -> JSONValue
}

/// The key and organization a request names, before they are checked (`Authenticator`).
struct Credentials: Sendable {
    /// The API key, if the request carries one.
    var key: String?
    /// The organization it names (`x-organization-id`, or the user of `Authorization`), if any.
    var organization: String?
    /// Where `organization` was read, as errors name it.
    var organizationSource = "x-organization-id"

    /// `x-api-key` and `x-organization-id`.
    init(headers request: HTTPRequest) {
        key = request.headerFields.value(of: .apiKey)
        organization = request.headerFields.value(of: .organizationID)
    }

    init(key: String?, organization: String?, organizationSource: String = "x-organization-id") {
        self.key = key
        self.organization = organization
        self.organizationSource = organizationSource
    }
}

/// What a format's parser is given besides the body.
struct FormatRequest {
    let organization: String
    let receivedAt: Timestamp
    let variant: UInt8
    /// The route's path parameter (the index of `/{index}/_bulk`), when it has one.
    let parameter: String?
    let validator: EventValidator
    /// When the request's head arrived (a bulk answer's `took`).
    let started: NIODeadline

    var limits: EventLimits { validator.limits }

    /// The events of `ids` and `events`, stamped with this request's organization and receipt time.
    func queued(_ events: [IngestEvent]) -> [QueuedEvent] {
        let ids = EventID.make(count: events.count, milliseconds: receivedAt.milliseconds)
        return zip(ids, events).map { QueuedEvent(id: $0, org: organization, receivedAt: receivedAt, event: $1) }
    }

    /// One request holds at most `OPERYN_MAX_BATCH_EVENTS` events or records, as a batch does.
    func checkCount(_ count: Int, of what: String) throws(GatewayError) {
        guard count <= limits.maxBatchEvents else {
            throw GatewayError(
                status: .contentTooLarge,
                message: "Request of \(count) \(what) exceeds the limit of \(limits.maxBatchEvents) per request; send smaller batches")
        }
    }
}

/// What a body became: the events to queue, the decoded body's size (what the bytes-per-second limit counts) and the
/// success's body.
struct ParsedBody {
    var events: [QueuedEvent]
    var bytes: Int
    var answer: [UInt8]
}

/// An answer's status, header fields and body.
struct FormatAnswer {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: ByteBuffer
    var contentType: String
}

extension IngestFormat {
    var successStatus: HTTPResponse.Status { .accepted }

    var answerFields: HTTPFields? { nil }

    func credentials(of request: HTTPRequest) -> Result<Credentials, GatewayError> { .success(Credentials(headers: request)) }

    func successContentType(variant: UInt8) -> String { "application/json; charset=utf-8" }

    /// The spec's error body, `{"statusCode": N, "message": "..."}`.
    func answer(_ error: GatewayError, request: HTTPRequest) -> FormatAnswer {
        FormatAnswer(
            status: error.status, headers: error.headers, body: ByteBuffer(bytes: GatewayError.body(status: error.status, message: error.message)),
            contentType: "application/json; charset=utf-8")
    }

    func idempotencyScope(path: String, compression: UInt8, variant: UInt8) -> [UInt8] { Array(path.utf8) + [compression, variant] }

    var deduplicatesRetries: Bool { false }

    func record(_ answer: [UInt8], variant: UInt8) -> String { String(decoding: answer, as: UTF8.self) }

    func answer(recorded: String, variant: UInt8) -> [UInt8] { Array(recorded.utf8) }
}

/// Media types compared as HTTP compares them: parameters (`; charset=utf-8`), blanks around and case aside.
enum MediaType {
    /// The media type of a `Content-Type`, lowercased, without its parameters.
    static func essence(_ contentType: String) -> Substring {
        let type = contentType.prefix { $0 != ";" }
        let trimmed = type.drop { $0 == " " || $0 == "\t" }
        let end = trimmed.lastIndex { $0 != " " && $0 != "\t" }.map { trimmed.index(after: $0) } ?? trimmed.startIndex
        let essence = trimmed[..<end]
        return essence.contains(where: \.isUppercase) ? Substring(essence.lowercased()) : essence
    }

    /// `application/json` or any `application/...+json`.
    static func isJSON(_ essence: Substring) -> Bool {
        essence == "application/json" || (essence.hasPrefix("application/") && essence.hasSuffix("+json"))
    }
}
