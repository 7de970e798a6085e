import CMalloc
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Shared

@main
struct App {
    static func main() async throws {
        // Before any allocation of note: see CMalloc. Measured with scripts/bench-worker.sh (README).
        _ = CMalloc_disableFastBins()
        let configuration = Startup.configuration(help: WorkerConfiguration.help) { reader throws(ConfigurationError) in
            try LogFormat.bootstrap(reader)
            return try WorkerConfiguration(reader)
        }
        let logger = Logger(label: "operyn.worker")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let sink: any EventSink
        do {
            sink = try SinkFactory.make(url: configuration.databaseURL)
        } catch {
            logger.critical("worker.configuration", metadata: ["error": "\(error.message)"])
            throw error
        }
        let commands = RedisClient(configuration: configuration.redis, name: "worker", logger: logger)
        let reader = RedisClient(configuration: configuration.redis, name: "worker-reader", logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: buildServices(configuration, commands: commands, reader: reader, sink: sink, registry: registry, logger: logger),
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
        await sink.close()
        commands.shutdown()
        reader.shutdown()
    }
}
