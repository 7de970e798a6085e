import NIOCore
import NIOSSL
import Shared

/// Everything `operyn-gateway` is configured with; each field is an environment variable and an option.
struct GatewayConfiguration: Sendable {
    /// `OPERYN_HOST` (127.0.0.1): the address to bind.
    var host = "127.0.0.1"
    /// `OPERYN_PORT` (3001): the port to bind.
    var port = 3001
    /// `OPERYN_API_KEY` (unset): the server-wide API key; unset leaves the endpoints open. `OPERYN_API_KEY_FILE`
    /// names a file holding it instead (a mounted secret), and wins when both are set.
    var apiKey: String?
    /// `OPERYN_TLS_CERT_FILE` and `OPERYN_TLS_KEY_FILE` (unset: plain HTTP): the listener's certificate chain and
    /// private key, PEM; with both, the gateway serves HTTPS only.
    var tls: TLSConfiguration?
    /// The two files `tls` was read from, for the gRPC listener.
    var tlsFiles: (certificate: String, key: String)?
    /// `OPERYN_GRPC_PORT` (4317; 0 off): the port of OTLP over gRPC, on `OPERYN_HOST`, with TLS when the HTTP listener
    /// has a certificate.
    var grpcPort = 4317
    /// `OPERYN_GRPC_MAX_CONCURRENT_STREAMS` (100): the most streams (calls) one gRPC connection may have open at once.
    var grpcMaxConcurrentStreams = 100
    /// `OPERYN_REQUIRE_API_KEY` (false): refuse requests without a valid key even when `OPERYN_API_KEY` is unset
    /// (deployments with organization keys only). Always on when `OPERYN_API_KEY` is set.
    var requireAPIKey = false
    /// `OPERYN_ORG_KEYS` (true): accept organization keys (`opk_...`) kept in Redis by `operyn-admin keys`.
    var organizationKeys = true
    /// `OPERYN_API_KEY_CACHE_MS` (5000): how long a key lookup is reused; a revoked key stops working within this.
    var apiKeyCacheMilliseconds = 5_000
    /// `OPERYN_AUTH_FAILURE_LIMIT` (20): failed authentications per client per window before 429; `0` turns it off.
    var authFailureLimit = 20
    /// `OPERYN_AUTH_FAILURE_WINDOW_SECONDS` (60): the window those failures are counted in.
    var authFailureWindowSeconds = 60
    /// `OPERYN_TRUST_FORWARDED_FOR` (false): count failures against the first `x-forwarded-for` address (set it only
    /// behind a load balancer that sets the header).
    var trustForwardedFor = false
    /// `OPERYN_REDIS_URL` and the Redis timeouts.
    var redis = RedisConfiguration()
    /// `OPERYN_KEY_PREFIX` (operyn) and, in a cluster, `OPERYN_STREAM_PARTITIONS` (16).
    var keys = RedisKeys()
    /// `OPERYN_REDIS_WAIT_REPLICAS` (0): replicas that must hold an append before it is answered 202 (`WAIT`); with
    /// 0, a failover in the instant after a 202 can lose that request's events.
    var waitReplicas = 0
    /// `OPERYN_REDIS_WAIT_TIMEOUT_MS` (500): how long an append waits for those replicas before 503.
    var waitTimeoutMilliseconds = 500
    /// `OPERYN_QUEUE_COMPRESS_BYTES` (8192; 0 off): an entry whose event lines reach this many bytes is queued packed
    /// with zstd (format version 3), which every worker of this version reads.
    var queueCompressBytes = 8_192
    /// The `OPERYN_MAX_*` size limits.
    var limits = EventLimits()
    /// `OPERYN_BACKLOG_HIGH_WATER` (1 000 000): above about this many undelivered plus pending events, answer 503.
    var backlogHighWater = 1_000_000
    /// `OPERYN_BACKLOG_REFRESH_MS` (1000): how often the backlog reading is refreshed.
    var backlogRefreshMilliseconds = 1_000
    /// `OPERYN_RETRY_AFTER_SECONDS` (1): the `Retry-After` of 503 answers.
    var retryAfterSeconds = 1
    /// `OPERYN_DOCS_ASSETS_URL` (https://cdn.jsdelivr.net/npm): where Swagger UI and Scalar load their scripts and styles.
    var docsAssetsURL = "https://cdn.jsdelivr.net/npm"

