import Hummingbird
import Logging
import Metrics
import NIOCore
import NIOPosix
import Prometheus
import Shared

@main
struct App {
    static func main() async {
        let configuration = Startup.configuration(purpose: GatewayConfiguration.purpose) { reader throws(ConfigurationError) in try GatewayConfiguration(reader)
        }
        LogFormat.bootstrap(configuration.log)
        let logger = Logger(label: "operyn.gateway")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        if configuration.apiKey == nil && !configuration.requireAPIKey {
            logger.warning("auth.disabled", metadata: ["reason": "OPERYN_API_KEY is not set: the endpoints are open"])
        }
        // Before anything makes the shared event loops.
        NIOSingletons.groupLoopCountSuggestion = configuration.eventLoops
        // One Redis connection on each event loop the HTTP server runs on (Hummingbird's default group): a request
        // is read, appended and answered on one loop, and a round trip wakes no other thread.
        let redis = RedisClient(configuration: configuration.redis, group: MultiThreadedEventLoopGroup.singleton, name: "gateway", logger: logger)
        let listener = Startup.Listener(setting: "OPERYN_HOST/OPERYN_PORT", host: configuration.host, port: configuration.port)
        let app = buildApplication(configuration, redis: redis, registry: registry, logger: logger, services: [redis], listener: listener)
        do {
            try await app.runService()
        } catch {
            Startup.end(after: error, listener: listener)
        }
    }
}
