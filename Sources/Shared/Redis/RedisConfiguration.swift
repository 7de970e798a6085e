/// A Redis server's address.
public struct RedisAddress: Sendable, Hashable, CustomStringConvertible {
    /// Host name or address.
    public var host: String
    /// TCP port.
    public var port: Int

    /// An address.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Where and how to reach Redis: parsed from `redis://[user:password@]host:port[/db]` for one server, or
/// `redis+cluster://[user:password@]host:port[,host:port…]` for a Redis Cluster known by some of its nodes (the
/// seeds; the client learns the rest from them). `rediss://` and `rediss+cluster://` connect over TLS (`tls`).
public struct RedisConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// Host name or address (the first seed of a cluster).
    public var host: String
    /// TCP port (the first seed's).
    public var port: Int
    /// The nodes a cluster client asks for the cluster's layout; empty for a single server.
    public var clusterSeeds: [RedisAddress] = []
    /// ACL user name; `nil` authenticates as the default user.
    public var username: String?
    /// Password for AUTH; `nil` skips AUTH.
    public var password: String?
    /// Database selected after connecting.
    public var database: Int
    /// TLS for every connection (`rediss://`); `nil` for plain TCP.
    public var tls: RedisTLS?
    /// Longest wait for a TCP connection and its handshake, in milliseconds.
    public var connectTimeoutMilliseconds: Int
    /// Longest wait for a command's reply, in milliseconds, counted from when it was sent.
    public var commandTimeoutMilliseconds: Int
    /// First wait before reconnecting after a failure, in milliseconds; doubles up to `maxReconnectDelayMilliseconds`.
    public var reconnectDelayMilliseconds: Int
    /// Longest wait between reconnect attempts, in milliseconds.
    public var maxReconnectDelayMilliseconds: Int

    /// Makes a configuration with the default timeouts: connect 1 s, command 2 s, reconnect 50 ms to 1 s.
    public init(
        host: String = "127.0.0.1",
        port: Int = 6379,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        connectTimeoutMilliseconds: Int = 1_000,
        commandTimeoutMilliseconds: Int = 2_000,
        reconnectDelayMilliseconds: Int = 50,
        maxReconnectDelayMilliseconds: Int = 1_000
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.commandTimeoutMilliseconds = commandTimeoutMilliseconds
        self.reconnectDelayMilliseconds = reconnectDelayMilliseconds
        self.maxReconnectDelayMilliseconds = maxReconnectDelayMilliseconds
    }

    /// Whether this is a Redis Cluster.
    public var isCluster: Bool { !clusterSeeds.isEmpty }

