import CompressNIO
import HTTPTypes
import NIOCore
import Shared

/// What the ingestion routes do, in order, on the event loop that read the request, whatever their format
/// (`IngestFormat`):
///
/// 1. who is asking, and for which organization (the format's credentials, `Authenticator`: 429, 401, 403, 400, 503);
/// 2. `admit`: backpressure (503), then what the head shows of the body: the format's media type (415), encoding
///    (415), declared length (413);
/// 3. the body is read by `IngestHandler` up to the route's limit (413);
/// 4. `accept`: gzip or zstd (413, 400), the format's parser (400; OTLP and bulk refuse records or items on their own
///    and say so in their answer), the organization's rate limit and the append to Redis, in one step (429, or 413 for
///    a request larger than the burst; 503), and the success.
///
/// Nothing is written to Redis before step 4 has validated every event it appends.
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
    /// How long a body of a format that deduplicates retries (OTLP) is remembered without a key
    /// (`OPERYN_OTLP_RETRY_WINDOW_SECONDS`); 0: not at all.
    var retryWindowSeconds = 300
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
        /// The variant of its format its head asked for (`IngestFormat.variant(of:)`).
        var variant: UInt8 = 0
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
        let format = route.format
        let limit = format.isBatch ? limits.maxBatchBodyBytes : limits.maxBodyBytes
        let variant: UInt8
        switch format.variant(of: request) {
        case .success(let chosen): variant = chosen
        case .failure(let error): return .failure(error)
        }
        var compression: Compression?
        if let raw = request.headerFields.value(of: .contentEncoding), case let encoding = raw.trimmingCharacters(in: .whitespaces).lowercased(),
            !encoding.isEmpty
        {
            switch encoding {
            case "gzip", "x-gzip": compression = .gzip
            case "zstd": compression = .zstd
            case "identity": break
            default: return .failure(.unsupportedMediaType("Content-Encoding must be gzip, zstd or identity, got '\(encoding.prefix(100))'"))
            }
        }
        if let length = request.headerFields.value(of: .contentLength).flatMap({ Int($0) }), length > limit {
            return .failure(.tooLarge(limit: limit))
        }
        var idempotencyKey: String?
        if let key = request.headerFields.value(of: Self.idempotencyKey) {
            guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
                return .failure(.badRequest("Invalid Idempotency-Key: must be 1-255 visible ASCII characters"))
            }
            idempotencyKey = key
        }
        return .success(Admission(organization: organization, compression: compression, limit: limit, idempotencyKey: idempotencyKey, variant: variant))
    }

    /// A success's status, body and header fields (the rate-limit fields of a limited organization).
    struct Answer {
        var status = HTTPResponse.Status.accepted
        var body: ByteBuffer
        var headers: HTTPFields = [:]
        var contentType = "application/json; charset=utf-8"
    }

    /// Step 4: the success once Redis has the events; fails with the `GatewayError` to answer. `match` is the route
    /// and path the request was asked by, `started` when its head arrived.
    func accept(
        _ body: ByteBuffer, match: IngestRoute.Match, admission: Admission, started: NIODeadline = .now(), on eventLoop: any EventLoop
    ) -> EventLoopFuture<Answer> {
        let format = match.route.format
        let (parsed, decoded): (ParsedBody, ByteBuffer)
        do {
            (parsed, decoded) = try self.parsed(body, match: match, admission: admission, started: started)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let (events, bytes) = (parsed.events, parsed.bytes)
        let success = Answer(
            status: format.successStatus, body: ByteBuffer(bytes: parsed.answer), contentType: format.successContentType(variant: admission.variant))
        // A request whose every record or item was refused (OTLP, bulk): its answer says so, and nothing is queued.
        if events.isEmpty { return eventLoop.makeSucceededFuture(success) }
        let (retryAfterSeconds, publisher, metrics) = (retryAfterSeconds, publisher, metrics)
        let counter = metrics.accepted[format.kind]
        let answered = eventLoop.makePromise(of: Answer.self)
        let organization = admission.organization
        let idempotency: GuardedAppend.Idempotency?
        if let key = admission.idempotencyKey {
            idempotency = GuardedAppend.Idempotency(
                record: keys.idempotency(org: organization, key: key),
                digest: APIKey.sha256(
                    bytes: format.idempotencyScope(path: match.path, compression: admission.compression?.rawValue ?? 0, variant: admission.variant)
                        + body.readableBytesView),
                answer: format.record(parsed.answer, variant: admission.variant), ttlSeconds: idempotencyTTLSeconds)
        } else if format.deduplicatesRetries && retryWindowSeconds > 0 {
            // A retry without a key: the record is keyed by the digest of the decoded body (an exporter compresses
            // each attempt anew, and gzip stamps the time), recorded in the append's script as a key's is.
            let digest = APIKey.sha256(bytes: format.idempotencyScope(path: match.path, compression: 0, variant: admission.variant) + decoded.readableBytesView)
            idempotency = GuardedAppend.Idempotency(
                record: keys.idempotency(org: organization, key: "body-" + digest), digest: digest,
                answer: format.record(parsed.answer, variant: admission.variant), ttlSeconds: retryWindowSeconds)
        } else {
            idempotency = nil
        }
        let answer: @Sendable (Result<(RateLimit, PublishDecision), any Error>) -> Void = { result in
            switch result {
            case .success((_, .queued(let budgets))):
                counter?.increment(by: Int64(events.count))
                var answer = success
                for (name, value) in RateLimitHeaders.fields(budgets) { answer.headers[name] = value }
                answered.succeed(answer)
            case .success((_, .replayed(let first))):
                // A retry of a request already queued: its answer again, nothing queued twice.
                var answer = success
                answer.body = ByteBuffer(bytes: format.answer(recorded: first, variant: admission.variant))
                answer.headers = [Self.idempotentReplayed: "true"]
                answered.succeed(answer)
            case .success((_, .conflict)):
                answered.fail(
                    GatewayError(
                        status: .unprocessableContent,
                        message: "Idempotency-Key was already used with another request of organization \(organization); use a new key for a new request"))
            case .success((let limit, .limited(let refusal))):
                metrics.rateLimited.increment()
                answered.fail(GatewayError.rateLimited(refusal, limit: limit, organization: organization, batch: format.isBatch))
            case .failure(let error):
                answered.fail(
                    GatewayError.unavailable(
                        "Event queue is unavailable; retry later", retryAfter: retryAfterSeconds, cause: (error as? PublishError)?.reason ?? "\(error)"))
            }
        }
        // Each path completes `answered` from the publisher's own future: no future in between, which would cost the
        // common request an allocation and a generic metadata lookup for nothing.
        let cached = rateLimits.cachedLimit(of: organization)
        if idempotency == nil, let limit = cached, limit.isNone {
            // The common case, no limit known without asking Redis: the plain (coalesced) append.
            publisher.publish(events, on: eventLoop).whenComplete { answer($0.map { (limit, .queued) }) }
        } else if let limit = cached {
            publisher.publish(events, bytes: bytes, limit: limit, idempotency: idempotency, on: eventLoop).whenComplete { answer($0.map { (limit, $0) }) }
        } else {
            rateLimits.limit(of: organization, on: eventLoop).whenComplete { result in
                switch result {
                case .success(let limit):
                    publisher.publish(events, bytes: bytes, limit: limit, idempotency: idempotency, on: eventLoop).whenComplete {
                        answer($0.map { (limit, $0) })
                    }
                case .failure(let error): answer(.failure(error))
                }
            }
        }
        return answered.futureResult
    }

    /// The body decoded, then read by the route's format; and the decoded body.
    private func parsed(
        _ body: ByteBuffer, match: IngestRoute.Match, admission: Admission, started: NIODeadline
    ) throws(GatewayError) -> (ParsedBody, ByteBuffer) {
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
        let request = FormatRequest(
            organization: admission.organization, receivedAt: .now, variant: admission.variant, parameter: match.parameter, validator: validator,
            started: started)
        return (try match.route.format.parse(body, request), body)
    }
}
