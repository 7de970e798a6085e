import Foundation
import Shared
import TestSupport

/// The gateways and workers of one end-to-end test, run from the built executables as child processes on the test
/// command's Redis under a key prefix of their own, storing into SQLite or PostgreSQL.
final class Cluster: @unchecked Sendable {
    /// The server-wide key, the one the spec's examples send.
    static let serverKey = "your-api-key"

    let prefix = TestRedis.prefix("e2e")
    let directory: String
    let databaseURL: String
    private(set) var gatewayPorts: [Int] = []
    private var processes: [(name: String, pid: pid_t)] = []

    var keys: RedisKeys { RedisKeys(prefix: prefix) }

    /// A cluster storing into `databaseURL`, or into a SQLite file of its own when `nil`.
    init(databaseURL: String? = nil) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("operyn-e2e-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.databaseURL = databaseURL ?? "sqlite:\(directory)/operyn.sqlite"
    }

    var sqlitePath: String? { databaseURL.hasPrefix("sqlite:") ? String(databaseURL.dropFirst("sqlite:".count)) : nil }

    /// Starts a gateway on a free port and waits until it listens; answers the port.
    @discardableResult
    func startGateway(_ environment: [String: String] = [:]) async throws -> Int {
        let port = try RedisServer.freePort()
        var settings = [
            "OPERYN_REDIS_URL": try TestRedis.url, "OPERYN_KEY_PREFIX": prefix, "OPERYN_PORT": "\(port)", "OPERYN_API_KEY": Self.serverKey,
            "OPERYN_API_KEY_CACHE_MS": "300", "OPERYN_BACKLOG_REFRESH_MS": "100",
        ]
        settings.merge(environment) { $1 }
        let pid = try ChildProcess.spawn(
            [ChildProcess.binDirectory() + "/operyn-gateway"], environment: settings, output: "\(directory)/gateway-\(port).log")
        processes.append(("gateway-\(port)", pid))
        for _ in 0..<300 where !RedisServer.accepts(port: port) { try await Task.sleep(for: .milliseconds(50)) }
        guard RedisServer.accepts(port: port) else { throw TestSetupError("gateway on \(port) did not start: \(log("gateway-\(port)"))") }
        gatewayPorts.append(port)
        return port
    }

    /// Starts a worker named `name`.
    func startWorker(_ name: String) throws {
        let pid = try ChildProcess.spawn(
            [ChildProcess.binDirectory() + "/operyn-worker"],
            environment: [
                "OPERYN_REDIS_URL": try TestRedis.url, "OPERYN_KEY_PREFIX": prefix, "OPERYN_DATABASE_URL": databaseURL, "OPERYN_METRICS_PORT": "0",
                "OPERYN_CONSUMER_NAME": name, "OPERYN_BLOCK_MS": "100",
            ],
            output: "\(directory)/\(name).log")
        processes.append((name, pid))
    }

    /// The log of a process, for failure messages.
    func log(_ name: String) -> String { (try? String(contentsOfFile: "\(directory)/\(name).log", encoding: .utf8)) ?? "" }

    /// Runs `operyn-admin` with `arguments` on this cluster's Redis and prefix; answers its exit status and standard output.
    func admin(_ arguments: String...) throws -> (status: Int32, output: String) {
        let output = "\(directory)/admin-\(UUID().uuidString).out"
        let pid = try ChildProcess.spawn(
            [ChildProcess.binDirectory() + "/operyn-admin"] + arguments,
            environment: ["OPERYN_REDIS_URL": try TestRedis.url, "OPERYN_KEY_PREFIX": prefix], output: output, errors: output + ".err")
        let status = ChildProcess.wait(pid)
        return (status, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }

    /// `operyn-admin ... --json`, parsed.
    func adminJSON(_ arguments: String...) throws -> JSONValue {
        let output = "\(directory)/admin-\(UUID().uuidString).out"
        let pid = try ChildProcess.spawn(
            [ChildProcess.binDirectory() + "/operyn-admin"] + arguments + ["--json"],
            environment: ["OPERYN_REDIS_URL": try TestRedis.url, "OPERYN_KEY_PREFIX": prefix], output: output, errors: output + ".err")
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

    /// Rows of `sql` in the cluster's database, every column as text.
    func query(_ sql: String) async throws -> [[String?]] {
        if let sqlitePath { return try sqliteQuery(path: sqlitePath, sql) }
        return try await PostgresTestDatabase.query(url: databaseURL, sql)
    }

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
