import Shared

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How long a client may take, and how many may be connected at once: what keeps stalled clients (slowloris)
/// from holding the gateway's connections and memory. Each is a setting (see the README).
struct ConnectionSettings: Sendable, Equatable {
    /// `OPERYN_HEADER_TIMEOUT_MS` (10000): the whole request head must arrive within this, counted from the
    /// connection's start or from the first byte of a following request (nginx's `client_header_timeout`).
    var headerTimeoutMilliseconds = 10_000
    /// `OPERYN_BODY_TIMEOUT_MS` (10000): the longest the gateway waits for the next bytes of a body it is reading
    /// (nginx's `client_body_timeout`); past it the client gets 408 and the connection closes.
    var bodyTimeoutMilliseconds = 10_000
    /// `OPERYN_KEEPALIVE_TIMEOUT_MS` (65000): how long an idle keep-alive connection stays open between requests
    /// (above the 60 s idle timeout of common load balancers, so the gateway is not the side that closes first).
    var keepAliveTimeoutMilliseconds = 65_000
    /// `OPERYN_MAX_CONNECTIONS` (the open-file limit less 256, at most 16384): connections open at once; past it a
    /// new connection gets 503 and is closed, and the established ones are served.
    var maxConnections = ConnectionSettings.defaultMaxConnections
    /// `OPERYN_LINGER_MS` (5000) and `OPERYN_LINGER_BYTES` (64 MiB): after answering a request before its body was
    /// read (413, 415, 401…), the rest of the body is read and discarded for at most this long and this much, so
    /// a client that writes its whole body before reading sees the answer (nginx's lingering close).
    var lingerMilliseconds = 5_000
    var lingerBytes = 64 << 20
    /// `OPERYN_LISTEN_BACKLOG` (4096, capped by the kernel's `net.core.somaxconn`): connections the kernel holds
    /// for the gateway to accept. Too short a queue drops the handshakes of a burst of new clients, which then wait
    /// one or more seconds for TCP to retry: the starved connections of a 2 000-client burst.
    var listenBacklog = 4_096

    init() {}

    init(_ reader: ConfigurationReader) throws(ConfigurationError) {
        let defaults = ConnectionSettings()
        headerTimeoutMilliseconds = try reader.integer(
            "OPERYN_HEADER_TIMEOUT_MS", default: defaults.headerTimeoutMilliseconds, in: 100...3_600_000,
            about: "the whole request head within this, else `408`; with the body timeout, a gRPC call's message within their sum")
        bodyTimeoutMilliseconds = try reader.integer(
            "OPERYN_BODY_TIMEOUT_MS", default: defaults.bodyTimeoutMilliseconds, in: 100...3_600_000,
            about: "the next bytes of a body within this, else `408`")
        keepAliveTimeoutMilliseconds = try reader.integer(
            "OPERYN_KEEPALIVE_TIMEOUT_MS", default: defaults.keepAliveTimeoutMilliseconds, in: 100...3_600_000,
            about: "idle keep-alive connections close after this")
        maxConnections = try reader.integer(
            "OPERYN_MAX_CONNECTIONS", default: defaults.maxConnections, in: 1...10_000_000, shown: "open-file limit − 256, at most 16384",
            about: "connections at once, HTTP and gRPC together; past it new HTTP ones get `503` and are closed, new gRPC ones are closed")
        lingerMilliseconds = try reader.integer(
            "OPERYN_LINGER_MS", default: defaults.lingerMilliseconds, in: 0...600_000,
            about: "after an early answer (`413`…), how long the rest of the body is read and dropped")
        lingerBytes = try reader.integer(
            "OPERYN_LINGER_BYTES", default: defaults.lingerBytes, in: 0...(1 << 34),
            about: "after an early answer, how many bytes of the rest of the body are read and dropped at most")
        listenBacklog = try reader.integer(
            "OPERYN_LISTEN_BACKLOG", default: defaults.listenBacklog, in: 1...65_535,
            about: "connections the kernel queues for the gateway to accept (capped by `net.core.somaxconn`)")
    }

    /// The soft open-file limit less 256 (for Redis, logs and the listener), between 64 and 16384.
    static var defaultMaxConnections: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1_024 }
        return Int(min(max(Int64(clamping: limit.rlim_cur) - 256, 64), 16_384))
    }
}
