import HTTPTypes
import Hummingbird
import NIOCore
import Shared

/// An error answered in the spec's shape: `{"statusCode": N, "message": "..."}`.
struct GatewayError: HTTPResponseError {
    var status: HTTPResponse.Status
    var message: String
    var headers: HTTPFields = [:]
    /// What went wrong inside, for the log line only (`ErrorMiddleware`); never sent to the client.
    var cause: String?

    static func unauthorized() -> GatewayError { GatewayError(status: .unauthorized, message: "Invalid or missing API key") }

    static func badRequest(_ message: String) -> GatewayError { GatewayError(status: .badRequest, message: message) }

    static func tooLarge(limit: Int, what: String = "body") -> GatewayError {
        GatewayError(status: .contentTooLarge, message: "Request \(what) exceeds the limit of \(limit) bytes")
    }

    static func unsupportedMediaType(_ message: String) -> GatewayError { GatewayError(status: .unsupportedMediaType, message: message) }

    static func unavailable(_ message: String, retryAfter: Int, cause: String? = nil) -> GatewayError {
        GatewayError(status: .serviceUnavailable, message: message, headers: [.retryAfter: String(retryAfter)], cause: cause)
    }

    /// An organization over its rate limit: 429 with `Retry-After` (at least 1 s) and the rate-limit fields; a request
    /// larger than the burst, which waiting would never admit: 413.
    static func rateLimited(_ refusal: RateRefusal, limit: RateLimit, organization: String, batch: Bool) -> GatewayError {
        let (rate, burst) = refusal.measure == "events" ? (limit.eventsPerSecond, limit.eventsBurst) : (limit.bytesPerSecond, limit.bytesBurst)
        guard let retryAfter = refusal.retryAfterMilliseconds else {
            let what = refusal.measure == "events" ? "\(batch ? "Batch" : "Request") of \(refusal.cost) events" : "Request of \(refusal.cost) bytes"
            return GatewayError(
                status: .contentTooLarge,
                message: "\(what) exceeds the burst of \(burst) \(refusal.measure) of organization \(organization)'s rate limit; send smaller requests")
        }
        let seconds = max(1, (retryAfter + 999) / 1_000)
        var headers: HTTPFields = [.retryAfter: String(seconds)]
        for (name, value) in RateLimitHeaders.fields(refusal: refusal, limit: limit, retryAfterSeconds: seconds) { headers[name] = value }
        return GatewayError(
            status: .tooManyRequests,
            message: "Rate limit of organization \(organization) exceeded: \(rate) \(refusal.measure) per second (burst \(burst)); retry after \(seconds) s",
            headers: headers)
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        Self.response(status: status, message: message, headers: headers)
    }

    /// The spec-shaped response for any status and message.
    static func response(status: HTTPResponse.Status, message: String, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: body(status: status, message: message))))
    }

    /// `{"statusCode": N, "message": "..."}`.
    static func body(status: HTTPResponse.Status, message: String) -> [UInt8] {
        var body: [UInt8] = Array(#"{"statusCode":"#.utf8)
        body.append(contentsOf: String(status.code).utf8)
        body.append(contentsOf: #","message":"#.utf8)
        JSONValue.encodeString(message, into: &body)
        body.append(UInt8(ascii: "}"))
        return body
    }
}
