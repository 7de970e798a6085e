import Foundation
import NIOCore
import NIOPosix
import Shared
import Testing

/// The two shapes of a `RedisClient`; client tests run on both.
public enum RedisTransportKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    /// One connection on one event loop (workers, admin).
    case oneLoop
    /// A connection on each loop of a group, commands from tasks served in turn (the gateway).
    case everyLoop

    public var testDescription: String { rawValue }

    /// A client on the loops of `group` (the process's shared ones by default).
    public func client(_ configuration: RedisConfiguration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) -> RedisClient {
        switch self {
        case .oneLoop: RedisClient(configuration: configuration, eventLoop: group.next())
        case .everyLoop: RedisClient(configuration: configuration, group: group)
        }
    }

    /// Loops of their own for tests that flood a client (10 000 commands at once): a debug build takes a good part of
    /// a second to decode that many replies, and on the shared loops the clients of tests running beside them would
    /// wait that long and time out.
    public static let floodLoops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
}

/// The Redis the test command starts (`OPERYN_TEST_REDIS_URL`), and a fresh key prefix per test.
public enum TestRedis {
    /// The command timeout of test clients unless a test measures timeouts: the parallel suites on a 2-core machine
    /// have stalled every Redis client of the process for a few seconds at once, and 2 s (the deployment's default)
    /// then fails tests about other things.
    public static let patientTimeout = 10_000
    /// The patient timeouts as a gateway's or worker's settings, for tests that start one as a process.
    public static let patientSettings = [
        "OPERYN_REDIS_COMMAND_TIMEOUT_MS": "\(patientTimeout)", "OPERYN_REDIS_CONNECT_TIMEOUT_MS": "\(patientTimeout)",
    ]

