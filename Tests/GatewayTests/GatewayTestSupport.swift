import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Metrics
import NIOCore
import Prometheus
import Shared
import Synchronization
import TestSupport

@testable import Gateway

/// An in-process gateway on the in-memory publisher.
struct TestGateway {
    let publisher = InMemoryEventPublisher()
    let backlog: Backlog
    let registry = PrometheusCollectorRegistry()
    let keys = InMemoryAPIKeyDirectory()
    let configuration: GatewayConfiguration

    init(
        apiKey: String? = nil, limits: EventLimits = EventLimits(), highWater: Int = 1_000_000,
        adjust: (inout GatewayConfiguration) -> Void = { _ in }
    ) {
        var configuration = GatewayConfiguration()
        configuration.apiKey = apiKey
        configuration.limits = limits
        configuration.backlogHighWater = highWater
        configuration.docsAssetsURL = "https://assets.example.test/npm"
        adjust(&configuration)
        self.configuration = configuration
        backlog = Backlog(highWater: highWater)
    }

    var application: some ApplicationProtocol {
        let dependencies = GatewayDependencies(
            publisher: publisher, backlog: backlog, registry: registry, metrics: GatewayMetrics(factory: PrometheusMetricsFactory(registry: registry)),
            organizationKeys: configuration.organizationKeys ? keys : nil
        )
        return Application(router: buildRouter(configuration, dependencies))
    }
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

extension TestResponse {
    var text: String { String(buffer: body) }

    /// The body as parsed JSON.
    var json: JSONValue? { try? JSONParser.parse(Array(body.readableBytesView)) }
}

let specLog = SpecExamples.body("/events/logs")
let specBatch = SpecExamples.body("/events/logs/batch")
let specMetric = SpecExamples.body("/events/metrics")
let specDeployment = SpecExamples.body("/events/deployments")
