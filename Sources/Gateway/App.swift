import Logging
import Shared

@main
struct App {
    static func main() async throws {
        let configuration = Startup.configuration(help: GatewayConfiguration.help, GatewayConfiguration.init)
        let logger = Logger(label: "operyn.gateway")
        if configuration.apiKey == nil {
            logger.warning("auth.disabled", metadata: ["reason": "OPERYN_API_KEY is not set: the endpoints are open"])
        }
        let redis = RedisClient(configuration: configuration.redis, name: "gateway", logger: logger)
        try await Startup.waitForRedis(redis, logger: logger)
        logger.info("gateway.ready", metadata: ["redis.url": "\(configuration.redis.redactedURL)", "redis.prefix": "\(configuration.keys.prefix)"])
        let signal = await Startup.waitForTerminationSignal()
        logger.info("gateway.stopping", metadata: ["signal": "\(signal)"])
        redis.shutdown()
    }
}