    public static var url: String {
        get throws {
            try #require(
                ProcessInfo.processInfo.environment["OPERYN_TEST_REDIS_URL"],
                "OPERYN_TEST_REDIS_URL is not set: run the tests with scripts/test.sh, which starts a Redis"
            )
        }
    }

    public static func client(
        _ transport: RedisTransportKind = .oneLoop, commandTimeout: Int = TestRedis.patientTimeout,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws -> RedisClient {
        try client(url: url, transport, commandTimeout: commandTimeout, group: group)
    }

    private static func client(url: String, _ transport: RedisTransportKind, commandTimeout: Int, group: any EventLoopGroup) throws -> RedisClient {
        transport.client(try configuration(url: url, commandTimeout: commandTimeout), group: group)
    }

    /// The configuration of `url` (the test Redis unless given) with the patient timeouts, or `commandTimeout`.
    /// Connecting waits as long as a command may: the parallel start has kept a connection unanswered past 1 s.
    public static func configuration(url: String? = nil, commandTimeout: Int = TestRedis.patientTimeout) throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: url ?? self.url)
        configuration.commandTimeoutMilliseconds = commandTimeout
        configuration.connectTimeoutMilliseconds = max(configuration.connectTimeoutMilliseconds, commandTimeout)
        return configuration
    }

    /// Waits (up to 10 s) until `redis` answers `PING` on every connection (eight in a row, taken in turn): a client
    /// with a short command timeout connects with its first command, which can take longer than that timeout on a
    /// machine busy with the parallel suites. Tests that set a short timeout for what they measure call this first.
    public static func connected(_ redis: RedisClient) async throws -> RedisClient {
        var answered = 0
        for _ in 0..<80 where answered < 8 {
            if (try? await redis.send(PING())) != nil {
                answered += 1
            } else {
                answered = 0
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        guard answered >= 8 else { throw TestSetupError("Redis did not answer PING on every connection within 10 s") }
        return redis
    }

    /// The Redis Cluster the test command starts (`OPERYN_TEST_REDIS_CLUSTER_URL`, `redis+cluster://…`).
    public static var clusterURL: String {
        get throws {
            try #require(
                ProcessInfo.processInfo.environment["OPERYN_TEST_REDIS_CLUSTER_URL"],
                "OPERYN_TEST_REDIS_CLUSTER_URL is not set: run the tests with scripts/test.sh, which starts a Redis Cluster"
            )
        }
    }

    /// A client on the test command's Redis Cluster.
    public static func clusterClient(
        _ transport: RedisTransportKind = .oneLoop, commandTimeout: Int = TestRedis.patientTimeout,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws -> RedisClient {
        try client(url: clusterURL, transport, commandTimeout: commandTimeout, group: group)
    }

    /// A prefix no other test uses.
    public static func prefix(_ name: String = #function) -> String {
        "test:\(name.prefix { $0 != "(" }):\(UUID().uuidString.prefix(8))"
    }
}

/// The test CA and certificates the test command makes (`OPERYN_TEST_TLS_DIR`, scripts/make-test-certs.sh) and the
/// TLS servers it starts.
public enum TestTLS {
    /// A file of the certificates' folder: `ca.pem`, `other-ca.pem`, `server.pem`, `server.key`, `client.pem`,
    /// `client.key`, `expired.pem`, `expired.key`.
    public static func file(_ name: String) throws -> String {
        try environment("OPERYN_TEST_TLS_DIR") + "/" + name
    }

    /// `rediss://localhost:<port>`: a TLS-only Redis whose certificate names localhost only.
    public static var redisURL: String { get throws { try environment("OPERYN_TEST_REDIS_TLS_URL") } }
    /// A TLS-only Redis that requires a client certificate (`tls-auth-clients yes`).
    public static var mutualRedisURL: String { get throws { try environment("OPERYN_TEST_REDIS_MTLS_URL") } }
    /// `rediss+cluster://…`: a TLS-only Redis Cluster (bus and replication on TLS too), whose nodes announce addresses.
    public static var clusterURL: String { get throws { try environment("OPERYN_TEST_REDIS_TLS_CLUSTER_URL") } }
    /// `postgres://operyn@localhost:<port>/postgres`: a PostgreSQL that takes TLS connections only.
    public static var postgresURL: String { get throws { try environment("OPERYN_TEST_POSTGRES_TLS_URL") } }

    /// A Redis configuration for `url` trusting the test CA (or `ca`), with a client certificate when asked, and the
    /// name to verify (localhost for the cluster's addresses).
    public static func redis(
        _ url: String, ca: String = "ca.pem", clientCertificate: Bool = false, serverName: String? = nil, commandTimeout: Int = TestRedis.patientTimeout
    ) throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: url)
        configuration.tls = try RedisTLS(
            caFile: try file(ca), certificateFile: clientCertificate ? try file("client.pem") : nil,
            keyFile: clientCertificate ? try file("client.key") : nil, serverName: serverName)
        configuration.commandTimeoutMilliseconds = commandTimeout
        return configuration
    }

    /// The environment a gateway, worker or admin needs for TLS to `url` with the test CA.
    public static func environment(redis url: String, serverName: String? = nil, clientCertificate: Bool = false) throws -> [String: String] {
        var environment = ["OPERYN_REDIS_URL": url, "OPERYN_REDIS_TLS_CA_FILE": try file("ca.pem")]
        if let serverName { environment["OPERYN_REDIS_TLS_SERVER_NAME"] = serverName }
        if clientCertificate {
            environment["OPERYN_REDIS_TLS_CERT_FILE"] = try file("client.pem")
            environment["OPERYN_REDIS_TLS_KEY_FILE"] = try file("client.key")
        }
        return environment
    }

    private static func environment(_ name: String) throws -> String {
        try #require(ProcessInfo.processInfo.environment[name], "\(name) is not set: run the tests with scripts/test.sh, which starts the TLS servers")
    }
}

/// A `redis-server` of a test's own, on a free port, that the test may stop, stall and restart.
public final class RedisServer: @unchecked Sendable {
    public let port: Int
    let directory: URL
    public private(set) var pid: pid_t?
    private var extraArguments: [String]

    /// Whether the server listens for TLS only (its `port` is the TLS port).
    public let tls: Bool

