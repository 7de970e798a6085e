import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOPosix
import OTLP
import Prometheus
import Shared
import SwiftProtobuf
import TestSupport
import Testing

@testable import Gateway

/// OTLP over gRPC against the gateway's application on a real Redis: a grpc-swift client calls the two `Export`
/// methods and the health check on `OPERYN_GRPC_PORT`; every status code the service answers is checked, and what
/// was accepted is read back from the stream.
@Suite("OTLP over gRPC (live Redis)")
struct OTLPGRPCTests {
    typealias Outcome = Result<(message: ByteBuffer, metadata: Metadata), RPCError>

    /// Runs the application with a gRPC port of its own, then `body` with a function that makes one call.
    /// With `ca`, the client speaks TLS to `localhost`, trusting that CA; with `compression`, its messages are
    /// compressed.
    func withGateway(
        prefix: String, adjust: (inout GatewayConfiguration) -> Void = { _ in }, ca: String? = nil, compression: CompressionAlgorithm? = nil,
        _ body: @escaping @Sendable (_ call: @escaping @Sendable (MethodDescriptor, [UInt8], [String: String]) async throws -> Outcome) async throws -> Void
    ) async throws {
        var configuration = GatewayConfiguration()
        // Patient with a machine stalled by the parallel suites: these tests are not about timeouts.
        configuration.redis = try TestRedis.configuration()
        configuration.keys = RedisKeys(prefix: prefix)
        configuration.grpcPort = try RedisServer.freePort()
        adjust(&configuration)
        let port = configuration.grpcPort
        let redis = RedisClient(configuration: configuration.redis, group: MultiThreadedEventLoopGroup.singleton)
        let app = buildApplication(configuration, redis: redis, registry: PrometheusCollectorRegistry(), logger: Logger(label: "test"), services: [redis])
        try await app.test(.live) { _ in
            let security: HTTP2ClientTransport.Posix.TransportSecurity =
                if let ca { .tls { $0.trustRoots = .certificates([.file(path: ca, format: .pem)]) } } else { .plaintext }
            let transport = try HTTP2ClientTransport.Posix(
                target: ca == nil ? .ipv4(address: "127.0.0.1", port: port) : .dns(host: "localhost", port: port), transportSecurity: security,
                config: .defaults { $0.compression.enabledAlgorithms = .all })
            let options = {
                var options = CallOptions.defaults; options.compression = compression; return options
            }()
            try await withGRPCClient(transport: transport) { client in
                let call: @Sendable (MethodDescriptor, [UInt8], [String: String]) async throws -> Outcome = { method, bytes, fields in
                    var metadata = Metadata()
                    for (key, value) in fields { metadata.addString(value, forKey: key) }
                    return try await client.unary(
                        request: ClientRequest(message: ByteBuffer(bytes: bytes), metadata: metadata), descriptor: method, serializer: RawMessage(),
                        deserializer: RawMessage(), options: options
                    ) { response in
                        switch response.accepted {
                        case .success(let contents): .success((try contents.message.get(), contents.metadata))
                        case .failure(let error): .failure(error)
                        }
                    }
                }
                // The listener starts beside the HTTP server: wait until it answers.
                for _ in 0..<100 {
                    if case .success = try? await call(GRPCHealthService.check, [], [:]) { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                try await body(call)
            }
        }
    }

    /// The events queued for organization `acme` of `kind`, in order.
    static func queued(keys: RedisKeys, kind: EventKind) async throws -> [QueuedEvent] {
        let redis = RedisClient(configuration: try TestRedis.configuration(), group: MultiThreadedEventLoopGroup.singleton)
        defer { redis.shutdown() }
        let entries = try await redis.send(XRANGE(keys.stream(kind, partition: keys.partition(of: "acme"))))
        return try entries.flatMap { try StreamEntryCodec.decodeEvents(try #require($0.fields)) }
    }

    static func logs(_ messages: [String], service: String = "checkout") throws -> [UInt8] {
        let records = messages.map { message in
            OTLPRouteTests.record {
                $0.body.stringValue = message
                $0.severityText = "WARN"
                $0.timeUnixNano = 1_764_000_000_000_000_000
            }
        }
        return try OTLPRouteTests.logs(service: service, records).serializedBytes()
    }

    @Test func logsAndMetricsExportsAreQueuedAndAnsweredWithTheExportResponse() async throws {
        let prefix = TestRedis.prefix()
        let keys = RedisKeys(prefix: prefix)
        try await withGateway(prefix: prefix) { call in
            let answer = try await call(OTLPGRPCService.logs, try Self.logs(["one", "two"]), ["x-organization-id": "acme"]).get()
            let response = try OTLPExportLogsServiceResponse(serializedBytes: Array(answer.message.readableBytesView))
            #expect(!response.hasPartialSuccess || response.partialSuccess.rejectedLogRecords == 0)
            // Partial success: a record the route refuses is counted and named in the response, the others queued.
            let refused = OTLPRouteTests.record {
                $0.body.stringValue = "refused"
                $0.severityNumber = .UNRECOGNIZED(30)
            }
            let mixed: [UInt8] = try OTLPRouteTests.logs([refused, OTLPRouteTests.record { $0.body.stringValue = "three" }]).serializedBytes()
            let partial = try await call(OTLPGRPCService.logs, mixed, ["x-organization-id": "acme"]).get()
            let partialResponse = try OTLPExportLogsServiceResponse(serializedBytes: Array(partial.message.readableBytesView))
            #expect(partialResponse.partialSuccess.rejectedLogRecords == 1)
            #expect(partialResponse.partialSuccess.errorMessage.contains("severity_number must be 0 to 24, got 30"))
            var point = OTLPRouteTests.point(.asDouble(0.5))
            point.timeUnixNano = 1_764_000_000_000_000_000
            var metric = OTLPMetric()
            metric.name = "cpu.usage"
            metric.gauge.dataPoints = [point]
            let metrics: [UInt8] = try OTLPRouteTests.metrics([metric]).serializedBytes()
            _ = try await call(OTLPGRPCService.metrics, metrics, ["x-organization-id": "acme"]).get()
        }
        let logs = try await Self.queued(keys: keys, kind: .logs)
        #expect(logs.map { if case .log(let log) = $0.event { log.message } else { "" } } == ["one", "two", "three"])
        #expect(logs.allSatisfy { $0.org == "acme" && $0.event.service == "checkout" })
        let metrics = try await Self.queued(keys: keys, kind: .metrics)
        #expect(metrics.map { if case .metric(let metric) = $0.event { metric.name } else { "" } } == ["cpu.usage"])
    }

    @Test func everyRefusalHasTheStatusTheOTLPSpecificationGives() async throws {
        try await withGateway(
            prefix: TestRedis.prefix(),
            adjust: {
                $0.apiKey = "grpc-key"
                $0.limits.maxBatchBodyBytes = 4_096
                $0.rateLimit = RateLimit(eventsPerSecond: 1, eventsBurst: 3)
            }
        ) { call in
            let valid = try Self.logs(["a"])
            let key = ["x-api-key": "grpc-key", "x-organization-id": "acme"]
            func code(_ outcome: Outcome) -> RPCError.Code? { if case .failure(let error) = outcome { error.code } else { nil } }
            #expect(code(try await call(OTLPGRPCService.logs, valid, ["x-organization-id": "acme"])) == .unauthenticated)
            #expect(code(try await call(OTLPGRPCService.logs, valid, ["x-api-key": "grpc-key", "x-organization-id": "bad org!"])) == .invalidArgument)
            #expect(code(try await call(OTLPGRPCService.logs, Array(valid.dropLast(3)), key)) == .invalidArgument, "truncated protobuf")
            #expect(code(try await call(OTLPGRPCService.logs, [0xFF, 0xFF, 0xFF], key)) == .invalidArgument, "not protobuf")
            let oversized = try Self.logs([String(repeating: "x", count: 5_000)])
            let tooLarge = try await call(OTLPGRPCService.logs, oversized, key)
            #expect(code(tooLarge) == .resourceExhausted, "past the batch body limit: \(tooLarge)")
            let huge = try Self.logs([String(repeating: "x", count: 9_000)])
            #expect(code(try await call(OTLPGRPCService.logs, huge, key)) != nil, "past twice the limit: the stream is reset unread")
            #expect(code(try await call(OTLPGRPCService.logs, valid, key.merging(["idempotency-key": "has space"]) { $1 })) == .invalidArgument)

            // The burst of 3 events refilled at 1 a second: single-record exports pass until the burst is spent, then
            // one is limited, with RetryInfo (however slowly a loaded machine runs them).
            var limited: RPCError?
            for index in 0..<20 where limited == nil {
                // Each a new export: the same body again would be a retry, answered from the first.
                if case .failure(let error) = try await call(OTLPGRPCService.logs, try Self.logs(["export \(index)"]), key) { limited = error }
            }
            let error = try #require(limited, "no export was limited")
            #expect(error.code == .resourceExhausted)
            let status = try #require(try error.unpackGoogleRPCStatus())
            #expect(status.details.contains { $0.retryInfo != nil }, "\(status.details)")
            let unknown = MethodDescriptor(fullyQualifiedService: "opentelemetry.proto.collector.trace.v1.TraceService", method: "Export")
            #expect(code(try await call(unknown, valid, key)) == .unimplemented)
        }
    }

    @Test func anIdempotencyKeyInMetadataReplaysTheFirstAnswer() async throws {
        let prefix = TestRedis.prefix()
        let keys = RedisKeys(prefix: prefix)
        try await withGateway(prefix: prefix) { call in
            let body = try Self.logs(["once"])
            let fields = ["x-organization-id": "acme", "idempotency-key": "export-1"]
            let first = try await call(OTLPGRPCService.logs, body, fields).get()
            let second = try await call(OTLPGRPCService.logs, body, fields).get()
            #expect(first.metadata[stringValues: "idempotent-replayed"].first(where: { _ in true }) == nil)
            #expect(second.metadata[stringValues: "idempotent-replayed"].first(where: { _ in true }) == "true")
            #expect(Array(first.message.readableBytesView) == Array(second.message.readableBytesView))
        }
        #expect(try await Self.queued(keys: keys, kind: .logs).count == 1, "stored once")
    }

    /// Exporters retry without keys: the same body within the window is answered from the first answer and stored
    /// once; with the window off it is stored again.
    @Test(arguments: [300, 0]) func aRetryOfTheSameBodyWithoutAKeyIsStoredOnce(window: Int) async throws {
        let prefix = TestRedis.prefix("retry-window-\(window)")
        let keys = RedisKeys(prefix: prefix)
        try await withGateway(prefix: prefix, adjust: { $0.otlpRetryWindowSeconds = window }) { call in
            let body = try Self.logs(["retried"])
            let first = try await call(OTLPGRPCService.logs, body, ["x-organization-id": "acme"]).get()
            let second = try await call(OTLPGRPCService.logs, body, ["x-organization-id": "acme"]).get()
            let replayed = second.metadata[stringValues: "idempotent-replayed"].first(where: { _ in true })
            #expect(replayed == (window > 0 ? "true" : nil))
            #expect(Array(first.message.readableBytesView) == Array(second.message.readableBytesView))
            _ = try await call(OTLPGRPCService.logs, try Self.logs(["another"]), ["x-organization-id": "acme"]).get()
        }
        let stored = try await Self.queued(keys: keys, kind: .logs).map { if case .log(let log) = $0.event { log.message } else { "" } }
        #expect(stored == (window > 0 ? ["retried", "another"] : ["retried", "retried", "another"]))
    }

    /// With the listener's certificate the gRPC listener speaks TLS; messages compressed with gzip (as SDKs send them
    /// with `OTEL_EXPORTER_OTLP_COMPRESSION=gzip`) are read.
    @Test func overTLSWithTheListenersCertificateAndGzipMessages() async throws {
        let prefix = TestRedis.prefix()
        let keys = RedisKeys(prefix: prefix)
        let files = (try TestTLS.file("server.pem"), try TestTLS.file("server.key"))
        try await withGateway(prefix: prefix, adjust: { $0.tlsFiles = files }, ca: try TestTLS.file("ca.pem"), compression: .gzip) { call in
            _ = try await call(OTLPGRPCService.logs, try Self.logs(["over tls"]), ["x-organization-id": "acme"]).get()
        }
        #expect(try await Self.queued(keys: keys, kind: .logs).map { if case .log(let log) = $0.event { log.message } else { "" } } == ["over tls"])
    }

    @Test func theHealthServiceAnswersAsReadinessDoes() async throws {
        try await withGateway(prefix: TestRedis.prefix()) { call in
            #expect(Array(try await call(GRPCHealthService.check, [], [:]).get().message.readableBytesView) == [0x08, 0x01], "SERVING")
            let logs = Array("opentelemetry.proto.collector.logs.v1.LogsService".utf8)
            #expect(Array(try await call(GRPCHealthService.check, [0x0A, UInt8(logs.count)] + logs, [:]).get().message.readableBytesView) == [0x08, 0x01])
            let other = Array("other.Service".utf8)
            guard case .failure(let error) = try await call(GRPCHealthService.check, [0x0A, UInt8(other.count)] + other, [:]) else {
                Issue.record("an unknown service was answered")
                return
            }
            #expect(error.code == .notFound)
        }
    }

    @Test func gatewayErrorsMapToOTLPStatusCodes() throws {
        let cases: [(GatewayError, RPCError.Code)] = [
            (.badRequest("x"), .invalidArgument), (.unauthorized(), .unauthenticated), (GatewayError(status: .forbidden, message: "x"), .permissionDenied),
            (.tooLarge(limit: 1), .resourceExhausted), (.unsupportedMediaType("x"), .invalidArgument),
            (GatewayError(status: .unprocessableContent, message: "x"), .invalidArgument), (.unavailable("x", retryAfter: 2), .unavailable),
            (GatewayError(status: .internalServerError, message: "x"), .internalError),
        ]
        for (error, code) in cases { #expect(OTLPGRPCService.status(of: error).code == code, "\(error.status)") }
        #expect((try? OTLPGRPCService.status(of: .unavailable("x", retryAfter: 2)).unpackGoogleRPCStatus()) != nil, "UNAVAILABLE carries RetryInfo")
        #expect((try? OTLPGRPCService.status(of: .tooLarge(limit: 1)).unpackGoogleRPCStatus()) == nil, "a message too large is not retried")
        #expect(GRPCMetrics.name(of: .resourceExhausted) == "RESOURCE_EXHAUSTED" && GRPCMetrics.name(of: nil) == "OK")
        #expect(GRPCIngest.address(ofPeer: "ipv4:127.0.0.1:5000") == "127.0.0.1" && GRPCIngest.address(ofPeer: "ipv6:[::1]:5000") == "::1")
    }
}
