import Foundation
import Shared
import Sinks

/// Everything `operyn-worker` is configured with; each field is an environment variable and an option.
struct WorkerConfiguration: Sendable {
    /// `OPERYN_DATABASE_URL` (sqlite:./data/operyn.sqlite): where events are stored.
    var databaseURL = "sqlite:./data/operyn.sqlite"
    /// `OPERYN_DATABASE_PASSWORD_FILE` (unset): a file holding the database password (a mounted secret); it wins
    /// over a password in `OPERYN_DATABASE_URL`.
    var databasePassword: String?
    /// `OPERYN_REDIS_URL` and the Redis timeouts.
    var redis = RedisConfiguration()
    /// `OPERYN_KEY_PREFIX` (operyn).
    var keys = RedisKeys()
    /// `OPERYN_METRICS_PORT` (9464; 0 turns the HTTP endpoint off).
    var metricsPort = 9464
    /// `OPERYN_METRICS_HOST` (127.0.0.1).
    var metricsHost = "127.0.0.1"
    /// `OPERYN_METRICS_MAX_ORGS` (100) and `OPERYN_METRICS_ORG_MIN_EVENTS` (1000): organizations with series of their own
    /// (the first to reach that many events), the rest under `org="other"`.
    var metricsMaxOrganizations = 100
    var metricsOrganizationMinEvents = 1_000
    /// `OPERYN_SHUTDOWN_GRACE_SECONDS` (10): after `SIGTERM`, how long the batch in hand may take to finish before it is
    /// abandoned unacknowledged.
    var shutdownGraceSeconds = 10
    /// Retention: the default and how the runs go.
    var retention = RetentionSettings()
    /// Reading, claiming and retrying.
    var consumer = ConsumerSettings(consumer: WorkerConfiguration.defaultConsumerName)
    /// When an organization's events overflow, and the overflow streams' share of a batch.
    var overflow = OverflowSettings()

    static var defaultConsumerName: String {
        "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
    }

    static let variables =
        [
            "OPERYN_DATABASE_URL", "OPERYN_DATABASE_PASSWORD_FILE", "OPERYN_METRICS_PORT", "OPERYN_METRICS_HOST", "OPERYN_CONSUMER_NAME", "OPERYN_BATCH_SIZE",
            "OPERYN_BLOCK_MS",
            "OPERYN_CLAIM_IDLE_MS", "OPERYN_CONSUMER_EXPIRY_MS", "OPERYN_MAX_ATTEMPTS", "OPERYN_DEFAULT_SERVICE_LIMIT", "OPERYN_REJECTED_MAXLEN",
            "OPERYN_STARTUP_TIMEOUT_SECONDS", "OPERYN_SHUTDOWN_GRACE_SECONDS", "OPERYN_METRICS_MAX_ORGS", "OPERYN_METRICS_ORG_MIN_EVENTS",
        ] + RetentionSettings.variables + OverflowSettings.variables + RedisConfiguration.variables + RedisKeys.variables + LogFormat.variables

    static let help = ConfigurationReader.help("operyn-worker: stores the events queued in Redis streams.", variables: variables)

    init() {}

    init(_ reader: ConfigurationReader) throws(ConfigurationError) {
        try reader.checkKnown(Self.variables)
        databaseURL = reader.string("OPERYN_DATABASE_URL", default: databaseURL)
        databasePassword = try reader.secretFile("OPERYN_DATABASE_PASSWORD_FILE")
        redis = try RedisConfiguration(reader)
        keys = try RedisKeys(reader, clustered: redis.isCluster)
        metricsPort = try reader.integer("OPERYN_METRICS_PORT", default: metricsPort, in: 0...65_535)
        metricsHost = reader.string("OPERYN_METRICS_HOST", default: metricsHost)
        metricsMaxOrganizations = try reader.integer("OPERYN_METRICS_MAX_ORGS", default: metricsMaxOrganizations, in: 0...100_000)
        metricsOrganizationMinEvents = try reader.integer("OPERYN_METRICS_ORG_MIN_EVENTS", default: metricsOrganizationMinEvents, in: 1...1_000_000_000)
        consumer.consumer = reader.string("OPERYN_CONSUMER_NAME", default: consumer.consumer)
        consumer.batchSize = try reader.integer("OPERYN_BATCH_SIZE", default: consumer.batchSize, in: 1...100_000)
        consumer.blockMilliseconds = try reader.integer("OPERYN_BLOCK_MS", default: consumer.blockMilliseconds, in: 1...60_000)
        consumer.claimIdleMilliseconds = try reader.integer("OPERYN_CLAIM_IDLE_MS", default: consumer.claimIdleMilliseconds, in: 100...86_400_000)
        consumer.consumerExpiryMilliseconds = try reader.integer(
            "OPERYN_CONSUMER_EXPIRY_MS", default: consumer.consumerExpiryMilliseconds, in: 1_000...604_800_000)
        consumer.maxAttempts = try reader.integer("OPERYN_MAX_ATTEMPTS", default: consumer.maxAttempts, in: 1...1_000)
        consumer.defaultServiceLimit = try reader.integer("OPERYN_DEFAULT_SERVICE_LIMIT", default: consumer.defaultServiceLimit, in: 0...1_000_000)
        consumer.rejectedMaxLength = try reader.integer("OPERYN_REJECTED_MAXLEN", default: consumer.rejectedMaxLength, in: 1...100_000_000)
        consumer.startupTimeoutSeconds = try reader.integer("OPERYN_STARTUP_TIMEOUT_SECONDS", default: consumer.startupTimeoutSeconds, in: 0...86_400)
        consumer.databaseURL = SinkFactory.redacted(databaseURL)
        retention = try RetentionSettings(reader)
        overflow = try OverflowSettings(reader)
        consumer.overflowSharePercent = overflow.sharePercent
        shutdownGraceSeconds = try reader.integer("OPERYN_SHUTDOWN_GRACE_SECONDS", default: shutdownGraceSeconds, in: 1...3_600)
    }
}

/// How the worker expires stored events (`RetentionRunner`).
struct RetentionSettings: Sendable, Equatable {
    /// `OPERYN_RETENTION_DAYS` (unset: for ever): days events are kept unless an organization's override says
    /// otherwise.
    var defaultDays: Int?
    /// `OPERYN_RETENTION_INTERVAL_SECONDS` (300): how often a worker tries to run retention (one at a time does).
    var intervalSeconds = 300
    /// `OPERYN_RETENTION_STEP_ROWS` (5000): rows one delete step removes, each step its own transaction.
    var stepRows = 5_000

    static let variables = ["OPERYN_RETENTION_DAYS", "OPERYN_RETENTION_INTERVAL_SECONDS", "OPERYN_RETENTION_STEP_ROWS"]

    init() {}

    init(_ reader: ConfigurationReader) throws(ConfigurationError) {
        if reader.string("OPERYN_RETENTION_DAYS") != nil {
            defaultDays = try reader.integer("OPERYN_RETENTION_DAYS", default: 0, in: 1...RetentionPolicy.maximumDays)
        }
        intervalSeconds = try reader.integer("OPERYN_RETENTION_INTERVAL_SECONDS", default: intervalSeconds, in: 1...86_400)
        stepRows = try reader.integer("OPERYN_RETENTION_STEP_ROWS", default: stepRows, in: 100...1_000_000)
    }
}
