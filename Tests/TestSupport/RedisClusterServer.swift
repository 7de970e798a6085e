import Foundation
import NIOCore
import Shared

/// A Redis Cluster of a test's own: 6 `redis-server`s on free loopback ports (3 masters, each with a replica; AOF on,
/// node timeout 2 s), made with `redis-cli --cluster create`. The test may kill, stall, restart and reshard it.
public final class RedisClusterServer: @unchecked Sendable {
    /// A node: its port and its cluster bus port.
    public struct Node: Sendable {
        public let port: Int
        let busPort: Int
    }

    public let nodes: [Node]
    let directory: URL
    private var pids: [Int: pid_t] = [:]

    public init() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("operyn-cluster-\(UUID().uuidString)")
        var nodes: [Node] = []
        var taken = Set<Int>()
        while nodes.count < 6 {
            let port = try RedisServer.freePort()
            let busPort = try RedisServer.freePort()
            guard port != busPort, taken.insert(port).inserted, taken.insert(busPort).inserted else { continue }
            nodes.append(Node(port: port, busPort: busPort))
        }
        self.nodes = nodes
        for node in nodes {
            try FileManager.default.createDirectory(at: directory.appendingPathComponent("\(node.port)"), withIntermediateDirectories: true)
            try await start(port: node.port)
        }
        let create = try ChildProcess.spawn(
            ["/usr/bin/redis-cli", "--cluster", "create"] + nodes.map { "127.0.0.1:\($0.port)" } + ["--cluster-replicas", "1", "--cluster-yes"],
            output: directory.appendingPathComponent("create.log").path)
        guard await ChildProcess.exited(create) == 0 else { throw TestSetupError("redis-cli --cluster create failed: see \(directory.path)/create.log") }
        try await waitUntilHealthy(seconds: 30)
    }

    deinit {
        for pid in pids.values {
            kill(pid, SIGCONT)
            kill(pid, SIGKILL)
            waitpid(pid, nil, 0)
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// `redis+cluster://` with two seeds.
    public var url: String { "redis+cluster://127.0.0.1:\(nodes[0].port),127.0.0.1:\(nodes[1].port)" }

    /// Starts (or restarts, from its AOF and `nodes.conf`) the node on `port`.
    public func start(port: Int) async throws {
        let node = nodes.first { $0.port == port }!
        let folder = directory.appendingPathComponent("\(port)").path
        pids[port] = try ChildProcess.spawn([
            try RedisServer.redisServerPath(), "--port", "\(port)", "--cluster-port", "\(node.busPort)", "--bind", "127.0.0.1", "--dir", folder,
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000", "--appendonly", "yes", "--save", "",
            "--maxmemory-policy", "noeviction", "--daemonize", "no", "--loglevel", "warning", "--logfile", "\(folder)/redis.log",
        ])
        let deadline = NIODeadline.now() + .seconds(10)
        while !RedisServer.accepts(port: port) {
            guard NIODeadline.now() < deadline else { throw TestSetupError("redis-server did not start on \(port)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Kills the node on `port` with SIGKILL (no shutdown, no final fsync) and reaps it.
    public func crash(port: Int) {
        guard let pid = pids.removeValue(forKey: port) else { return }
        kill(pid, SIGKILL)
        waitpid(pid, nil, 0)
    }

    /// Sends `signal` to the node on `port` (SIGSTOP stalls it, SIGCONT resumes it).
    public func signal(_ signal: Int32, port: Int) {
        if let pid = pids[port] { kill(pid, signal) }
    }

    /// Runs `redis-cli` with `arguments` against the node on `port`; answers its output.
    @discardableResult
    public func cli(_ arguments: [String], port: Int? = nil) async throws -> String {
        let output = directory.appendingPathComponent("cli-\(UUID().uuidString).out").path
        let pid = try ChildProcess.spawn(["/usr/bin/redis-cli", "-p", "\(port ?? livePort())"] + arguments, output: output)
        let status = await ChildProcess.exited(pid)
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard status == 0 else { throw TestSetupError("redis-cli \(arguments.joined(separator: " ")) exited \(status): \(text.suffix(500))") }
        return text
    }

    /// A node that is running and not stalled, for asking the cluster.
    private func livePort() -> Int { nodes.first { pids[$0.port] != nil }!.port }

    /// The ports of the masters serving slots now, and each one's node id, from `CLUSTER NODES`.
    public func masters() async throws -> [(port: Int, id: String)] {
        try await cli(["cluster", "nodes"]).split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count >= 9, fields[2].contains("master"), !fields[2].contains("fail"),
                let port = fields[1].split(separator: "@").first?.split(separator: ":").last.flatMap({ Int($0) })
            else { return nil }
            return (port, String(fields[0]))
        }
    }

    /// Waits until `redis-cli --cluster check` passes: every node agrees on the map (after a reshard, gossip takes a
    /// moment), every slot served, none open.
    public func waitUntilAgreed(seconds: Int) async throws {
        let deadline = NIODeadline.now() + .seconds(Int64(seconds))
        while true {
            do {
                try await cli(["--cluster", "check", "127.0.0.1:\(livePort())"])
                return
            } catch {
                guard NIODeadline.now() < deadline else { throw error }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Waits until the cluster says every slot is served and there are 3 masters, each with a replica linked and in
    /// sync.
    public func waitUntilHealthy(seconds: Int) async throws {
        let deadline = NIODeadline.now() + .seconds(Int64(seconds))
        while true {
            let info = (try? await cli(["cluster", "info"])) ?? ""
            let nodes = (try? await cli(["cluster", "nodes"])) ?? ""
            let lines = nodes.split(separator: "\n")
            let linkedReplicas = lines.filter { $0.contains("slave") && !$0.contains("fail") && $0.contains("connected") }.count
            // And each master's replica has its copy (replication online, not still syncing): `WAIT 1` needs it.
            let masters = (try? await self.masters()) ?? []
            var online: [Int] = []
            for master in masters where ((try? await cli(["info", "replication"], port: master.port)) ?? "").contains("state=online") {
                online.append(master.port)
            }
            if info.contains("cluster_state:ok") && linkedReplicas == 3 && masters.count == 3 && online.count == 3 { return }
            guard NIODeadline.now() < deadline else { throw TestSetupError("the test cluster is not healthy after \(seconds) s:\n\(info)\n\(nodes)") }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}
