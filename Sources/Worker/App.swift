import Logging
import Shared

@main
struct App {
    static func main() async throws {
        let configuration = Startup.configuration(help: WorkerConfiguration.help) { reader throws(ConfigurationError) in
            try LogFormat.bootstrap(reader)
            return try WorkerConfiguration(reader)
        }
        let logger = Logger(label: "operyn.worker")
        let redis = RedisClient(configuration: configuration.redis, name: "worker", logger: logger)
        try await Startup.waitForRedis(redis, logger: logger)
        for kind in EventKind.allCases {
            _ = try await redis.send(XGROUPCREATE(configuration.keys.stream(kind), group: configuration.keys.consumerGroup))
        }
        logger.info("worker.ready", metadata: ["redis.url": "\(configuration.redis.redactedURL)", "database": "\(configuration.databaseURL)"])
        let signal = await Startup.waitForTerminationSignal()
        logger.info("worker.stopping", metadata: ["signal": "\(signal)"])
        redis.shutdown()
    }
}
