import CompressNIO
import Foundation
import HTTPTypes
import NIOCore
import OTLP
import Shared

/// What the ingestion routes do, in order, on the event loop that read the request:
///
/// 1. who is asking, and for which organization (`Authenticator`: 429, 401, 403, 400, 503);
/// 2. `admit`: backpressure (503), then what the head shows of the body: media type and encoding (415), declared
///    length (413);
/// 3. the body is read by `IngestHandler` up to the route's limit (413);
/// 4. `accept`: gzip or zstd (413, 400), validation (400), the organization's rate limit and the append to Redis, in one
///    step (429, or 413 for a request larger than the burst; 503), and the 202.
///
/// The OTLP routes take the same steps with an export request for a body (protobuf or JSON; 400 when it is neither):
/// the records that map to valid events go on, the others are counted in the 200's `partial_success`.
///
/// Nothing is written to Redis before step 4 has validated every event.
struct IngestService: Sendable {
    let authenticator: Authenticator
    let validator: EventValidator
    let publisher: any EventPublisher
    let rateLimits: OrganizationRateLimits
    let backlog: Backlog
    let metrics: GatewayMetrics
    let retryAfterSeconds: Int
    /// How long an `Idempotency-Key` is remembered (`OPERYN_IDEMPOTENCY_TTL_SECONDS`).
    var idempotencyTTLSeconds = 86_400
    /// Where idempotency records are kept.
    var keys = RedisKeys()

    /// The request header naming a retry-safe request.
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    /// The answer header of a retry answered from the first request's record.
    static let idempotentReplayed = HTTPField.Name("Idempotent-Replayed")!

    var limits: EventLimits { validator.limits }

    /// What a request's head allowed: where its events go and how to read its body.
    struct Admission {
        let organization: String
        /// Its body's `Content-Encoding`, unless identity.
        let compression: Compression?
        /// The most bytes its body may have, before and after decoding.
        let limit: Int
        /// Its `Idempotency-Key`, if it has one.
        var idempotencyKey: String? = nil
        /// The encoding of an OTLP request (and of its answer).
        var encoding: OTLPEncoding? = nil
    }

    /// The body encodings taken (`Content-Encoding`), each decoded within the body's size limit.
    enum Compression: UInt8 {
        case gzip = 1
        case zstd = 2
    }