    /// `OPERYN_RATE_EVENTS_PER_SECOND`, `OPERYN_RATE_EVENTS_BURST`, `OPERYN_RATE_BYTES_PER_SECOND`,
    /// `OPERYN_RATE_BYTES_BURST` (all 0: no limit): every organization's rate limit unless it has an override of its
    /// own (`operyn-admin orgs set-rate`); a burst of 0 is one second's worth.
    var rateLimit = RateLimit.none
    /// `OPERYN_RATE_LIMIT_CACHE_MS` (5000): how long an organization's limit is reused; an override reaches every
    /// gateway within this.
    var rateLimitCacheMilliseconds = 5_000
    /// `OPERYN_OVERFLOW_RATE_EVENTS` (25000; 0 off), as the workers read it: an organization this gateway alone sees
    /// at that rate over a quarter of a second overflows here at once, before the workers' decision reaches it.
    var overflowRateEvents = OverflowSettings().eventsPerSecond

    /// `OPERYN_IDEMPOTENCY_TTL_SECONDS` (86400): how long an `Idempotency-Key` is remembered: a retry within this gets
    /// the first answer again and writes nothing.
    var idempotencyTTLSeconds = 86_400
    /// `OPERYN_OTLP_RETRY_WINDOW_SECONDS` (300; 0 off): an OTLP export without an `Idempotency-Key` whose decoded body
    /// the same organization sent within this many seconds is answered from the first answer and stores nothing
    /// (exporters retry without keys).
    var otlpRetryWindowSeconds = 300

    /// `OPERYN_DEFAULT_SERVICE_LIMIT` (100): the service quota of organizations other than `default` without an
    /// override, as the workers apply it; `GET /usage` reports it.
    var defaultServiceLimit = 100

    /// `OPERYN_STARTUP_TIMEOUT_SECONDS` (30): how long Redis may stay unreachable at start before the gateway exits
    /// with code 3; 0 waits for ever (answering 503 meanwhile).
    var startupTimeoutSeconds = 30

    /// `OPERYN_EVENT_LOOPS` (the number of CPU cores): the event loops (threads) that serve HTTP; each has its
    /// own Redis connection and serves its requests start to finish.
    var eventLoops = System.coreCount

    /// `OPERYN_COALESCE` (true): requests of one organization and kind that an event loop reads in the same tick
    /// share one stream entry (each is still answered only once its events are in Redis).
    var coalesce = true

    /// The connection timeouts and cap (`OPERYN_HEADER_TIMEOUT_MS`, `OPERYN_MAX_CONNECTIONS`, …).
    var connections = ConnectionSettings()

    /// What `--help` says the program is.
    static let purpose = "operyn-gateway: takes events over HTTP and gRPC and appends them to Redis streams."

    /// How the gateway logs.
    var log = LogSettings()

    init() {}

