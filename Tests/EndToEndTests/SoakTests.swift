import Foundation
import NIOCore
import Shared
import TestSupport
import Testing

/// Ten minutes (`OPERYN_SOAK_SECONDS`) of mixed single and batch traffic from four organizations over two gateways
/// and two workers, with one fault injected every minute; the ledger must be clean, and p99 latency and resident
/// memory of every process are reported at the start and at the end.
@Suite("Soak with a fault every minute", .enabled(if: fullFaultSuite))
struct SoakTests {
    enum Fault: CaseIterable {
        case killWorker, killGateway, restartRedis, stallRedis, lockSQLite, terminateWorker
    }

    @Test func soakWithAFaultEveryMinute() async throws {
        let seconds = Int(ProcessInfo.processInfo.environment["OPERYN_SOAK_SECONDS"] ?? "") ?? 600
        let server = try await RedisServer(arguments: ["--appendfsync", "always"])
        let cluster = try await Cluster(store: .forFaults, redisURL: server.url)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let ports = [
            try await cluster.startGateway(["OPERYN_REDIS_COMMAND_TIMEOUT_MS": "1000"]),
            try await cluster.startGateway(["OPERYN_REDIS_COMMAND_TIMEOUT_MS": "1000"]),
        ]
        for name in ["w1", "w2"] { try cluster.startWorker(name) }
        let ledger = Ledger()
        let load = LoadGenerator(ledger: ledger, ports: ports, apiKey: Cluster.serverKey)
        var startFigures = ""
        var endFigures = ""
        var startMemory: [String: Double] = [:]
        var endMemory: [String: Double] = [:]
        var injected: [String] = []

        func memory() -> [String: Double] {
            var figures: [String: Double] = [:]
            for name in cluster.running { if let pid = cluster.pid(name) { figures[name] = residentMegabytes(pid) } }
            return figures
        }

        try await underLoad(load) {
            let started = NIODeadline.now()
            func elapsed() -> Int { Int((NIODeadline.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1_000_000_000) }
            try await Task.sleep(for: .seconds(5))
            _ = load.takeLatencies()  // warm-up excluded
            try await Task.sleep(for: .seconds(20))
            startMemory = memory()
            let start = load.takeLatencies()
            startFigures = "p99 \(start.p99) ms, p50 \(start.p50) ms"
            var minute = 0
            while elapsed() + 60 <= seconds {
                // Faults at 30 s past each minute, leaving the last 30 s quiet for the end figures.
                try await Task.sleep(for: .seconds(max(0, 30 + minute * 60 - elapsed())))
                let fault = Fault.allCases[minute % Fault.allCases.count]
                injected.append("\(elapsed())s \(fault)")
                switch fault {
                case .killWorker:
                    cluster.signal("w1", SIGKILL)
                    try await Task.sleep(for: .seconds(2))
                    try cluster.startWorker("w1")
                case .killGateway:
                    cluster.signal("gateway-\(ports[0])", SIGKILL)
                    try await Task.sleep(for: .seconds(2))
                    try await cluster.restartGateway(port: ports[0])
                case .restartRedis:
                    server.crash()
                    try await Task.sleep(for: .seconds(3))
                    try await server.start()
                case .stallRedis:
                    server.signal(SIGSTOP)
                    try await Task.sleep(for: .seconds(10))
                    server.signal(SIGCONT)
                case .lockSQLite:
                    let lock = SQLiteLock(path: try #require(cluster.sqlitePath))
                    #expect(lock.acquired)
                    try await Task.sleep(for: .seconds(10))
                    lock.release()
                case .terminateWorker:
                    #expect(cluster.signal("w2", SIGTERM) == 0)
                    try await Task.sleep(for: .seconds(2))
                    try cluster.startWorker("w2")
                }
                minute += 1
            }
            try await Task.sleep(for: .seconds(max(5, seconds - elapsed() - 25)))
            _ = load.takeLatencies()
            try await Task.sleep(for: .seconds(20))
            endMemory = memory()
            let end = load.takeLatencies()
            endFigures = "p99 \(end.p99) ms, p50 \(end.p50) ms"
        }
        let report = try await cluster.drainAndVerify(ledger, seconds: 180)
        let redisMemory = residentMegabytes(server.pid ?? 0)
        print(
            """
            [soak] \(seconds) s, 2 gateways, 2 workers, 4 organizations, \(load.connections) connections, faults: \(injected.joined(separator: ", "))
            [soak] single-event latency at the start: \(startFigures); at the end: \(endFigures)
            [soak] resident MB at the start: \(startMemory.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.1f", $0.value))" }.joined(separator: ", "))
            [soak] resident MB at the end:   \(endMemory.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.1f", $0.value))" }.joined(separator: ", ")); redis \(String(format: "%.1f", redisMemory))
            [soak] answers: \(load.statusCounts.sorted { $0.key < $1.key })
            [soak] \(report)
            """)
        #expect(report.isClean, "\(report)")
        #expect(injected.count >= seconds / 60 - 1)
        for (name, end) in endMemory {
            // Restarted processes are younger; the others must stay flat (within 50 % and 30 MB of the start).
            if let start = startMemory[name] { #expect(end < start * 1.5 + 30, "\(name): \(start) MB → \(end) MB") }
        }
        passed = report.isClean
    }
}
