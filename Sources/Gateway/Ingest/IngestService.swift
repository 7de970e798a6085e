import CompressNIO
import Foundation
import HTTPTypes
import NIOCore
import Shared

/// What the ingestion routes do, in order, on the event loop that read the request:
///
/// 1. who is asking, and for which organization (`Authenticator`: 429, 401, 403, 400, 503);
/// 2. `admit`: backpressure (503), then what the head shows of the body: media type and encoding (415), declared
///    length (413);
/// 3. the body is read by `IngestHandler` up to the route's limit (413);
/// 4. `accept`: gzip (413, 400), validation (400), the organization's rate limit and the append to Redis, in one
///    step (429, or 413 for a request larger than the burst; 503), and the 202.
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
        let gzip: Bool
        /// The most bytes its body may have, before and after gzip decoding.
        let limit: Int
        /// Its `Idempotency-Key`, if it has one.
        var idempotencyKey: String? = nil
    }

    /// Step 2.
    func admit(_ request: HTTPRequest, route: IngestRoute, organization: String) -> Result<Admission, GatewayError> {
        if backlog.isOverHighWater {
            metrics.backpressureRejections.increment()
            return .failure(.unavailable("Ingestion backlog is over its high-water mark; retry later", retryAfter: retryAfterSeconds))
        }
        let limit = route.isBatch ? limits.maxBatchBodyBytes : limits.maxBodyBytes
        if let type = request.headerFields[.contentType], type != "application/json" {
            let mediaType = type.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)[0].trimmingCharacters(in: .whitespaces).lowercased()
            guard mediaType == "application/json" || (mediaType.hasPrefix("application/") && mediaType.hasSuffix("+json")) else {
                return .failure(.unsupportedMediaType("Content-Type must be application/json, got '\(mediaType.prefix(100))'"))
            }
        }
        var gzip = false
        if let raw = request.headerFields[.contentEncoding], case let encoding = raw.trimmingCharacters(in: .whitespaces).lowercased(), !encoding.isEmpty {
            switch encoding {
            case "gzip", "x-gzip": gzip = true
            case "identity": break
            default: return .failure(.unsupportedMediaType("Content-Encoding must be gzip or identity, got '\(encoding.prefix(100))'"))
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
        return .success(Admission(organization: organization, gzip: gzip, limit: limit, idempotencyKey: idempotencyKey))
    }

    /// A 202's body and the header fields that go with it (the rate-limit fields of a limited organization).
    struct Answer {
        var body: ByteBuffer
        var headers: HTTPFields = [:]
    }

    /// Step 4: the 202 once Redis has the events; fails with the `GatewayError` to answer.
    func accept(_ body: ByteBuffer, route: IngestRoute, admission: Admission, on eventLoop: any EventLoop) -> EventLoopFuture<Answer> {
        let events: [QueuedEvent]
        let bytes: Int
        do {
            (events, bytes) = try queuedEvents(body, route: route, admission: admission)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let (retryAfterSeconds, publisher, metrics) = (retryAfterSeconds, publisher, metrics)
        let counter = metrics.accepted[route.kind]
        let answered = eventLoop.makePromise(of: Answer.self)
        let organization = admission.organization
        let answerBody =
            route.isBatch ? #"{"accepted":\#(events.count)}"# : #"{"id":""# + events[0].id + #"","queued":true}"#
        let idempotency = admission.idempotencyKey.map { key in
            GuardedAppend.Idempotency(
                record: keys.idempotency(org: organization, key: key),
                digest: APIKey.sha256(bytes: Array(route.path.utf8) + [admission.gzip ? 1 : 0] + body.readableBytesView),
                answer: answerBody, ttlSeconds: idempotencyTTLSeconds)
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
                var answer = Answer(body: ByteBuffer(string: answerBody))
                for (name, value) in RateLimitHeaders.fields(budgets) { answer.headers[name] = value }
                answered.succeed(answer)
            case .success((_, .replayed(let first))):
                // A retry of a request already queued: its answer again, nothing queued twice.
                answered.succeed(Answer(body: ByteBuffer(string: first), headers: [Self.idempotentReplayed: "true"]))
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

    /// The body decoded and validated, each event with its id and the time it was received, and the decoded body's
    /// size (what the bytes-per-second limit counts).
    private func queuedEvents(_ body: ByteBuffer, route: IngestRoute, admission: Admission) throws(GatewayError) -> ([QueuedEvent], Int) {
        var body = body
        if admission.gzip {
            do {
                body = try body.decompress(with: .gzip(), maxSize: admission.limit)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                throw .tooLarge(limit: admission.limit, what: "body (decompressed)")
            } catch {
                throw .badRequest("Request body is not valid gzip")
            }
        }
        let receivedAt = Timestamp.now
        do {
            if route.isBatch {
                let events = try validator.batch(route.kind, body: body.readableBytesView)
                let ids = EventID.make(count: events.count, milliseconds: receivedAt.milliseconds)
                return (zip(ids, events).map { QueuedEvent(id: $0, org: admission.organization, receivedAt: receivedAt, event: $1) }, body.readableBytes)
            }
            let event = try validator.event(route.kind, body: body.readableBytesView)
            let id = EventID.make(milliseconds: receivedAt.milliseconds)
            return ([QueuedEvent(id: id, org: admission.organization, receivedAt: receivedAt, event: event)], body.readableBytes)
        } catch {
            throw .badRequest(error.message)
        }
    }
}
