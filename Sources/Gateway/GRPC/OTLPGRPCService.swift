import GRPCCore
import GRPCProtobuf
import HTTPTypes
import Metrics
import NIOCore
import Shared

/// OTLP over gRPC: `opentelemetry.proto.collector.logs.v1.LogsService/Export` and
/// `opentelemetry.proto.collector.metrics.v1.MetricsService/Export`, with the meaning of `POST /v1/logs` and
/// `POST /v1/metrics` in protobuf (`GRPCIngest`): the request's bytes go to the route's own decoder and mapping, and
/// the route's answer (the export response, with its partial success) is the reply. Errors get the status codes the
/// OTLP specification gives (`status(of:)`).
struct OTLPGRPCService: RegistrableRPCService {
    static let logs = MethodDescriptor(fullyQualifiedService: "opentelemetry.proto.collector.logs.v1.LogsService", method: "Export")
    static let metrics = MethodDescriptor(fullyQualifiedService: "opentelemetry.proto.collector.metrics.v1.MetricsService", method: "Export")

    let ingest: GRPCIngest
    let metrics: GRPCMetrics
    /// How long a call's request message may take to arrive after its headers (`OPERYN_HEADER_TIMEOUT_MS` +
    /// `OPERYN_BODY_TIMEOUT_MS`): a stalled stream is ended with `DEADLINE_EXCEEDED` and frees its slot.
    var messageTimeout: Duration = .seconds(20)

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        for (method, path) in [(Self.logs, "/v1/logs"), (Self.metrics, "/v1/metrics")] {
            router.registerHandler(forMethod: method, deserializer: RawMessage(), serializer: RawMessage()) { request, context in
                let started = ContinuousClock.now
                let response: ServerResponse<ByteBuffer>
                do {
                    let single = try await Self.message(of: request, within: messageTimeout, on: ingest.eventLoops.any())
                    response = await export(single, path: path, peer: context.remotePeer)
                } catch let error as RPCError {
                    response = ServerResponse(error: error)
                } catch {
                    response = ServerResponse(error: RPCError(code: .invalidArgument, message: "An export is one request message"))
                }
                let code: RPCError.Code? = if case .failure(let error) = response.accepted { error.code } else { nil }
                metrics.record(method, code: code, duration: ContinuousClock.now - started)
                return StreamingServerResponse(single: response)
            }
        }
    }

    /// The call's one request message, or `DEADLINE_EXCEEDED` when it has not arrived within `timeout`. The timer is
    /// an event loop's scheduled task, removed as soon as the message is in: a `Task.sleep` per call would hold its
    /// timer (and memory) until the deadline even when cancelled, tens of thousands of them under load.
    static func message(
        of request: StreamingServerRequest<ByteBuffer>, within timeout: Duration, on eventLoop: any EventLoop
    ) async throws -> ServerRequest<ByteBuffer> {
        let timer = eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000))
        {}
        return try await withThrowingTaskGroup(of: ServerRequest<ByteBuffer>?.self) { group in
            group.addTask { try await ServerRequest(stream: request) }
            group.addTask {
                try? await withTaskCancellationHandler {
                    try await timer.futureResult.get()
                } onCancel: {
                    timer.cancel()
                }
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let message = first else {
                throw RPCError(code: .deadlineExceeded, message: "The request message did not arrive within \(timeout.components.seconds) s")
            }
            return message
        }
    }

    private func export(_ request: ServerRequest<ByteBuffer>, path: String, peer: String) async -> ServerResponse<ByteBuffer> {
        let metadata = request.metadata
        let answer = await ingest.export(
            request.message, path: path, metadata: { metadata[stringValues: $0].first(where: { _ in true }) }, peer: GRPCIngest.address(ofPeer: peer))
        switch answer {
        case .success(let answer):
            var fields = Metadata()
            for field in answer.headers { fields.addString(field.value, forKey: field.name.canonicalName) }
            return ServerResponse(message: answer.body, metadata: fields)
        case .failure(let error):
            return ServerResponse(error: Self.status(of: error))
        }
    }

    /// The gRPC status of an HTTP route's error, as the OTLP specification gives them: `INVALID_ARGUMENT` for what can
    /// never succeed (400, 404, 415, 422), `UNAUTHENTICATED` (401), `PERMISSION_DENIED` (403), `RESOURCE_EXHAUSTED` for
    /// a message or request over a limit (413: no `RetryInfo`, so clients do not retry it) and for a rate limit (429,
    /// with `RetryInfo` from `Retry-After`), `UNAVAILABLE` with `RetryInfo` for Redis trouble or backpressure (503), and
    /// `INTERNAL` otherwise. Clients retry only the last two kinds.
    static func status(of error: GatewayError) -> RPCError {
        let retryAfter = error.headers[.retryAfter].flatMap { Int($0) }
        let code: RPCError.Code
        switch error.status.code {
        case 400, 404, 415, 422: code = .invalidArgument
        case 401: code = .unauthenticated
        case 403: code = .permissionDenied
        case 413, 429: code = .resourceExhausted
        case 503: code = .unavailable
        default: code = .internalError
        }
        guard let retryAfter, code == .resourceExhausted || code == .unavailable else { return RPCError(code: code, message: error.message) }
        return RPCError(GoogleRPCStatus(code: code, message: error.message, details: .retryInfo(delay: .seconds(retryAfter))))
    }
}

