extension RedisConfiguration {
    /// Reads `OPERYN_REDIS_URL` (default `redis://127.0.0.1:6379`, `rediss://` for TLS), the timeouts
    /// `OPERYN_REDIS_CONNECT_TIMEOUT_MS` (1000) and `OPERYN_REDIS_COMMAND_TIMEOUT_MS` (2000), the password from
    /// `OPERYN_REDIS_PASSWORD_FILE` (it wins over a password in the URL), and for `rediss://` the TLS files
    /// `OPERYN_REDIS_TLS_CA_FILE`, `OPERYN_REDIS_TLS_CERT_FILE` and `OPERYN_REDIS_TLS_KEY_FILE`, the name to verify
    /// `OPERYN_REDIS_TLS_SERVER_NAME`, and the development switch `OPERYN_REDIS_TLS_INSECURE` (false).
    public init(_ reader: ConfigurationReader) throws(ConfigurationError) {
        try self.init(reader, url: Self.url(reader))
    }

    /// `OPERYN_REDIS_URL`, as every process reads it.
    public static func url(_ reader: ConfigurationReader) -> String {
        reader.string(
            "OPERYN_REDIS_URL", default: "redis://127.0.0.1:6379",
            about: "`redis://[user[:password]@]host:port[/db]`, `rediss://…` for TLS; a Redis Cluster by some of its nodes: "
                + "`redis+cluster://[user[:password]@]host:port[,host:port…]` or `rediss+cluster://…` "
                + "([Redis Cluster](operations.md#redis-cluster), [TLS](operations.md#tls-secrets-and-least-privilege)); the password never appears in logs")
    }

    /// As `init(_:)`, with the URL given (`operyn-admin --redis-url`).
    public init(_ reader: ConfigurationReader, url: String) throws(ConfigurationError) {
        do {
            try self.init(url: url)
        } catch {
            throw ConfigurationError(message: "OPERYN_REDIS_URL: \(error.message)")
        }
        connectTimeoutMilliseconds = try reader.integer(
            "OPERYN_REDIS_CONNECT_TIMEOUT_MS", default: 1_000, in: 1...600_000, about: "longest wait for a connection to Redis")
        commandTimeoutMilliseconds = try reader.integer(
            "OPERYN_REDIS_COMMAND_TIMEOUT_MS", default: 2_000, in: 1...600_000, about: "longest wait for a Redis reply (then `503` at the gateway)")
        if let password = try reader.secretFile(
            "OPERYN_REDIS_PASSWORD_FILE",
            about: "a file holding the Redis password (a mounted secret; trailing line breaks dropped); it wins over a password in the URL")
        {
            self.password = password
        }
        let caFile = reader.string(
            "OPERYN_REDIS_TLS_CA_FILE", unset: "unset: the system's trust store",
            about: "PEM file of the CA that signed the Redis servers' certificates (`rediss://` only)")
        let certificateFile = reader.string(
            "OPERYN_REDIS_TLS_CERT_FILE", about: "a client certificate, PEM, for servers that require one (mutual TLS), with its key")
        let keyFile = reader.string("OPERYN_REDIS_TLS_KEY_FILE", about: "the client certificate's private key, PEM")
        let serverName = reader.string(
            "OPERYN_REDIS_TLS_SERVER_NAME", unset: "the URL's host",
            about: "the name the servers' certificates must carry (and SNI), for every node of a cluster: set it when nodes announce IP addresses")
        let insecure = try reader.boolean(
            "OPERYN_REDIS_TLS_INSECURE", default: false,
            about: "development only: Redis certificates are not verified, and every start logs a warning (`redis.tls.insecure`)")
        guard tls != nil else {
            // A TLS setting on a plain URL is a mistake (the switch only when it is on): said at start.
            let given = [
                ("OPERYN_REDIS_TLS_CA_FILE", caFile), ("OPERYN_REDIS_TLS_CERT_FILE", certificateFile), ("OPERYN_REDIS_TLS_KEY_FILE", keyFile),
                ("OPERYN_REDIS_TLS_SERVER_NAME", serverName), ("OPERYN_REDIS_TLS_INSECURE", insecure ? "on" : nil),
            ]
            if let (name, _) = given.first(where: { $0.1 != nil }) {
                throw ConfigurationError(message: "\(name) is set but OPERYN_REDIS_URL is not a rediss:// URL (TLS)")
            }
            return
        }
        do {
            tls = try RedisTLS(
                caFile: caFile, certificateFile: certificateFile, keyFile: keyFile, serverName: serverName, verify: !insecure)
        } catch {
            throw ConfigurationError(message: "OPERYN_REDIS_TLS_*: \(error.message)")
        }
    }
}

extension RedisKeys {
    /// Reads `OPERYN_KEY_PREFIX` (default `operyn`): letters, digits, `_`, `-`, `.` and `:` only; and, for a Redis
    /// Cluster (`clustered`), `OPERYN_STREAM_PARTITIONS` (16, 1-1024): every gateway, worker and `operyn-admin` of a
    /// deployment must read the same number.
    public init(_ reader: ConfigurationReader, clustered: Bool) throws(ConfigurationError) {
        let prefix = reader.string(
            "OPERYN_KEY_PREFIX", default: "operyn", values: "1-64 of letters, digits, `_ - . :`", about: "prefix of every Redis key")
        let allowed = prefix.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || "_-.:".utf8.contains(byte)
        }
        guard !prefix.isEmpty, prefix.utf8.count <= 64, allowed else {
            throw ConfigurationError(message: "OPERYN_KEY_PREFIX must be 1-64 characters of letters, digits, _ - . :, got '\(prefix)'")
        }
        let partitions = try reader.integer(
            "OPERYN_STREAM_PARTITIONS", default: RedisKeys.defaultPartitions, in: 1...1_024,
            about: "streams per event kind, on one server as in a Redis Cluster (an organization's events all go to one; workers share the "
                + "partitions fairly); the same in every process; `1` on one server is the layout before partitions")
        self.init(prefix: prefix, clustered: clustered, partitions: partitions)
    }
}
