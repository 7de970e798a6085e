import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOPosix
import Prometheus
import ServiceLifecycle
import Shared

/// What the router needs beyond the configuration: the queue, the backlog reading and the metrics.
struct GatewayDependencies: Sendable {
    var publisher: any EventPublisher
    var backlog: Backlog
    var registry: PrometheusCollectorRegistry
    var metrics: GatewayMetrics
    /// Organization keys; `nil` when `OPERYN_ORG_KEYS` is off.
    var organizationKeys: (any APIKeyDirectory)?
    /// Redis for what the gateway reads besides its appends (rate-limit overrides, `GET /usage`); `nil` (route tests):
    /// the default limit for everyone, and no usage.
    var redis: RedisClient?
}

/// The gateway's application: the server (ingestion on the event loops, Hummingbird's router for the rest), plus
/// `services` (the Redis client, in `main`), the backlog monitor and the start-up check of Redis as services. The
/// services stop in reverse order after the server: the Redis client last. `listener` learns when the server listens.
func buildApplication(
    _ configuration: GatewayConfiguration, redis: RedisClient, registry: PrometheusCollectorRegistry, logger: Logger,
    services: [any Service] = [], listener: Startup.Listener? = nil
) -> some ApplicationProtocol {
    let metrics = GatewayMetrics(factory: PrometheusMetricsFactory(registry: registry))
    let backlog = Backlog(highWater: configuration.backlogHighWater)
    let shape = AppendShape()
    let flow = TenantFlow(rateThreshold: configuration.overflowRateEvents)
    let dependencies = GatewayDependencies(
        publisher: RedisEventPublisher(
            redis: redis, keys: configuration.keys, metrics: metrics, coalescer: configuration.coalesce ? TickCoalescer() : nil,
            waitReplicas: configuration.waitReplicas, waitTimeoutMilliseconds: configuration.waitTimeoutMilliseconds, shape: shape,
            flow: flow, packAbove: configuration.queueCompressBytes > 0 ? configuration.queueCompressBytes : nil),
        backlog: backlog,
        registry: registry,
        metrics: metrics,
        organizationKeys: configuration.organizationKeys ? APIKeyStore(redis: redis, keys: configuration.keys) : nil,
        redis: redis
    )
    // The gateway's Redis user may not read entries: the events per entry come from what the workers publish, or
    // from what this gateway appended when that says more.
    let monitor = StreamBacklogMonitor(
        redis: redis, keys: configuration.keys, shape: .published(own: shape), intervalMilliseconds: configuration.backlogRefreshMilliseconds, logger: logger
    ) { backlog.update($0.totalEvents) }
    let redisReachable = StartupCheck(timeoutSeconds: configuration.startupTimeoutSeconds) {
        _ = try await redis.send(PING())
    } failure: { error in
        StartupError("OPERYN_REDIS_URL=\(redis.configuration.redactedURL): Redis is not reachable after \(configuration.startupTimeoutSeconds) s: \(error)")
    }
    let factory = PrometheusMetricsFactory(registry: registry)
    let ingest = buildIngestService(configuration, dependencies)
    // One count of open connections over both listeners, against OPERYN_MAX_CONNECTIONS.
    let connections = ConnectionCounter()
    let connectionMetrics = ConnectionMetrics(factory: factory)
    var grpc: [any Service] = []
    if configuration.grpcPort != 0 {
        let publisher = dependencies.publisher
        let settings = configuration.connections
        grpc.append(
            GRPCListener(
                host: configuration.host, port: configuration.grpcPort, tls: configuration.tlsFiles,
                maxMessageBytes: configuration.limits.maxBatchBodyBytes, idleTimeoutMilliseconds: settings.keepAliveTimeoutMilliseconds,
                maxConcurrentStreams: configuration.grpcMaxConcurrentStreams,
                services: [
                    OTLPGRPCService(
                        ingest: GRPCIngest(service: ingest, eventLoops: MultiThreadedEventLoopGroup.singleton), metrics: GRPCMetrics(factory: factory),
                        messageTimeout: .milliseconds(settings.headerTimeoutMilliseconds + settings.bodyTimeoutMilliseconds)),
                    GRPCHealthService { await publisher.isReady() },
                ],
                connections: connections, maxConnections: settings.maxConnections, connectionMetrics: connectionMetrics, logger: logger))
    }
    return Application(
        router: buildRouter(configuration, dependencies, ingest: ingest),
        server: GuardedHTTP1Channel.builder(
            ingest: ingest, ingestMetrics: IngestMetrics(factory: factory), settings: configuration.connections,
            metrics: connectionMetrics, tls: configuration.tls, counter: connections, logger: logger),
        configuration: .init(
            address: .hostname(configuration.host, port: configuration.port), serverName: "operyn-gateway", backlog: configuration.connections.listenBacklog),
        services: services + [monitor, TenantFlowService(flow: flow, redis: redis, keys: configuration.keys, logger: logger), redisReachable] + grpc,
        onServerRunning: { _ in listener?.started() },
        logger: logger
    )
}

