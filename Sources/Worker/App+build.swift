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
        factory: WorkerMetrics.factory(registry: registry),
        organizations: OrganizationLabels(capacity: configuration.metricsMaxOrganizations, threshold: configuration.metricsOrganizationMinEvents))
    let lanes = OverflowLanes()
    let consumer = StreamConsumer(
        commands: commands, reader: reader, sink: sink, keys: configuration.keys, settings: configuration.consumer, metrics: metrics, lanes: lanes,
        logger: logger)
    // The sink's lifecycle runs first, so it stops after the consumer has finished its batch.
    var services: [any Service] = [SinkService(sink)]
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

extension WorkerMetrics {
    /// The Prometheus factory of the worker's metrics: the event age's histogram has buckets fine enough to read a
    /// p99 of a second or two (25 ms to 5 minutes).
    static func factory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["operyn_worker_event_age_seconds"] = [
            0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300,
        ].map { Duration.milliseconds(Int64($0 * 1_000)) }
        return factory
    }
}