/// A message's bytes as they are: the OTLP route's own decoder reads them.
struct RawMessage: MessageSerializer, MessageDeserializer {
    typealias Message = ByteBuffer

    func serialize<Bytes: GRPCContiguousBytes>(_ message: ByteBuffer) throws -> Bytes {
        message.withUnsafeReadableBytes { Bytes($0) }
    }

    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> ByteBuffer {
        serializedMessageBytes.withUnsafeBytes { ByteBuffer(bytes: $0) }
    }
}

/// `operyn_grpc_requests_total{method,code}` (`code` as the gRPC specification names it: `OK`, `INVALID_ARGUMENT`, …)
/// and `operyn_grpc_request_duration_seconds{method}`.
struct GRPCMetrics: Sendable {
    let factory: any MetricsFactory
    /// The counters of the statuses the export methods answer and the timers, made once (a call reads them).
    private let counters: [String: Counter]
    private let timers: [String: Timer]

    init(factory: any MetricsFactory) {
        self.factory = factory
        let methods = [OTLPGRPCService.logs, OTLPGRPCService.metrics].map(\.fullyQualifiedMethod)
        let codes: [RPCError.Code?] = [
            nil, .invalidArgument, .unauthenticated, .permissionDenied, .resourceExhausted, .unavailable, .internalError, .deadlineExceeded,
        ]
        var counters: [String: Counter] = [:]
        for method in methods {
            for code in codes.map(Self.name(of:)) {
                counters[method + " " + code] = Counter(
                    label: "operyn_grpc_requests_total", dimensions: [("method", method), ("code", code)], factory: factory)
            }
        }
        self.counters = counters
        timers = Dictionary(
            uniqueKeysWithValues: methods.map { ($0, Timer(label: "operyn_grpc_request_duration_seconds", dimensions: [("method", $0)], factory: factory)) })
    }

    func record(_ method: MethodDescriptor, code: RPCError.Code?, duration: Duration) {
        let name = method.fullyQualifiedMethod
        let code = Self.name(of: code)
        (counters[name + " " + code]
            ?? Counter(label: "operyn_grpc_requests_total", dimensions: [("method", name), ("code", code)], factory: factory)).increment()
        (timers[name] ?? Timer(label: "operyn_grpc_request_duration_seconds", dimensions: [("method", name)], factory: factory)).record(duration: duration)
    }

    /// `resourceExhausted` → `RESOURCE_EXHAUSTED`.
    static func name(of code: RPCError.Code?) -> String {
        guard let code else { return "OK" }
        if code == .internalError { return "INTERNAL" }
        var name = ""
        for character in "\(code)" {
            if character.isUppercase { name.append("_") }
            name.append(contentsOf: character.uppercased())
        }
        return name
    }
}