/// The ingestion routes' logic, served by `IngestHandler` on the event loops.
func buildIngestService(_ configuration: GatewayConfiguration, _ dependencies: GatewayDependencies) -> IngestService {
    IngestService(
        authenticator: Authenticator(
            serverKey: configuration.apiKey,
            keyRequired: configuration.requireAPIKey,
            organizationKeys: dependencies.organizationKeys.map { APIKeyCache(directory: $0, ttlMilliseconds: configuration.apiKeyCacheMilliseconds) },
            failures: AuthFailureLimiter(limit: configuration.authFailureLimit, windowMilliseconds: configuration.authFailureWindowSeconds * 1_000),
            trustForwardedFor: configuration.trustForwardedFor,
            retryAfterSeconds: configuration.retryAfterSeconds
        ),
        validator: EventValidator(limits: configuration.limits),
        publisher: dependencies.publisher,
        rateLimits: OrganizationRateLimits(
            fallback: configuration.rateLimit, redis: dependencies.redis, keys: configuration.keys,
            ttlMilliseconds: configuration.rateLimitCacheMilliseconds),
        backlog: dependencies.backlog,
        metrics: dependencies.metrics,
        retryAfterSeconds: configuration.retryAfterSeconds,
        idempotencyTTLSeconds: configuration.idempotencyTTLSeconds, retryWindowSeconds: configuration.otlpRetryWindowSeconds,
        keys: configuration.keys
    )
}

/// Hummingbird's routes (everything but ingestion, which `IngestHandler` serves before the router): errors in the
/// spec's shape around everything, metrics, health, `/metrics` and the API documents.
func buildRouter(_ configuration: GatewayConfiguration, _ dependencies: GatewayDependencies, ingest: IngestService) -> Router<GatewayRequestContext> {
    let router = Router(context: GatewayRequestContext.self)
    router.add(middleware: ErrorMiddleware(allowedMethods: allowedMethods(for:)))
    router.add(middleware: MetricsMiddleware())
    router.addRoutes(
        OperationsController(publisher: dependencies.publisher, registry: dependencies.registry, retryAfterSeconds: configuration.retryAfterSeconds).endpoints
    )
    router.addRoutes(
        UsageController(
            authenticator: ingest.authenticator, redis: dependencies.redis, keys: configuration.keys, rateLimits: ingest.rateLimits,
            defaultServiceLimit: configuration.defaultServiceLimit, retryAfterSeconds: configuration.retryAfterSeconds
        ).endpoints)
    router.addRoutes(
        ElasticsearchController(
            authenticator: ingest.authenticator, publisher: dependencies.publisher, retryAfterSeconds: configuration.retryAfterSeconds
        ).endpoints)
    router.addRoutes(DocsController(document: OpenAPIDocument.json(limits: configuration.limits), assetsURL: configuration.docsAssetsURL).endpoints)
    return router
}

/// The paths Hummingbird's router serves, with their methods (the ingestion routes are `IngestRoute.table`'s).
let routerPaths: [String: [HTTPRequest.Method]] = [
    "/": [.get, .head], "/_license": [.get], "/_cluster/health": [.get], "/health/live": [.get], "/health/ready": [.get], "/metrics": [.get], "/usage": [.get],
    "/openapi.json": [.get],
    "/api": [.get], "/reference": [.get],
]

/// Every path the gateway serves, as the OpenAPI document names them (`{index}` for a parameter).
var knownPaths: [String] { IngestRoute.table.map(\.path) + routerPaths.keys }

/// The methods the gateway answers at `path`, for 405 answers; `nil` for a path it does not serve.
@Sendable func allowedMethods(for path: String) -> [HTTPRequest.Method]? {
    routerPaths[path] ?? IngestRoute.methods(for: path)
}
