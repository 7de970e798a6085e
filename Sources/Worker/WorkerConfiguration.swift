import Shared

/// Everything `operyn-worker` is configured with; each field is an environment variable and an option.
struct WorkerConfiguration: Sendable {
    /// `OPERYN_DATABASE_URL` (sqlite:./data/operyn.sqlite): where events are stored.
    var databaseURL = "sqlite:./data/operyn.sqlite"
    /// `OPERYN_REDIS_URL` and the Redis timeouts.
    var redis = RedisConfiguration()
    /// `OPERYN_KEY_PREFIX` (operyn).
    var keys = RedisKeys()

    static let variables = ["OPERYN_DATABASE_URL"] + RedisConfiguration.variables + RedisKeys.variables + LogFormat.variables

    static let help = """
        operyn-worker: stores the events queued in Redis streams.
        Every setting is an environment variable and the option named after it (OPERYN_REDIS_URL = --redis-url):
        \(variables.map { "  --\(ConfigurationReader.optionName($0))  (\($0))" }.joined(separator: "\n"))
        See the README for defaults.
        """

    init() {}

    init(_ reader: ConfigurationReader) throws(ConfigurationError) {
        try reader.checkKnown(Self.variables)
        databaseURL = reader.string("OPERYN_DATABASE_URL", default: databaseURL)
        redis = try RedisConfiguration(reader)
        keys = try RedisKeys(reader)
    }
}
