extension RedisConfiguration {
    /// The settings read by `init(_:)`.
    public static let variables = [
        "OPERYN_REDIS_URL", "OPERYN_REDIS_CONNECT_TIMEOUT_MS", "OPERYN_REDIS_COMMAND_TIMEOUT_MS", "OPERYN_REDIS_PASSWORD_FILE",
        "OPERYN_REDIS_TLS_CA_FILE", "OPERYN_REDIS_TLS_CERT_FILE", "OPERYN_REDIS_TLS_KEY_FILE", "OPERYN_REDIS_TLS_SERVER_NAME",
        "OPERYN_REDIS_TLS_INSECURE",
    ]

    /// Reads `OPERYN_REDIS_URL` (default `redis://127.0.0.1:6379`, `rediss://` for TLS), the timeouts
    /// `OPERYN_REDIS_CONNECT_TIMEOUT_MS` (1000) and `OPERYN_REDIS_COMMAND_TIMEOUT_MS` (2000), the password from
    /// `OPERYN_REDIS_PASSWORD_FILE` (it wins over a password in the URL), and for `rediss://` the TLS files
    /// `OPERYN_REDIS_TLS_CA_FILE`, `OPERYN_REDIS_TLS_CERT_FILE` and `OPERYN_REDIS_TLS_KEY_FILE`, the name to verify
    /// `OPERYN_REDIS_TLS_SERVER_NAME`, and the development switch `OPERYN_REDIS_TLS_INSECURE` (false).
    public init(_ reader: ConfigurationReader) throws(ConfigurationError) {
        try self.init(reader, url: reader.string("OPERYN_REDIS_URL", default: "redis://127.0.0.1:6379"))
    }

    /// As `init(_:)`, with the URL given (`operyn-admin --redis-url`).
    public init(_ reader: ConfigurationReader, url: String) throws(ConfigurationError) {
        do {
            try self.init(url: url)
        } catch {
            throw ConfigurationError(message: "OPERYN_REDIS_URL: \(error.message)")
        }
        connectTimeoutMilliseconds = try reader.integer("OPERYN_REDIS_CONNECT_TIMEOUT_MS", default: 1_000, in: 1...600_000)
        commandTimeoutMilliseconds = try reader.integer("OPERYN_REDIS_COMMAND_TIMEOUT_MS", default: 2_000, in: 1...600_000)
        if let password = try reader.secretFile("OPERYN_REDIS_PASSWORD_FILE") { self.password = password }
        let insecure = try reader.boolean("OPERYN_REDIS_TLS_INSECURE", default: false)
        guard tls != nil else {
            // A TLS setting on a plain URL is a mistake (the switch only when it is on): said at start.
            let given = Self.variables.filter { $0.hasPrefix("OPERYN_REDIS_TLS_") && (insecure || $0 != "OPERYN_REDIS_TLS_INSECURE") }
            if let given = given.first(where: { reader.string($0) != nil }) {
                throw ConfigurationError(message: "\(given) is set but OPERYN_REDIS_URL is not a rediss:// URL (TLS)")
            }
            return
        }
        do {
            tls = try RedisTLS(
                caFile: reader.string("OPERYN_REDIS_TLS_CA_FILE"), certificateFile: reader.string("OPERYN_REDIS_TLS_CERT_FILE"),
                keyFile: reader.string("OPERYN_REDIS_TLS_KEY_FILE"), serverName: reader.string("OPERYN_REDIS_TLS_SERVER_NAME"), verify: !insecure)
        } catch {
            throw ConfigurationError(message: "OPERYN_REDIS_TLS_*: \(error.message)")
        }
    }
}

extension RedisKeys {
    /// The settings read by `init(_:)`.
    public static let variables = ["OPERYN_KEY_PREFIX", "OPERYN_STREAM_PARTITIONS"]

    /// Reads `OPERYN_KEY_PREFIX` (default `operyn`): letters, digits, `_`, `-`, `.` and `:` only; and, for a Redis
    /// Cluster (`clustered`), `OPERYN_STREAM_PARTITIONS` (16, 1-1024): every gateway, worker and `operyn-admin` of a
    /// deployment must read the same number.
    public init(_ reader: ConfigurationReader, clustered: Bool) throws(ConfigurationError) {
        let prefix = reader.string("OPERYN_KEY_PREFIX", default: "operyn")
        let allowed = prefix.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || "_-.:".utf8.contains(byte)
        }
        guard !prefix.isEmpty, prefix.utf8.count <= 64, allowed else {
            throw ConfigurationError(message: "OPERYN_KEY_PREFIX must be 1-64 characters of letters, digits, _ - . :, got '\(prefix)'")
        }
        let partitions = try reader.integer("OPERYN_STREAM_PARTITIONS", default: RedisKeys.defaultPartitions, in: 1...1_024)
        self.init(prefix: prefix, clustered: clustered, partitions: partitions)
    }
}
