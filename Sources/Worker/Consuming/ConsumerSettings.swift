/// How a `StreamConsumer` reads and retries; each is a worker setting (see the README).
struct ConsumerSettings: Sendable {
    /// This worker's name in the consumer group (`OPERYN_CONSUMER_NAME`, host and pid by default).
    var consumer: String
    /// About how many events a batch holds (`OPERYN_BATCH_SIZE`, 4000): entries are read so that, at the events per
    /// entry of the last read, a batch has this many (at least one entry).
    var batchSize = 4_000
    /// How long a read waits for new entries, in milliseconds (`OPERYN_BLOCK_MS`, 1000).
    var blockMilliseconds = 1_000
    /// Entries pending this long on a silent consumer are taken over (`OPERYN_CLAIM_IDLE_MS`, 30000).
    var claimIdleMilliseconds = 30_000
    /// Consumers without pending entries idle this long are removed from the group (`OPERYN_CONSUMER_EXPIRY_MS`, 3600000).
    var consumerExpiryMilliseconds = 3_600_000
    /// Failures of one entry before it is dead-lettered (`OPERYN_MAX_ATTEMPTS`, 5).
    var maxAttempts = 5
    /// Service limit of organizations other than `default` without an override (`OPERYN_DEFAULT_SERVICE_LIMIT`, 100).
    var defaultServiceLimit = 100
    /// How long Redis and the database may stay unreachable at start before the worker exits with code 3
    /// (`OPERYN_STARTUP_TIMEOUT_SECONDS`, 30; 0 waits for ever).
    var startupTimeoutSeconds = 30
    /// `OPERYN_DATABASE_URL` with its password hidden, for messages.
    var databaseURL = ""
    /// Approximate cap of the rejected stream (`OPERYN_REJECTED_MAXLEN`, 100000).
    var rejectedMaxLength = 100_000
    /// Of a batch, the percentage the overflow streams may take while other streams have entries waiting
    /// (`OPERYN_OVERFLOW_SHARE`, 25).
    var overflowSharePercent = 25
}
