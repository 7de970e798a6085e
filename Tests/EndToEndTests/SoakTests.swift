import Foundation
import NIOCore
import Shared
import TestSupport
import Testing

/// Ten minutes (`OPERYN_SOAK_SECONDS`) of mixed traffic over two gateways and two workers, with one fault injected
/// every minute: single events, batches and OTLP/HTTP exports from four organizations and a fifth under a rate limit,
/// every request with an `Idempotency-Key` and sent again after an unknown answer. The ledger must be clean, each
/// organization's usage must count every stored event once, and p99 latency and resident memory of every process
/// are reported at the start and at the end. Every fault applies to the store under test (`OPERYN_FAULT_SINK`).
@Suite("Soak with a fault every minute", .enabled(if: fullFaultSuite))
struct SoakTests {
    enum Fault: CaseIterable {
        case killWorker, killGateway, restartRedis, stallRedis, lockDatabase, terminateWorker
    }

    /// The organization with a rate limit of its own (20 events a second): part of its traffic is refused with 429.
    static let limited = "org-limited"

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
        let redis = try cluster.redis()
        defer { redis.shutdown() }
        try await OrganizationSettings.setRateLimit(RateLimit(eventsPerSecond: 20), of: Self.limited, redis: redis, keys: cluster.keys)
        let organizations = LoadGenerator.defaultOrganizations + [Self.limited]
        let ledger = Ledger()
        let load = LoadGenerator(
            ledger: ledger, ports: ports, organizations: organizations, apiKey: Cluster.serverKey, retryingWithKeys: true, otlp: true)
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
                case .lockDatabase:
                    if let path = cluster.sqlitePath {
                        let lock = SQLiteLock(path: path)
                        #expect(lock.acquired)
                        try await Task.sleep(for: .seconds(10))
                        lock.release()
                    } else {
                        // PostgreSQL: every connection of the workers cut, again and again for 10 s.
                        let until = NIODeadline.now() + .seconds(10)
                        while NIODeadline.now() < until {
                            _ = try? await PostgresTestDatabase.query(
                                url: cluster.databaseURL,
                                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
                            try await Task.sleep(for: .milliseconds(500))
                        }
                    }
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
        // Each organization's usage agrees with the ledger: what the workers took is what was stored, once.
        var usage: [String] = []
        var acceptedInUsage = 0
        for organization in organizations {
            let answer = try cluster.get(port: ports[1], "/usage", headers: ["x-api-key": Cluster.serverKey, "x-organization-id": organization])
            let today = try JSONParser.parse(Array(answer.body.utf8))["days"]?.elements.first
            let accepted = Int(today?["accepted"]?["logs"]?.text ?? "0") ?? 0
            let limited = Int(today?["rateLimited"]?["logs"]?.text ?? "0") ?? 0
            acceptedInUsage += accepted
            usage.append("\(organization) accepted \(accepted), rate-limited \(limited)")
            #expect(today?["accepted"]?["logs"] == today?["stored"]?["logs"], "\(organization): \(answer.body.prefix(300))")
            if organization == Self.limited { #expect(limited > 0, "the limited organization was refused some events") }
        }
        let (retries, replays) = load.retryCounts
        print(
            """
            [soak] \(seconds) s, 2 gateways, 2 workers, \(organizations.count) organizations (\(Self.limited) rate-limited), \(load.connections) connections, faults: \(injected.joined(separator: ", "))
            [soak] single-event latency at the start: \(startFigures); at the end: \(endFigures)
            [soak] resident MB at the start: \(startMemory.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.1f", $0.value))" }.joined(separator: ", "))
            [soak] resident MB at the end:   \(endMemory.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.1f", $0.value))" }.joined(separator: ", ")); redis \(String(format: "%.1f", redisMemory))
            [soak] answers: \(load.statusCounts.sorted { $0.key < $1.key }); retries \(retries), answered from a record \(replays)
            [soak] usage today: \(usage.joined(separator: "; "))
            [soak] \(report)
            """)
        #expect(report.isClean, "\(report)")
        #expect(report.unknown == 0, "every request ended with a definite answer")
        #expect(acceptedInUsage == report.stored, "usage counts every stored event once: \(acceptedInUsage) against \(report.stored) rows")
        #expect(load.statusCounts[200, default: 0] > 0 && load.statusCounts[429, default: 0] > 0, "OTLP exports and rate-limited requests ran")
        #expect(injected.count >= seconds / 60 - 1)
        for (name, end) in endMemory {
            // Restarted processes are younger; the others must stay flat (within 50 % and 30 MB of the start).
            if let start = startMemory[name] { #expect(end < start * 1.5 + 30, "\(name): \(start) MB → \(end) MB") }
        }
        passed = report.isClean
    }
}
