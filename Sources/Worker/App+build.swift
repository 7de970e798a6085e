import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Shared
import Sinks

/// The worker's services: the consumer, the lag monitor, the overflow decision, retention, and (unless its port is 0) the HTTP endpoint
/// with `/metrics`, `/health/live` and `/health/ready`.
func buildServices(
    _ configuration: WorkerConfiguration, commands: RedisClient, reader: RedisClient, sink: any EventSink,
    registry: PrometheusCollectorRegistry, logger: Logger, listener: Startup.Listener? = nil
) -> [any Service] {
    let metrics = WorkerMetrics(
        factory: PrometheusMetricsFactory(registry: registry),
        organizations: OrganizationLabels(capacity: configuration.metricsMaxOrganizations, threshold: configuration.metricsOrganizationMinEvents))
    let lanes = OverflowLanes()
    let consumer = StreamConsumer(
        commands: commands, reader: reader, sink: sink, keys: configuration.keys, settings: configuration.consumer, metrics: metrics, lanes: lanes,
        logger: logger)
    // A sink with a connection pool runs first, so it stops after the consumer has finished its batch.
    var services: [any Service] = (sink as? any Service).map { [$0] } ?? []
    let lagMonitor = StreamBacklogMonitor(
        redis: commands, keys: configuration.keys, shape: .sampleAndPublish, intervalMilliseconds: 2_000, logger: logger
    ) { backlog in
        for kind in EventKind.allCases {
            metrics.lag[kind]?.record(backlog.lag[kind] ?? 0)
            metrics.pending[kind]?.record(backlog.pending[kind] ?? 0)
            metrics.backlogEvents[kind]?.record(backlog.lagEvents(kind) + backlog.pendingEvents(kind))
        }
        let keys = configuration.keys
        lanes.setHolding(
            Set(
                backlog.entriesByStream.keys.compactMap { keys.locate(stream: $0) }.filter { keys.isOverflow($0.partition) }.compactMap {
                    keys.basePartition(ofStream: $0.partition)
                }))
    }
    let overflow = OverflowController(
        redis: commands, keys: configuration.keys, settings: configuration.overflow, lanes: lanes, holder: configuration.consumer.consumer,
        metrics: metrics, logger: logger)
    let retention = RetentionRunner(
        redis: commands, keys: configuration.keys, sink: sink, settings: configuration.retention, holder: configuration.consumer.consumer,
        metrics: metrics, logger: logger)
    services += [consumer, lagMonitor, overflow, retention]
    if configuration.metricsPort != 0 {
        let router = Router()
        router.get("health/live") { _, _ in #"{"status":"ok"}"# }
        router.get("health/ready") { _, _ -> Response in
            guard (try? await commands.send(PING())) != nil else {
                return Response(
                    status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: #"{"statusCode":503,"message":"Redis is not reachable"}"#)))
            }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: #"{"status":"ok"}"#)))
        }
        router.get("metrics") { _, _ -> Response in
            var text: [UInt8] = []
            registry.emit(into: &text)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: text)))
        }
        services.append(
            Application(
                router: router,
                configuration: .init(address: .hostname(configuration.metricsHost, port: configuration.metricsPort), serverName: "operyn-worker"),
                onServerRunning: { _ in listener?.started() },
                logger: logger))
    }
    return services
}