    /// Step 2.
    func admit(_ request: HTTPRequest, route: IngestRoute, organization: String) -> Result<Admission, GatewayError> {
        if backlog.isOverHighWater {
            metrics.backpressureRejections.increment()
            return .failure(.unavailable("Ingestion backlog is over its high-water mark; retry later", retryAfter: retryAfterSeconds))
        }
        let limit = route.isBatch ? limits.maxBatchBodyBytes : limits.maxBodyBytes
        var encoding: OTLPEncoding?
        if route.isOTLP {
            encoding = OTLPEncoding(contentType: request.headerFields[.contentType])
            guard encoding != nil else {
                let type = request.headerFields[.contentType].map { "'\($0.prefix(100))'" } ?? "none"
                return .failure(.unsupportedMediaType("Content-Type must be application/x-protobuf or application/json, got \(type)"))
            }
        } else if let type = request.headerFields[.contentType], type != "application/json" {
            let mediaType = type.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)[0].trimmingCharacters(in: .whitespaces).lowercased()
            guard mediaType == "application/json" || (mediaType.hasPrefix("application/") && mediaType.hasSuffix("+json")) else {
                return .failure(.unsupportedMediaType("Content-Type must be application/json, got '\(mediaType.prefix(100))'"))
            }
        }
        var compression: Compression?
        if let raw = request.headerFields[.contentEncoding], case let encoding = raw.trimmingCharacters(in: .whitespaces).lowercased(), !encoding.isEmpty {
            switch encoding {
            case "gzip", "x-gzip": compression = .gzip
            case "zstd": compression = .zstd
            case "identity": break
            default: return .failure(.unsupportedMediaType("Content-Encoding must be gzip, zstd or identity, got '\(encoding.prefix(100))'"))
            }
        }
        if let length = request.headerFields[.contentLength].flatMap({ Int($0) }), length > limit {
            return .failure(.tooLarge(limit: limit))
        }
        var idempotencyKey: String?
        if let key = request.headerFields[Self.idempotencyKey] {
            guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
                return .failure(.badRequest("Invalid Idempotency-Key: must be 1-255 visible ASCII characters"))
            }
            idempotencyKey = key
        }
        return .success(Admission(organization: organization, compression: compression, limit: limit, idempotencyKey: idempotencyKey, encoding: encoding))
    }

    /// A success's status, body and header fields (the rate-limit fields of a limited organization).
    struct Answer {
        var status = HTTPResponse.Status.accepted
        var body: ByteBuffer
        var headers: HTTPFields = [:]
        var contentType = "application/json; charset=utf-8"
    }

    /// What a body became: the events to queue, the decoded body's size (what the bytes-per-second limit counts) and the
    /// success's body.
    struct Parsed {
        var events: [QueuedEvent]
        var bytes: Int
        var answer: [UInt8]
    }

    /// Step 4: the 202 once Redis has the events; fails with the `GatewayError` to answer.
    func accept(_ body: ByteBuffer, route: IngestRoute, admission: Admission, on eventLoop: any EventLoop) -> EventLoopFuture<Answer> {
        let parsed: Parsed
        do {
            parsed = try self.parsed(body, route: route, admission: admission)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let (events, bytes) = (parsed.events, parsed.bytes)
        let success = Answer(
            status: route.isOTLP ? .ok : .accepted, body: ByteBuffer(bytes: parsed.answer),
            contentType: admission.encoding?.contentType ?? "application/json; charset=utf-8")
        // An OTLP request whose every record was refused: its answer says so, and nothing is queued.
        if events.isEmpty { return eventLoop.makeSucceededFuture(success) }
        let (retryAfterSeconds, publisher, metrics) = (retryAfterSeconds, publisher, metrics)
        let counter = metrics.accepted[route.kind]
        let answered = eventLoop.makePromise(of: Answer.self)
        let organization = admission.organization
        let idempotency = admission.idempotencyKey.map { key in
            GuardedAppend.Idempotency(
                record: keys.idempotency(org: organization, key: key),
                digest: APIKey.sha256(
                    bytes: Array(route.path.utf8) + [admission.compression?.rawValue ?? 0, admission.encoding == .protobuf ? 1 : 0] + body.readableBytesView),
                answer: Self.record(parsed.answer, encoding: admission.encoding), ttlSeconds: idempotencyTTLSeconds)
        }
        let decided: EventLoopFuture<(RateLimit, GuardedAppend.Decision)>
        if idempotency == nil, let limit = rateLimits.cachedLimit(of: organization), limit.isNone {
            // The common case, no limit known without asking Redis: the plain (coalesced) append.
            decided = publisher.publish(events, on: eventLoop).map { (limit, .admitted(ids: [], budgets: [])) }
        } else {
            decided = rateLimits.limit(of: organization, on: eventLoop).flatMap { limit in
                publisher.publish(events, bytes: bytes, limit: limit, idempotency: idempotency, on: eventLoop).map { (limit, $0) }
            }
        }
        decided.whenComplete { result in
            switch result {
            case .success((_, .admitted(_, let budgets))):
                counter?.increment(by: Int64(events.count))
                var answer = success
                for (name, value) in RateLimitHeaders.fields(budgets) { answer.headers[name] = value }
                answered.succeed(answer)
            case .success((_, .replayed(let first))):
                // A retry of a request already queued: its answer again, nothing queued twice.
                var answer = success
                answer.body = ByteBuffer(bytes: Self.answer(recorded: first, encoding: admission.encoding))
                answer.headers = [Self.idempotentReplayed: "true"]
                answered.succeed(answer)
            case .success((_, .conflict)):
                answered.fail(
                    GatewayError(
                        status: .unprocessableContent,
                        message: "Idempotency-Key was already used with another request of organization \(organization); use a new key for a new request"))
            case .success((let limit, .limited(let refusal))):
                metrics.rateLimited.increment()
                answered.fail(GatewayError.rateLimited(refusal, limit: limit, organization: organization, batch: route.isBatch))
            case .failure(let error):
                answered.fail(
                    GatewayError.unavailable(
                        "Event queue is unavailable; retry later", retryAfter: retryAfterSeconds, cause: (error as? PublishError)?.reason ?? "\(error)"))
            }
        }
        return answered.futureResult
    }

    /// A success's body as its idempotency record keeps it: text, or base64 for a protobuf answer.
    static func record(_ answer: [UInt8], encoding: OTLPEncoding?) -> String {
        encoding == .protobuf ? Data(answer).base64EncodedString() : String(decoding: answer, as: UTF8.self)
    }

    /// A recorded success's body.
    static func answer(recorded: String, encoding: OTLPEncoding?) -> [UInt8] {
        encoding == .protobuf ? Array(Data(base64Encoded: recorded) ?? Data()) : Array(recorded.utf8)
    }

    /// The body decoded and validated, each event with its id and the time it was received.
    private func parsed(_ body: ByteBuffer, route: IngestRoute, admission: Admission) throws(GatewayError) -> Parsed {
        var body = body
        switch admission.compression {
        case .gzip:
            do {
                body = try body.decompress(with: .gzip(), maxSize: admission.limit)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                throw .tooLarge(limit: admission.limit, what: "body (decompressed)")
            } catch {
                throw .badRequest("Request body is not valid gzip")
            }
        case .zstd:
            do {
                body = try Zstd.decompress(body, maxSize: admission.limit)
            } catch .tooLarge {
                throw .tooLarge(limit: admission.limit, what: "body (decompressed)")
            } catch {
                throw .badRequest("Request body is not valid zstd")
            }
        case nil: break
        }
        let receivedAt = Timestamp.now
        if let encoding = admission.encoding {
            return try otlp(body, kind: route.kind, encoding: encoding, organization: admission.organization, receivedAt: receivedAt)
        }
        do {
            if route.isBatch {
                let events = try validator.batch(route.kind, body: body.readableBytesView)
                let ids = EventID.make(count: events.count, milliseconds: receivedAt.milliseconds)
                return Parsed(
                    events: zip(ids, events).map { QueuedEvent(id: $0, org: admission.organization, receivedAt: receivedAt, event: $1) },
                    bytes: body.readableBytes, answer: Array(#"{"accepted":\#(events.count)}"#.utf8))
            }
            let event = try validator.event(route.kind, body: body.readableBytesView)
            let id = EventID.make(milliseconds: receivedAt.milliseconds)
            return Parsed(
                events: [QueuedEvent(id: id, org: admission.organization, receivedAt: receivedAt, event: event)], bytes: body.readableBytes,
                answer: Array((#"{"id":""# + id + #"","queued":true}"#).utf8))
        } catch {
            throw .badRequest(error.message)
        }
    }

    /// An OTLP export request: its records mapped to events (refused ones counted in the answer's partial success).
    private func otlp(_ body: ByteBuffer, kind: EventKind, encoding: OTLPEncoding, organization: String, receivedAt: Timestamp) throws(GatewayError)
        -> Parsed
    {
        let batch: OTLPBatch
        let answer: [UInt8]
        do {
            switch kind {
            case .metrics:
                let request = try body.withUnsafeReadableBytes { bytes throws(OTLPBodyError) in
                    try encoding.decode(OTLPExportMetricsServiceRequest.self, from: bytes)
                }
                batch = OTLPMetrics(validator: validator).events(request, now: receivedAt)
                try checkCount(batch.events.count, of: "metric rows")
                var response = OTLPExportMetricsServiceResponse()
                if let message = batch.rejectionMessage {
                    response.partialSuccess.rejectedDataPoints = Int64(batch.rejected)
                    response.partialSuccess.errorMessage = message
                }
                answer = encoding.encode(response)
            default:
                let request = try body.withUnsafeReadableBytes { bytes throws(OTLPBodyError) in
                    try encoding.decode(OTLPExportLogsServiceRequest.self, from: bytes)
                }
                try checkCount(OTLPLogs.recordCount(request), of: "log records")
                batch = OTLPLogs(validator: validator).events(request, encoding: encoding, now: receivedAt)
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
        let ids = EventID.make(count: batch.events.count, milliseconds: receivedAt.milliseconds)
        return Parsed(
            events: zip(ids, batch.events).map { QueuedEvent(id: $0, org: organization, receivedAt: receivedAt, event: $1) }, bytes: body.readableBytes,
            answer: answer)
    }

    /// One request holds at most `OPERYN_MAX_BATCH_EVENTS` records, as a batch does.
    private func checkCount(_ count: Int, of what: String) throws(GatewayError) {
        guard count <= limits.maxBatchEvents else {
            throw GatewayError(
                status: .contentTooLarge,
                message: "Request of \(count) \(what) exceeds the limit of \(limits.maxBatchEvents) per request; send smaller batches")
        }
    }
}
