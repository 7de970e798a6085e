import Shared

/// Everything `operyn-gateway` is configured with; each field is an environment variable and an option.
struct GatewayConfiguration: Sendable {
    /// `OPERYN_HOST` (127.0.0.1): the address to bind.
    var host = "127.0.0.1"
    /// `OPERYN_PORT` (3001): the port to bind.
    var port = 3001
    /// `OPERYN_API_KEY` (unset): the server-wide API key; unset leaves the endpoints open.
    var apiKey: String?
    /// `OPERYN_REDIS_URL` and the Redis timeouts.
    var redis = RedisConfiguration()
    /// `OPERYN_KEY_PREFIX` (operyn).
    var keys = RedisKeys()
    /// The `OPERYN_MAX_*` size limits.
    var limits = EventLimits()
    /// `OPERYN_BACKLOG_HIGH_WATER` (1 000 000): above this many undelivered plus pending entries, answer 503.
    var backlogHighWater = 1_000_000
    /// `OPERYN_BACKLOG_REFRESH_MS` (1000): how often the backlog reading is refreshed.
    var backlogRefreshMilliseconds = 1_000
    /// `OPERYN_RETRY_AFTER_SECONDS` (1): the `Retry-After` of 503 answers.
    var retryAfterSeconds = 1
    /// `OPERYN_DOCS_ASSETS_URL` (https://cdn.jsdelivr.net/npm): where Swagger UI and Scalar load their scripts and styles.
    var docsAssetsURL = "https://cdn.jsdelivr.net/npm"

    static let variables =
        [
            "OPERYN_HOST", "OPERYN_PORT", "OPERYN_API_KEY", "OPERYN_BACKLOG_HIGH_WATER", "OPERYN_BACKLOG_REFRESH_MS",
            "OPERYN_RETRY_AFTER_SECONDS", "OPERYN_DOCS_ASSETS_URL",
        ] + RedisConfiguration.variables + RedisKeys.variables + EventLimits.variables + LogFormat.variables

    static let help = ConfigurationReader.help("operyn-gateway: takes events over HTTP and appends them to Redis streams.", variables: variables)

    init() {}

    init(_ reader: ConfigurationReader) throws(ConfigurationError) {
        try reader.checkKnown(Self.variables)
        host = reader.string("OPERYN_HOST", default: host)
        port = try reader.integer("OPERYN_PORT", default: port, in: 0...65_535)
        apiKey = reader.string("OPERYN_API_KEY").flatMap { $0.isEmpty ? nil : $0 }
        redis = try RedisConfiguration(reader)
        keys = try RedisKeys(reader)
        limits = try EventLimits(reader)
        backlogHighWater = try reader.integer("OPERYN_BACKLOG_HIGH_WATER", default: backlogHighWater, in: 1...Int.max)
        backlogRefreshMilliseconds = try reader.integer("OPERYN_BACKLOG_REFRESH_MS", default: backlogRefreshMilliseconds, in: 10...600_000)
        retryAfterSeconds = try reader.integer("OPERYN_RETRY_AFTER_SECONDS", default: retryAfterSeconds, in: 1...3_600)
        docsAssetsURL = reader.string("OPERYN_DOCS_ASSETS_URL", default: docsAssetsURL)
        while docsAssetsURL.hasSuffix("/") { docsAssetsURL.removeLast() }
    }
}