    public init(arguments: [String] = []) async throws {
        port = try Self.freePort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("operyn-redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        extraArguments = arguments
        tls = false
        try await start()
    }

    /// A server that takes TLS only, with the certificate `certificate` (a name of `TestTLS`'s folder: `server`,
    /// `expired`) and, with `clientCertificates`, requiring client certificates signed by the test CA.
    public init(tlsCertificate certificate: String, clientCertificates: Bool = false, arguments: [String] = []) async throws {
        port = try Self.freePort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("operyn-redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        extraArguments =
            [
                "--tls-port", "\(port)", "--tls-cert-file", try TestTLS.file("\(certificate).pem"), "--tls-key-file",
                try TestTLS.file("\(certificate).key"), "--tls-ca-cert-file", try TestTLS.file("ca.pem"), "--tls-auth-clients",
                clientCertificates ? "yes" : "no",
            ] + arguments
        tls = true
        try await start()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    public var url: String { tls ? "rediss://localhost:\(port)" : "redis://127.0.0.1:\(port)" }

    /// Starts the server and waits (without holding a thread of the test's task pool) until it accepts connections.
    public func start() async throws {
        let arguments =
            [
                try Self.redisServerPath(), "--port", tls ? "0" : "\(port)", "--bind", "127.0.0.1", "--dir", directory.path, "--save", "", "--appendonly",
                "yes",
                "--daemonize", "no", "--loglevel", "warning", "--logfile", directory.appendingPathComponent("redis.log").path,
            ] + extraArguments
        let pid = try ChildProcess.spawn(arguments)
        self.pid = pid
        let deadline = NIODeadline.now() + .milliseconds(Int64(10_000))
        while NIODeadline.now() < deadline {
            if Self.accepts(port: port) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw RedisError(code: .connectionFailed, message: "test redis-server did not start on \(port)")
    }

    /// Stops a TLS server and starts it again on its port and files, with the certificate `certificate` (an
    /// operator renewing it, or a wrong one deployed).
    public func restart(tlsCertificate certificate: String) async throws {
        precondition(tls, "a TLS server")
        stop()
        for (index, argument) in extraArguments.enumerated() where argument == "--tls-cert-file" || argument == "--tls-key-file" {
            extraArguments[index + 1] = try TestTLS.file("\(certificate).\(argument == "--tls-cert-file" ? "pem" : "key")")
        }
        try await start()
    }

    /// Stops the server (SIGCONT first, in case it was stalled) and reaps it.
    public func stop() {
        guard let pid else { return }
        kill(pid, SIGCONT)
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        self.pid = nil
    }

    /// Kills the server with SIGKILL (no shutdown, no final fsync) and reaps it; `start()` brings it back from its AOF.
    public func crash() {
        guard let pid else { return }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        self.pid = nil
    }

    public func signal(_ number: Int32) {
        if let pid { kill(pid, number) }
    }

    public static func redisServerPath() throws -> String {
        for path in ["/usr/bin/redis-server", "/usr/local/bin/redis-server"] where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        throw RedisError(code: .connectionFailed, message: "redis-server is not installed")
    }

    public static func accepts(port: Int) -> Bool {
        guard let descriptor = connectLoopback(port: port) else { return false }
        close(descriptor)
        return true
    }

    /// A TCP connection to 127.0.0.1:`port`, or `nil`; the caller closes it.
    public static func connectLoopback(port: Int) -> Int32? {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        if connected { return descriptor }
        close(descriptor)
        return nil
    }

    public static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
            }
        }
        guard bound else { throw RedisError(code: .connectionFailed, message: "no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Elapsed wall time of `body`, in milliseconds.
public func milliseconds(_ body: () async throws -> Void) async rethrows -> Int {
    let start = NIODeadline.now()
    try await body()
    return Int((NIODeadline.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1_000_000)
}

extension Array where Element == UInt8 {
    /// The UTF-8 bytes of `text`.
    public init(_ text: String) { self = Array(text.utf8) }
}

/// Starting child processes from tests.
public enum ChildProcess {
    /// Starts `arguments[0]` with the rest as its arguments and `environment` added to this process's;
    /// standard output goes to `output` when given, and standard error too unless `errors` names a file of its own.
    /// Returns the pid.
    public static func spawn(_ arguments: [String], environment: [String: String] = [:], output: String? = nil, errors: String? = nil) throws -> pid_t {
        var argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var merged = ProcessInfo.processInfo.environment
        // Tests run side by side and 4317 is one port: a gateway a test starts has no gRPC listener unless the test
        // gives it a port of its own.
        if arguments.first?.hasSuffix("/operyn-gateway") == true, merged["OPERYN_GRPC_PORT"] == nil { merged["OPERYN_GRPC_PORT"] = "0" }
        for (name, value) in environment { merged[name] = value }
        var envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        // The test process blocks signals on its threads; the child must not inherit that mask,
        // or it would never see SIGTERM.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let output {
            posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            if errors == nil { posix_spawn_file_actions_adddup2(&actions, 1, 2) }
        }
        if let errors { posix_spawn_file_actions_addopen(&actions, 2, errors, O_WRONLY | O_CREAT | O_APPEND, 0o644) }
        var pid: pid_t = 0
        guard posix_spawn(&pid, arguments[0], &actions, &attributes, &argv, &envp) == 0 else {
            throw RedisError(code: .connectionFailed, message: "could not start \(arguments[0])")
        }
        return pid
    }

    /// Waits for `pid` to exit; returns its exit status, or 128 + the signal that ended it.
    @discardableResult
    public static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        if status & 0x7F == 0 { return (status >> 8) & 0xFF }
        return 128 + (status & 0x7F)
    }

    /// Waits for `pid` to exit as `wait(_:)` does, polling every 20 ms instead of blocking: a test's task pool has
    /// as many threads as cores, and a blocked one stalls every test running beside it (initdb and pg_ctl take
    /// seconds).
    @discardableResult
    public static func exited(_ pid: pid_t) async -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if status & 0x7F == 0 { return (status >> 8) & 0xFF }
        return 128 + (status & 0x7F)
    }

    /// The folder holding the package's built executables (`OPERYN_TEST_BIN_DIR`, or `.build/debug`).
    public static func binDirectory(file: String = #filePath) -> String {
        if let directory = ProcessInfo.processInfo.environment["OPERYN_TEST_BIN_DIR"] { return directory }
        var root = URL(fileURLWithPath: file)
        while root.path != "/" && !FileManager.default.fileExists(atPath: root.appendingPathComponent("Package.swift").path) {
            root.deleteLastPathComponent()
        }
        return root.appendingPathComponent(".build/debug").path
    }
}

/// A PostgreSQL cluster of a test's own, on a free port, that the test may stop and start again.
/// As root it runs as the `postgres` user (PostgreSQL refuses root), like the test command's cluster.
public final class PostgresServer: @unchecked Sendable {
    public let port: Int
    let directory: String
    let binaries: String

    public init() async throws {
        port = try RedisServer.freePort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("operyn-pg-\(UUID().uuidString)").path
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        guard let newest = versions.sorted(by: { $0.compare($1, options: .numeric) == .orderedAscending }).last else {
            throw RedisError(code: .connectionFailed, message: "PostgreSQL is not installed")
        }
        binaries = "/usr/lib/postgresql/\(newest)/bin"
        try FileManager.default.createDirectory(atPath: directory + "/data", withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: directory)
        if getuid() == 0 { try await run(["/bin/chown", "-R", "postgres", directory], asPostgres: false) }
        try await run([binaries + "/initdb", "-D", directory + "/data", "-A", "trust", "-U", "operyn"])
        try await start()
    }

    deinit {
        // The postmaster's immediate shutdown (SIGQUIT), without waiting for pg_ctl: a deinit cannot await, and a
        // blocked thread of the task pool stalls every test beside it.
        if let pidFile = try? String(contentsOfFile: directory + "/data/postmaster.pid", encoding: .utf8),
            let line = pidFile.split(separator: "\n").first, let pid = pid_t(line)
        {
            kill(pid, SIGQUIT)
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// `postgres://operyn@127.0.0.1:<port>/postgres`.
    public var url: String { "postgres://operyn@127.0.0.1:\(port)/postgres" }

    public func start() async throws {
        try await run([
            binaries + "/pg_ctl", "-D", directory + "/data", "-w", "-l", directory + "/postgres.log",
            "-o", "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off", "start",
        ])
    }

    public func stop() async throws {
        try await run([binaries + "/pg_ctl", "-D", directory + "/data", "-w", "-m", "fast", "stop"])
    }

    private func run(_ arguments: [String], asPostgres: Bool = true) async throws {
        let command = asPostgres && getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--"] + arguments : arguments
        let pid = try ChildProcess.spawn(command, output: directory + "/commands.log")
        guard await ChildProcess.exited(pid) == 0 else {
            throw RedisError(code: .connectionFailed, message: "\(arguments[0]) failed; see \(directory)/commands.log")
        }
    }
}
