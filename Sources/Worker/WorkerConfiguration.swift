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

    /// What `--help` says the program is.
    static let purpose = "operyn-worker: stores the events queued in Redis streams."

    /// How the worker logs.
    var log = LogSettings()

    init() {}

    init(_ reader: ConfigurationReader) throws(ConfigurationError) {
        log = try LogSettings(reader)
        databaseURL = reader.string(
            "OPERYN_DATABASE_URL", default: databaseURL,
            about: "`sqlite:<path>`, or `postgres://user[:password]@host[:port]/db[?sslmode=…]` with libpq's `sslmode` (`disable`, `allow`, "
                + "`prefer` (default), `require`, `verify-ca`, `verify-full`), `sslrootcert` (a file, or `system`), `sslcert`, `sslkey`, "
                + "`connect_timeout`; `channel_binding` and `application_name` are accepted and ignored ([TLS](operations.md#postgresql-over-tls))")
        databasePassword = try reader.secretFile(
            "OPERYN_DATABASE_PASSWORD_FILE", about: "a file holding the database password; it wins over a password in the URL")
        redis = try RedisConfiguration(reader)
        keys = try RedisKeys(reader, clustered: redis.isCluster)
        metricsHost = reader.string("OPERYN_METRICS_HOST", default: metricsHost, about: "the address of the worker's `/metrics` and health endpoints")
        metricsPort = try reader.integer(
            "OPERYN_METRICS_PORT", default: metricsPort, in: 0...65_535, about: "the port of the worker's `/metrics` and health endpoints; `0` turns them off")
        metricsMaxOrganizations = try reader.integer(
            "OPERYN_METRICS_MAX_ORGS", default: metricsMaxOrganizations, in: 0...100_000,
            about: "organizations with Prometheus series of their own (the first to reach `OPERYN_METRICS_ORG_MIN_EVENTS`); the rest count "
                + "under `org=\"other\"`")
        metricsOrganizationMinEvents = try reader.integer(
            "OPERYN_METRICS_ORG_MIN_EVENTS", default: metricsOrganizationMinEvents, in: 1...1_000_000_000,
            about: "events an organization stores before it gets series of its own")
        consumer.consumer = reader.string(
            "OPERYN_CONSUMER_NAME", default: consumer.consumer, shown: "`<host>-<pid>`", about: "this worker's name in the consumer group")
        consumer.batchSize = try reader.integer(
            "OPERYN_BATCH_SIZE", default: consumer.batchSize, in: 1...100_000,
            about: "about how many events of each kind one batch reads and stores in one transaction (fewer when fewer are waiting)")
        consumer.blockMilliseconds = try reader.integer(
            "OPERYN_BLOCK_MS", default: consumer.blockMilliseconds, in: 1...60_000, about: "how long a read waits for new entries")
        consumer.claimIdleMilliseconds = try reader.integer(
            "OPERYN_CLAIM_IDLE_MS", default: consumer.claimIdleMilliseconds, in: 100...86_400_000,
            about: "entries pending this long are taken over from a silent consumer (and retried)")
        consumer.consumerExpiryMilliseconds = try reader.integer(
            "OPERYN_CONSUMER_EXPIRY_MS", default: consumer.consumerExpiryMilliseconds, in: 1_000...604_800_000,
            about: "consumers with nothing pending silent this long leave the group")
        consumer.maxAttempts = try reader.integer(
            "OPERYN_MAX_ATTEMPTS", default: consumer.maxAttempts, in: 1...1_000,
            about: "attempts of an entry holding an event the database refuses before that event is dead-lettered (the rest of the entry is stored)")
        consumer.defaultServiceLimit = try ServiceLimit.deploymentDefault(reader)
        consumer.rejectedMaxLength = try reader.integer(
            "OPERYN_REJECTED_MAXLEN", default: consumer.rejectedMaxLength, in: 1...100_000_000, about: "approximate cap of the rejected stream")
        consumer.startupTimeoutSeconds = try Startup.timeoutSeconds(reader)
        consumer.databaseURL = SinkFactory.redacted(databaseURL)
        retention = try RetentionSettings(reader)
        overflow = try OverflowSettings(reader)
        consumer.overflowSharePercent = overflow.sharePercent
        shutdownGraceSeconds = try reader.integer(
            "OPERYN_SHUTDOWN_GRACE_SECONDS", default: shutdownGraceSeconds, in: 1...3_600,
            about: "after `SIGTERM`, how long the batch in hand may wait on the database before it is left unacknowledged")
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

    init() {}

    init(_ reader: ConfigurationReader) throws(ConfigurationError) {
        defaultDays = try reader.integer(
            "OPERYN_RETENTION_DAYS", unset: "unset: for ever", in: 1...RetentionPolicy.maximumDays,
            about: "days events are kept after they were accepted, unless an organization's override (`operyn-admin orgs set-retention`) says "
                + "otherwise; set it alike on every worker ([operations](operations.md#retention-and-partitions))")
        intervalSeconds = try reader.integer(
            "OPERYN_RETENTION_INTERVAL_SECONDS", default: intervalSeconds, in: 1...86_400,
            about: "how often each worker makes the coming days' partitions and tries to run retention (one worker at a time does)")
        stepRows = try reader.integer(
            "OPERYN_RETENTION_STEP_ROWS", default: stepRows, in: 100...1_000_000, about: "rows one retention delete removes, each its own transaction")
    }
}
