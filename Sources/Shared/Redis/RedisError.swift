import NIOCore

/// An error from the Redis client: a connection problem or an error reply from the server.
public struct RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String

        /// The TCP connection could not be made or the handshake (AUTH, SELECT) failed.
        public static let connectionFailed = Code(name: "connectionFailed")
        /// The link broke while a command was in flight; the command may or may not have run.
        public static let connectionClosed = Code(name: "connectionClosed")
        /// The client is waiting before its next reconnect attempt.
        public static let unavailable = Code(name: "unavailable")
        /// No answer within the command timeout.
        public static let timeout = Code(name: "timeout")
        /// The server sent bytes that are not RESP.
        public static let protocolError = Code(name: "protocolError")
        /// The reply had another shape than the command expects.
        public static let unexpectedReply = Code(name: "unexpectedReply")
        /// The client has been shut down.
        public static let shutdown = Code(name: "shutdown")
        /// A URL or option could not be understood.
        public static let invalidConfiguration = Code(name: "invalidConfiguration")
        /// An error reply from the server; `serverPrefix` holds its first word.
        public static let server = Code(name: "server")
        /// Commands of several hash slots asked to run atomically in a Redis Cluster.
        public static let crossSlot = Code(name: "crossSlot")

        public var description: String { name }
    }

    /// The kind of failure.
    public var code: Code
    /// A message fit for logs: never contains a password.
    public var message: String
    /// For server errors, the reply's first word (`WRONGTYPE`, `NOSCRIPT`, `OOM`, `READONLY`, `BUSYGROUP` ...).
    public var serverPrefix: String?

    /// Makes an error.
    public init(code: Code, message: String, serverPrefix: String? = nil) {
        self.code = code
        self.message = message
        self.serverPrefix = serverPrefix
    }

    /// Makes the error carried by a server error reply such as `WRONGTYPE Operation against a key ...`.
    public init(serverReply text: String) {
        let prefix = text.prefix { $0 != " " }
        self.init(code: .server, message: text, serverPrefix: prefix.isEmpty ? nil : String(prefix))
    }

    /// Whether the same command may succeed if tried again later: connection trouble,
    /// timeouts, and the server states that pass (`OOM`, `READONLY`, `LOADING`, `BUSY`, `TRYAGAIN`, `MASTERDOWN`).
    public var isRetryable: Bool {
        switch code {
        case .connectionFailed, .connectionClosed, .unavailable, .timeout: return true
        case .server:
            return ["OOM", "READONLY", "LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN"]
                .contains(serverPrefix ?? "")
        default: return false
        }
    }

    /// Whether this is the server error reply with the given prefix.
    public func isServerError(_ prefix: String) -> Bool {
        code == .server && serverPrefix == prefix
    }

    public var description: String { "RedisError(\(code)): \(message)" }
}

extension RedisError {
    /// Any error met while talking to Redis as a `RedisError`: itself, or a connection that failed, naming the
    /// cause. The one place where the transport's errors become the client's.
    init(_ error: any Error) {
        self = (error as? RedisError) ?? RedisError(code: .connectionClosed, message: "Redis connection failed: \(error)")
    }
}

extension EventLoopFuture {
    /// The value, or the failure as a `RedisError`.
    func redisValue() async throws(RedisError) -> Value {
        do {
            return try await get()
        } catch {
            throw RedisError(error)
        }
    }
}