    init(_ reader: ConfigurationReader) throws(ConfigurationError) {
        log = try LogSettings(reader)
        host = reader.string("OPERYN_HOST", default: host, about: "the address to listen on (HTTP and gRPC)")
        port = try reader.integer("OPERYN_PORT", default: port, in: 0...65_535, about: "the HTTP port")
        let keyFromFile = try reader.secretFile(
            "OPERYN_API_KEY_FILE", about: "a file holding the server-wide key instead of `OPERYN_API_KEY`; it wins over that variable")
        let key = reader.string(
            "OPERYN_API_KEY", unset: "unset: open",
            about: "the server-wide key (`x-api-key`); unset, with no organization keys required, the endpoints are open on every address "
                + "the gateway listens on, and a warning is logged")
        apiKey = keyFromFile ?? key.flatMap { $0.isEmpty ? nil : $0 }
        let certificateFile = reader.string(
            "OPERYN_TLS_CERT_FILE", unset: "unset: plain HTTP",
            about: "the listener's certificate chain, PEM: with the key, the gateway serves HTTPS (and gRPC over TLS) only; checked at start")
        let keyFile = reader.string("OPERYN_TLS_KEY_FILE", unset: "unset: plain HTTP", about: "the listener's private key, PEM")
        tls = try Self.listenerTLS(certificateFile: certificateFile, keyFile: keyFile)
        if tls != nil, let certificateFile, let keyFile { tlsFiles = (certificateFile, keyFile) }
        grpcPort = try reader.integer(
            "OPERYN_GRPC_PORT", default: grpcPort, in: 0...65_535,
            about: "OTLP over gRPC (logs and metrics `Export`, and `grpc.health.v1.Health`) on `OPERYN_HOST`; `0` turns it off")
        grpcMaxConcurrentStreams = try reader.integer(
            "OPERYN_GRPC_MAX_CONCURRENT_STREAMS", default: grpcMaxConcurrentStreams, in: 1...10_000, about: "calls one gRPC connection may have open at once")
        requireAPIKey = try reader.boolean(
            "OPERYN_REQUIRE_API_KEY", default: requireAPIKey, about: "require a key even without `OPERYN_API_KEY` (organization keys only)")
        organizationKeys = try reader.boolean(
            "OPERYN_ORG_KEYS", default: organizationKeys, about: "accept organization keys (`opk_…`, from `operyn-admin keys create`)")
        apiKeyCacheMilliseconds = try reader.integer(
            "OPERYN_API_KEY_CACHE_MS", default: apiKeyCacheMilliseconds, in: 0...300_000,
            about: "how long a key lookup is reused: a revoked key stops working within this")
        authFailureLimit = try reader.integer(
            "OPERYN_AUTH_FAILURE_LIMIT", default: authFailureLimit, in: 0...1_000_000,
            about: "failed authentications per client per window before `429`, even with no rate limits configured; `0` turns it off")
        authFailureWindowSeconds = try reader.integer(
            "OPERYN_AUTH_FAILURE_WINDOW_SECONDS", default: authFailureWindowSeconds, in: 1...86_400, about: "the window those failures are counted in")
        trustForwardedFor = try reader.boolean(
            "OPERYN_TRUST_FORWARDED_FOR", default: trustForwardedFor,
            about: "count those failures per first `X-Forwarded-For` address (only behind a proxy that sets it)")
        redis = try RedisConfiguration(reader)
        keys = try RedisKeys(reader, clustered: redis.isCluster)
        waitReplicas = try reader.integer(
            "OPERYN_REDIS_WAIT_REPLICAS", default: waitReplicas, in: 0...16,
            about: "replicas that must hold an append before `202` (`WAIT`); with `0` a failover just after a `202` can lose it")
        waitTimeoutMilliseconds = try reader.integer(
            "OPERYN_REDIS_WAIT_TIMEOUT_MS", default: waitTimeoutMilliseconds, in: 1...600_000, about: "how long to wait for those replicas before `503`")
        queueCompressBytes = try reader.integer(
            "OPERYN_QUEUE_COMPRESS_BYTES", default: queueCompressBytes, in: 0...(64 << 20),
            about: "a stream entry whose event lines reach this many bytes is queued packed with zstd (format `3`); `0` packs nothing; "
                + "workers of this version read both ([upgrading](operations.md#upgrading))")
        rateLimit = try RateLimit(reader)
        defaultServiceLimit = try ServiceLimit.deploymentDefault(reader)
        idempotencyTTLSeconds = try reader.integer(
            "OPERYN_IDEMPOTENCY_TTL_SECONDS", default: idempotencyTTLSeconds, in: 1...2_592_000,
            about: "how long an `Idempotency-Key` is remembered: a retry within this gets the first answer and writes nothing")
        otlpRetryWindowSeconds = try reader.integer(
            "OPERYN_OTLP_RETRY_WINDOW_SECONDS", default: otlpRetryWindowSeconds, in: 0...86_400,
            about: "an OTLP export (HTTP or gRPC) without an `Idempotency-Key` whose decoded body the organization sent within this many "
                + "seconds gets the first answer and stores nothing (exporters retry without keys); `0` turns it off")
        rateLimitCacheMilliseconds = try reader.integer(
            "OPERYN_RATE_LIMIT_CACHE_MS", default: rateLimitCacheMilliseconds, in: 0...3_600_000,
            about: "how long an organization's limit is reused: an override reaches every gateway within this")
        overflowRateEvents = try OverflowSettings.rate(reader)
        limits = try EventLimits(reader)
        backlogHighWater = try reader.integer(
            "OPERYN_BACKLOG_HIGH_WATER", default: backlogHighWater, in: 1...Int.max,
            about: "above about this many undelivered plus pending events, answer `503`")
        backlogRefreshMilliseconds = try reader.integer(
            "OPERYN_BACKLOG_REFRESH_MS", default: backlogRefreshMilliseconds, in: 10...600_000, about: "how often the backlog is read")
        retryAfterSeconds = try reader.integer(
            "OPERYN_RETRY_AFTER_SECONDS", default: retryAfterSeconds, in: 1...3_600, about: "the `Retry-After` of every `503`")
        docsAssetsURL = reader.string(
            "OPERYN_DOCS_ASSETS_URL", default: docsAssetsURL,
            about: "where `/api` and `/reference` load their scripts: a public CDN unless set (a browser opening them fetches from it)")
        connections = try ConnectionSettings(reader)
        startupTimeoutSeconds = try Startup.timeoutSeconds(reader)
        eventLoops = try reader.integer(
            "OPERYN_EVENT_LOOPS", default: eventLoops, in: 1...1_024, shown: "CPU cores",
            about: "event loops (threads) serving HTTP, each with its own Redis connection")
        coalesce = try reader.boolean(
            "OPERYN_COALESCE", default: coalesce,
            about: "requests of one organization and kind read in the same event-loop tick share one stream entry (each still answered only "
                + "once its events are in Redis)")
        while docsAssetsURL.hasSuffix("/") { docsAssetsURL.removeLast() }
    }

