import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Metrics
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Prometheus
import Shared
import Synchronization
import TestSupport

@testable import Gateway

/// An in-process gateway on the in-memory publisher.
struct TestGateway {
    /// The rate limits' clock (ms): still, unless a test moves it.
    let clock = TestClock()
    let publisher: InMemoryEventPublisher
    let backlog: Backlog
    let registry = PrometheusCollectorRegistry()
    let keys = InMemoryAPIKeyDirectory()
    let configuration: GatewayConfiguration

    init(
        apiKey: String? = nil, limits: EventLimits = EventLimits(), highWater: Int = 1_000_000,
        adjust: (inout GatewayConfiguration) -> Void = { _ in }
    ) {
        var configuration = GatewayConfiguration()
        configuration.grpcPort = 0
        configuration.apiKey = apiKey
        configuration.limits = limits
        configuration.backlogHighWater = highWater
        configuration.docsAssetsURL = "https://assets.example.test/npm"
        adjust(&configuration)
        self.configuration = configuration
        backlog = Backlog(highWater: highWater)
        publisher = InMemoryEventPublisher(clock: { [clock] in clock.now })
    }

    var dependencies: GatewayDependencies {
        GatewayDependencies(
            publisher: publisher, backlog: backlog, registry: registry, metrics: GatewayMetrics(factory: PrometheusMetricsFactory(registry: registry)),
            organizationKeys: configuration.organizationKeys ? keys : nil
        )
    }

    /// Hummingbird's part of the gateway: the routes other than ingestion.
    var application: some ApplicationProtocol {
        Application(router: buildRouter(configuration, dependencies, ingest: buildIngestService(configuration, dependencies)))
    }

    /// Runs `body` with a client that sends each request through the gateway in process: first through an
    /// `IngestHandler` on a test channel, as the server's pipeline does after HTTP decoding, then, when the handler
    /// passes it on, through Hummingbird's router.
    func test<Value: Sendable>(_ body: @Sendable (GatewayTestClient) async throws -> Value) async throws -> Value {
        let dependencies = dependencies
        let ingest = buildIngestService(configuration, dependencies)
        let metrics = IngestMetrics(factory: PrometheusMetricsFactory(registry: registry))
        return try await Application(router: buildRouter(configuration, dependencies, ingest: ingest)).test(.router) { router in
            try await body(GatewayTestClient(ingest: ingest, metrics: metrics, router: router))
        }
    }
}

/// An answer as the test client saw it.
struct GatewayResponse: Sendable {
    let status: HTTPResponse.Status
    let headers: HTTPFields
    let body: ByteBuffer
}

/// See `TestGateway.test`.
struct GatewayTestClient: Sendable {
    let ingest: IngestService
    let metrics: IngestMetrics
    let router: any TestClientProtocol

    /// Sends one request on a connection of its own.
    func execute(uri: String, method: HTTPRequest.Method, headers: HTTPFields = [:], body: ByteBuffer? = nil) async throws -> GatewayResponse {
        let channel = NIOAsyncTestingChannel()
        let passedOn = PassedOn()
        try await channel.pipeline.addHandlers([IngestHandler(service: ingest, metrics: metrics, logger: Logger(label: "test")), passedOn])
        try await channel.writeInbound(HTTPRequestPart.head(HTTPRequest(method: method, scheme: nil, authority: nil, path: uri, headerFields: headers)))
        if let body { try await channel.writeInbound(HTTPRequestPart.body(body)) }
        try await channel.writeInbound(HTTPRequestPart.end(nil))
        if passedOn.heads.load(ordering: .relaxed) > 0 {
            _ = try? await channel.finish()
            let response = try await router.executeRequest(uri: uri, method: method, headers: headers, body: body)
            return GatewayResponse(status: response.status, headers: response.headers, body: response.body)
        }
        guard case .head(let head) = try await channel.waitForOutboundWrite(as: HTTPResponsePart.self) else { throw TestFailure("no response head") }
        var answer = ByteBuffer()
        while true {
            switch try await channel.waitForOutboundWrite(as: HTTPResponsePart.self) {
            case .body(var bytes): answer.writeBuffer(&bytes)
            case .end:
                _ = try? await channel.finish()
                return GatewayResponse(status: head.status, headers: head.headerFields, body: answer)
            case .head: throw TestFailure("a second response head")
            }
        }
    }

    /// POSTs JSON text with the given extra headers.
    func post(_ uri: String, _ json: String, headers: HTTPFields = [:]) async throws -> GatewayResponse {
        var fields = headers
        if fields[.contentType] == nil { fields[.contentType] = "application/json" }
        return try await execute(uri: uri, method: .post, headers: fields, body: ByteBuffer(string: json))
    }
}

/// The end of the test pipeline, where Hummingbird's handlers would be: counts the requests and events
/// `IngestHandler` passed on.
final class PassedOn: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPRequestPart
    let heads = Atomic<Int>(0)
    let ends = Atomic<Int>(0)
    let quiesceEvents = Atomic<Int>(0)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: heads.add(1, ordering: .relaxed)
        case .end: ends.add(1, ordering: .relaxed)
        case .body: break
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent { quiesceEvents.add(1, ordering: .relaxed) }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Organization keys in a dictionary, the twin of `APIKeyStore` for route tests; `failing` makes lookups fail like
/// an unreachable Redis.
final class InMemoryAPIKeyDirectory: APIKeyDirectory {
    private let records = Mutex<[String: APIKeyRecord]>([:])
    let failing = Atomic<Bool>(false)
    let lookups = Atomic<Int>(0)

    /// Adds a key of `organization` and answers it.
    @discardableResult
    func add(organization: String, expiresAt: Int64? = nil) -> (key: String, record: APIKeyRecord) {
        let (key, id) = APIKey.generate()
        let record = APIKeyRecord(id: id, organization: organization, createdAt: Timestamp.now.milliseconds, expiresAt: expiresAt)
        records.withLock { $0[APIKey.sha256(key)] = record }
        return (key, record)
    }

    func remove(_ key: String) { _ = records.withLock { $0.removeValue(forKey: APIKey.sha256(key)) } }

    func record(sha256 digest: String) async throws(RedisError) -> APIKeyRecord? {
        lookups.add(1, ordering: .relaxed)
        if failing.load(ordering: .relaxed) { throw RedisError(code: .timeout, message: "stalled") }
        return records.withLock { $0[digest] }
    }
}

extension TestClientProtocol {
    /// POSTs JSON text with the given extra headers.
    func post(_ uri: String, _ json: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        var fields = headers
        if fields[.contentType] == nil { fields[.contentType] = "application/json" }
        return try await execute(uri: uri, method: .post, headers: fields, body: ByteBuffer(string: json))
    }
}

extension GatewayResponse {
    var text: String { String(buffer: body) }

    /// The body as parsed JSON.
    var json: JSONValue? { try? JSONParser.parse(Array(body.readableBytesView)) }
}

extension TestResponse {
    var text: String { String(buffer: body) }

    /// The body as parsed JSON.
    var json: JSONValue? { try? JSONParser.parse(Array(body.readableBytesView)) }
}

let specLog = SpecExamples.body("/events/logs")
let specBatch = SpecExamples.body("/events/logs/batch")
let specMetric = SpecExamples.body("/events/metrics")
let specDeployment = SpecExamples.body("/events/deployments")

/// A clock a test moves by hand, in milliseconds.
final class TestClock: Sendable {
    private let milliseconds = Mutex<Double>(1_000_000)

    var now: Double { milliseconds.withLock { $0 } }

    func advance(byMilliseconds amount: Double) { milliseconds.withLock { $0 += amount } }
}
