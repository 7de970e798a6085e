import Foundation
import Shared
import TestSupport
import Testing

/// The gateways and workers of one end-to-end test, run from the built executables as child processes on the test
/// command's Redis under a key prefix of their own, storing into SQLite or PostgreSQL.
final class Cluster: @unchecked Sendable {
    /// The server-wide key, the one the spec's examples send.
    static let serverKey = "your-api-key"

    let prefix: String
    let directory: String
    let databaseURL: String
    let redisURL: String
    private(set) var gatewayPorts: [Int] = []
    private var processes: [(name: String, pid: pid_t)] = []
    private var gatewaySettings: [Int: [String: String]] = [:]
    private var workerSettings: [String: [String: String]] = [:]
    /// Settings each kind of process gets besides the cluster's own (`gateway`, `worker`, `admin`): TLS files, a Redis
    /// user of its role.
    var roleSettings: [String: [String: String]] = [:]
    /// How the test's own clients reach Redis; `redisURL` as it is when `nil`.
    var testRedisConfiguration: RedisConfiguration?

    var keys: RedisKeys { RedisKeys(prefix: prefix, clustered: redisURL.contains("+cluster://")) }

    /// A cluster on `redisURL` (the test command's Redis when `nil`) storing into `databaseURL`, or into a SQLite
    /// file of its own when `nil`, under `prefix` (a fresh one when `nil`).
    init(redisURL: String? = nil, databaseURL: String? = nil, prefix: String? = nil) throws {
        self.prefix = prefix ?? TestRedis.prefix("e2e")
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("operyn-e2e-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.databaseURL = databaseURL ?? "sqlite:\(directory)/operyn.sqlite"
        self.redisURL = try redisURL ?? TestRedis.url
    }

    /// Where a cluster stores events.
    enum Store: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case sqlite, postgres
        var testDescription: String { rawValue }

        /// The store of the full fault suite's runs: `OPERYN_FAULT_SINK` (`sqlite`, the default, or `postgres`);
        /// `scripts/fault-suite.sh` runs the suite once with each.
        static var forFaults: Store { Store(rawValue: ProcessInfo.processInfo.environment["OPERYN_FAULT_SINK"] ?? "") ?? .sqlite }
    }

    /// A cluster on `redisURL` storing into a fresh database of `store` (a SQLite file of its own, or a new database on
    /// the test command's PostgreSQL).
    convenience init(store: Store, redisURL: String? = nil) async throws {
        try self.init(redisURL: redisURL, databaseURL: store == .postgres ? try await PostgresTestDatabase.create() : nil)
    }

    /// A client on the cluster's Redis; the caller shuts it down.
    func redis() throws -> RedisClient { RedisClient(configuration: try testRedisConfiguration ?? RedisConfiguration(url: redisURL)) }

    var sqlitePath: String? { databaseURL.hasPrefix("sqlite:") ? String(databaseURL.dropFirst("sqlite:".count)) : nil }

    /// Starts a gateway on a free port and waits until it listens; answers the port. Started again on a port it ran on
    /// before, it has the same settings unless `environment` gives others.
    @discardableResult
    func startGateway(_ environment: [String: String] = [:], port existingPort: Int? = nil) async throws -> Int {
        let port = try existingPort ?? RedisServer.freePort()
        var settings = [
            "OPERYN_REDIS_URL": redisURL, "OPERYN_KEY_PREFIX": prefix, "OPERYN_PORT": "\(port)", "OPERYN_API_KEY": Self.serverKey,
            "OPERYN_API_KEY_CACHE_MS": "300", "OPERYN_BACKLOG_REFRESH_MS": "100",
        ]
        settings.merge(roleSettings["gateway"] ?? [:]) { $1 }
        let chosen = environment.isEmpty ? gatewaySettings[port] ?? [:] : environment
        settings.merge(chosen) { $1 }
        gatewaySettings[port] = chosen
        let pid = try ChildProcess.spawn(
            [ChildProcess.binDirectory() + "/operyn-gateway"], environment: settings, output: "\(directory)/gateway-\(port).log")
        processes.append(("gateway-\(port)", pid))
        for _ in 0..<300 where !RedisServer.accepts(port: port) { try await Task.sleep(for: .milliseconds(50)) }
        guard RedisServer.accepts(port: port) else { throw TestSetupError("gateway on \(port) did not start: \(log("gateway-\(port)"))") }
        if !gatewayPorts.contains(port) { gatewayPorts.append(port) }
        return port
    }

    /// Starts a worker named `name` (again, with the same settings unless `environment` gives others, when it ran
    /// before).
    func startWorker(_ name: String, _ environment: [String: String] = [:]) throws {
        var settings = [
            "OPERYN_REDIS_URL": redisURL, "OPERYN_KEY_PREFIX": prefix, "OPERYN_DATABASE_URL": databaseURL, "OPERYN_METRICS_PORT": "0",
            "OPERYN_CONSUMER_NAME": name, "OPERYN_BLOCK_MS": "100", "OPERYN_CLAIM_IDLE_MS": "2000",
        ]
        settings.merge(roleSettings["worker"] ?? [:]) { $1 }
        let chosen = environment.isEmpty ? workerSettings[name] ?? [:] : environment
        settings.merge(chosen) { $1 }
        workerSettings[name] = chosen
        let pid = try ChildProcess.spawn([ChildProcess.binDirectory() + "/operyn-worker"], environment: settings, output: "\(directory)/\(name).log")
        processes.append((name, pid))
    }