    /// The listener's TLS from its two files, both or neither; each file is read now, so a bad one is a
    /// configuration error at start.
    static func listenerTLS(certificateFile: String?, keyFile: String?) throws(ConfigurationError) -> TLSConfiguration? {
        guard certificateFile != nil || keyFile != nil else { return nil }
        guard let certificateFile, let keyFile else {
            throw ConfigurationError(message: "OPERYN_TLS_CERT_FILE and OPERYN_TLS_KEY_FILE must be set together")
        }
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificateFile)
        } catch {
            throw ConfigurationError(message: "OPERYN_TLS_CERT_FILE: cannot read a PEM certificate from \(certificateFile)")
        }
        guard !chain.isEmpty else { throw ConfigurationError(message: "OPERYN_TLS_CERT_FILE: \(certificateFile) holds no PEM certificate") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
        } catch {
            throw ConfigurationError(message: "OPERYN_TLS_KEY_FILE: cannot read a PEM private key from \(keyFile)")
        }
        let configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        do {
            _ = try NIOSSLContext(configuration: configuration)
        } catch {
            throw ConfigurationError(message: "OPERYN_TLS_CERT_FILE/OPERYN_TLS_KEY_FILE: the key does not go with the certificate (\(error))")
        }
        return configuration
    }
}