    /// Parses `redis://[user:password@]host:port[/db]` (`rediss://` for TLS, verified against the system's trust
    /// store until `tls` is set otherwise); the password may also stand alone (`redis://:secret@host`), and so may
    /// the user (`redis://ingest@host`, its password from a file).
    /// Percent-escapes in the user and password are decoded. Errors never repeat the password.
    /// `redis+cluster://[user:password@]host:port[,host:port…]` names a cluster by its seeds (no database: a
    /// cluster has only database 0).
    public init(url: String) throws(RedisError) {
        self.init()
        guard let scheme = ["redis://", "rediss://", "redis+cluster://", "rediss+cluster://"].first(where: { url.hasPrefix($0) }) else {
            throw RedisError(
                code: .invalidConfiguration,
                message: "Redis URL must start with redis:// or rediss:// (TLS), or redis+cluster:// or rediss+cluster:// for a cluster")
        }
        let cluster = scheme.hasSuffix("+cluster://")
        if scheme.hasPrefix("rediss") { tls = try RedisTLS() }
        var rest = Substring(url.dropFirst(scheme.count))
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let user = credentials[..<colon]
                username = user.isEmpty ? nil : try Self.percentDecoded(user)
                password = try Self.percentDecoded(credentials[credentials.index(after: colon)...])
            } else if !credentials.isEmpty {
                // As redis-py reads it: a user without a password, whose password comes from OPERYN_REDIS_PASSWORD_FILE.
                username = try Self.percentDecoded(credentials)
            }
        }
        if cluster {
            if rest.hasSuffix("/") || rest.hasSuffix("/0") { rest = rest[..<rest.lastIndex(of: "/")!] }
            guard !rest.contains("/") else {
                throw RedisError(code: .invalidConfiguration, message: "a Redis Cluster URL names no database (a cluster has only database 0)")
            }
            for seed in rest.split(separator: ",", omittingEmptySubsequences: false) {
                let address = try Self.address(seed)
                clusterSeeds.append(RedisAddress(host: address.host.isEmpty ? "127.0.0.1" : address.host, port: address.port ?? 6379))
            }
            host = clusterSeeds[0].host
            port = clusterSeeds[0].port
            return
        }
        var hostPort = rest
        if let slash = rest.firstIndex(of: "/") {
            hostPort = rest[..<slash]
            let db = rest[rest.index(after: slash)...]
            if !db.isEmpty {
                guard let number = Int(db), number >= 0 else {
                    throw RedisError(code: .invalidConfiguration, message: "Redis URL database must be a number, got '\(db)'")
                }
                database = number
            }
        }
        let address = try Self.address(hostPort)
        host = address.host.isEmpty ? "127.0.0.1" : address.host
        port = address.port ?? port
    }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`.
    private static func address(_ text: Substring) throws(RedisError) -> (host: String, port: Int?) {
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            let rest = text[text.index(after: close)...]
            return (String(text[text.index(after: text.startIndex)..<close]), rest.hasPrefix(":") ? try port(rest.dropFirst()) : nil)
        } else if let colon = text.lastIndex(of: ":") {
            return (String(text[..<colon]), try port(text[text.index(after: colon)...]))
        }
        return (String(text), nil)
    }

    private static func port(_ text: Substring) throws(RedisError) -> Int {
        guard let port = Int(text), (1...65_535).contains(port) else {
            throw RedisError(code: .invalidConfiguration, message: "Redis URL port must be 1-65535, got '\(text)'")
        }
        return port
    }

    private static func percentDecoded(_ text: Substring) throws(RedisError) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next(), let low = iterator.next(),
                let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            else {
                throw RedisError(code: .invalidConfiguration, message: "Redis URL has a bad percent-escape in its credentials")
            }
            bytes.append(value)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The URL with the password replaced by `***`: safe for logs.
    public var redactedURL: String {
        var credentials = ""
        if username != nil || password != nil {
            credentials = "\(username ?? ""):\(password == nil ? "" : "***")@"
        }
        let scheme = tls == nil ? "redis" : "rediss"
        if isCluster {
            return "\(scheme)+cluster://\(credentials)\(clusterSeeds.map(\.description).joined(separator: ","))"
        }
        return "\(scheme)://\(credentials)\(RedisAddress(host: host, port: port))/\(database)"
    }

    /// This configuration for one node of its cluster: same credentials and timeouts, that node's address.
    func node(_ address: RedisAddress) -> RedisConfiguration {
        var node = self
        node.host = address.host
        node.port = address.port
        node.clusterSeeds = []
        return node
    }

    public var description: String { redactedURL }
}

extension RedisConfiguration {
    /// What a new connection sends before any command: `AUTH` (password, or ACL user and password) and `SELECT`,
    /// each named for error messages that never quote the password.
    var handshake: [(step: String, arguments: [[UInt8]])] {
        var steps: [(step: String, arguments: [[UInt8]])] = []
        if let password {
            if let username {
                steps.append(("AUTH", RedisCommandEncoder.arguments("AUTH", username, password)))
            } else {
                steps.append(("AUTH", RedisCommandEncoder.arguments("AUTH", password)))
            }
        }
        if database != 0 {
            steps.append(("SELECT", RedisCommandEncoder.arguments("SELECT", String(database))))
        }
        return steps
    }
}