    /// Sends `signal` to the process called `name` (`w1`, `gateway-<port>`); for SIGKILL and SIGTERM waits for it
    /// and answers its exit status.
    @discardableResult
    func signal(_ name: String, _ signal: Int32) -> Int32? {
        guard let index = processes.firstIndex(where: { $0.name == name }) else { return nil }
        let pid = processes[index].pid
        kill(pid, signal)
        guard signal == SIGKILL || signal == SIGTERM else { return nil }
        processes.remove(at: index)
        return ChildProcess.wait(pid)
    }

    /// The pid of the process called `name`.
    func pid(_ name: String) -> pid_t? { processes.first { $0.name == name }?.pid }

    /// The names of the processes running.
    var running: [String] { processes.map(\.name) }

    /// The log of a process, for failure messages.
    func log(_ name: String) -> String { (try? String(contentsOfFile: "\(directory)/\(name).log", encoding: .utf8)) ?? "" }

    /// Runs `operyn-admin` with `arguments` on this cluster's Redis and prefix; answers its exit status and standard output.
    func admin(_ arguments: String...) throws -> (status: Int32, output: String) {
        let output = "\(directory)/admin-\(UUID().uuidString).out"
        let pid = try ChildProcess.spawn(
            [ChildProcess.binDirectory() + "/operyn-admin"] + arguments, environment: adminSettings, output: output, errors: output + ".err")
        let status = ChildProcess.wait(pid)
        return (status, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }

    /// The environment of `operyn-admin` on this cluster.
    private var adminSettings: [String: String] {
        ["OPERYN_REDIS_URL": redisURL, "OPERYN_KEY_PREFIX": prefix].merging(roleSettings["admin"] ?? [:]) { $1 }
    }

    /// `operyn-admin ... --json`, parsed.
    func adminJSON(_ arguments: String...) throws -> JSONValue {
        let output = "\(directory)/admin-\(UUID().uuidString).out"
        let pid = try ChildProcess.spawn(
            [ChildProcess.binDirectory() + "/operyn-admin"] + arguments + ["--json"], environment: adminSettings, output: output,
            errors: output + ".err")
        guard ChildProcess.wait(pid) == 0 else {
            throw TestSetupError("operyn-admin \(arguments) failed: \(try String(contentsOfFile: output + ".err", encoding: .utf8))")
        }
        return try JSONParser.parse(Array(try String(contentsOfFile: output, encoding: .utf8).utf8))
    }

    /// Runs a shell command line (a curl example as written, with `-w` appended) and answers the HTTP status and body.
    func shell(_ command: String) throws -> (status: Int, body: String) {
        let body = "\(directory)/curl-\(UUID().uuidString).body"
        let output = body + ".out"
        let pid = try ChildProcess.spawn(["/bin/sh", "-c", command + " -sS -o '\(body)' -w '%{http_code}'"], output: output)
        _ = ChildProcess.wait(pid)
        let status = Int((try? String(contentsOfFile: output, encoding: .utf8)) ?? "") ?? 0
        return (status, (try? String(contentsOfFile: body, encoding: .utf8)) ?? "")
    }

    /// POSTs `json` to `path` on the gateway at `port` with curl; answers the status and body.
    func post(port: Int, _ path: String, _ json: String, headers: [String: String]) throws -> (status: Int, body: String) {
        let file = "\(directory)/request-\(UUID().uuidString).json"
        try json.write(toFile: file, atomically: true, encoding: .utf8)
        var command = "curl -X POST http://127.0.0.1:\(port)\(path) -H 'Content-Type: application/json' --data-binary @'\(file)'"
        for (name, value) in headers { command += " -H '\(name): \(value)'" }
        return try shell(command)
    }

    /// GETs `path` with curl; answers the status and body.
    func get(port: Int, _ path: String, headers: [String: String]) throws -> (status: Int, body: String) {
        var command = "curl http://127.0.0.1:\(port)\(path)"
        for (name, value) in headers { command += " -H '\(name): \(value)'" }
        return try shell(command)
    }

    /// Rows of `sql` in the cluster's database, every column as text.
    func query(_ sql: String) async throws -> [[String?]] {
        if let sqlitePath { return try sqliteQuery(path: sqlitePath, sql) }
        return try await PostgresTestDatabase.query(url: databaseURL, sql)
    }

    /// Waits up to 30 s for `count` rows of `sql`; expects that many, and answers what it found.
    func rows(count: Int, _ sql: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> [[String?]] {
        var rows: [[String?]] = []
        for _ in 0..<300 {
            rows = (try? await query(sql)) ?? []
            if rows.count >= count { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(rows.count == count, "\(rows)", sourceLocation: sourceLocation)
        return rows
    }

    /// Restarts a gateway that was stopped, on its port and with its settings.
    func restartGateway(port: Int) async throws { _ = try await startGateway(port: port) }

    /// Sends SIGTERM to every process and answers their exit statuses by name.
    func stop() -> [String: Int32] {
        var statuses: [String: Int32] = [:]
        for process in processes { kill(process.pid, SIGTERM) }
        for process in processes { statuses[process.name] = ChildProcess.wait(process.pid) }
        processes.removeAll()
        return statuses
    }

    /// Stops what still runs and removes the folder (kept when `keep`, for a failed test's logs).
    func tearDown(keep: Bool = false) {
        for process in processes { kill(process.pid, SIGKILL) }
        for process in processes { ChildProcess.wait(process.pid) }
        processes.removeAll()
        if !keep { try? FileManager.default.removeItem(atPath: directory) }
    }
}

extension JSONValue {
    /// The text of a string or number member.
    var text: String? {
        switch self {
        case .string(let text), .number(let text): text
        default: nil
        }
    }

    /// The elements of an array.
    var elements: [JSONValue] {
        if case .array(let elements) = self { return elements }
        return []
    }
}
