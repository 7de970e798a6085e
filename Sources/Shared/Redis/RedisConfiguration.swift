/// Where and how to reach Redis: parsed from `redis://[user:password@]host:port[/db]`.
public struct RedisConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// Host name or address.
    public var host: String
    /// TCP port.
    public var port: Int
    /// ACL user name; `nil` authenticates as the default user.
    public var username: String?
    /// Password for AUTH; `nil` skips AUTH.
    public var password: String?
    /// Database selected after connecting.
    public var database: Int
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

    /// Parses `redis://[user:password@]host:port[/db]`; the password may also stand alone (`redis://:secret@host`).
    /// Percent-escapes in the user and password are decoded. Errors never repeat the password.
    public init(url: String) throws(RedisError) {
        self.init()
        guard url.hasPrefix("redis://") else {
            throw RedisError(code: .invalidConfiguration, message: "Redis URL must start with redis://")
        }
        var rest = Substring(url.dropFirst("redis://".count))
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let user = credentials[..<colon]
                username = user.isEmpty ? nil : try Self.percentDecoded(user)
                password = try Self.percentDecoded(credentials[credentials.index(after: colon)...])
            } else if !credentials.isEmpty {
                password = try Self.percentDecoded(credentials)
            }
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
        if hostPort.hasPrefix("["), let close = hostPort.firstIndex(of: "]") {
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            hostPort = hostPort[hostPort.index(after: close)...]
            if hostPort.hasPrefix(":") { port = try Self.port(hostPort.dropFirst()) }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<colon])
            port = try Self.port(hostPort[hostPort.index(after: colon)...])
        } else {
            host = String(hostPort)
        }
        if host.isEmpty { host = "127.0.0.1" }
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
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return "redis://\(credentials)\(hostPart):\(port)/\(database)"
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
