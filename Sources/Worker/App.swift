import CMalloc
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Shared
import Sinks

@main
struct App {
    static func main() async {
        // Before any allocation of note: glibc fast bins off (see CMalloc and docs/performance.md, where it is measured).
        _ = CMalloc_disableFastBins()
        let configuration = Startup.configuration(purpose: WorkerConfiguration.purpose) { reader throws(ConfigurationError) in try WorkerConfiguration(reader) }
        LogFormat.bootstrap(configuration.log)
        let logger = Logger(label: "operyn.worker")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(WorkerMetrics.factory(registry: registry))
        let sink: any EventSink
        do {
            sink = try SinkFactory.make(url: configuration.databaseURL, password: configuration.databasePassword)
        } catch {
            Startup.fail("configuration error: \(error.message)", exitCode: 2)
        }
        // Two connections: commands, and the blocking reads (XREADGROUP … BLOCK) that would hold commands up.
        let commands = RedisClient(configuration: configuration.redis, name: "worker", logger: logger)
        let reader = RedisClient(configuration: configuration.redis, name: "worker-reader", logger: logger)
        let listener = Startup.Listener(setting: "OPERYN_METRICS_HOST/OPERYN_METRICS_PORT", host: configuration.metricsHost, port: configuration.metricsPort)
        var groupConfiguration = ServiceGroupConfiguration(
            // The Redis clients first: they stop last, after the consumer has finished its batch.
            services: [commands, reader]
                + buildServices(configuration, commands: commands, reader: reader, sink: sink, registry: registry, logger: logger, listener: listener),
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        // A batch in hand is finished when the database answers; one that waits on a failing database is abandoned
        // (unacknowledged: it is read again later) once this has passed.
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(configuration.shutdownGraceSeconds)
        let group = ServiceGroup(configuration: groupConfiguration)
        var failure: (any Error)?
        do {
            try await group.run()
        } catch {
            failure = error
        }
        await sink.close()
        if let failure { Startup.end(after: failure, listener: configuration.metricsPort == 0 ? nil : listener) }
    }
}
