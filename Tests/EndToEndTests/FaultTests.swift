import Foundation
import Shared
import TestSupport
import Testing

/// The promises of docs/reliability.md under faults, on the built executables, each checked with a ledger of every event.
@Suite("Faults under load, with a ledger of every event", .serialized)
struct FaultTests {
    @Test(arguments: Cluster.Store.allCases) func workersKilledMidBatchRepeatedly(store: Cluster.Store) async throws {
        let cluster = try await Cluster(store: store)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let port = try await cluster.startGateway()
        for name in ["w1", "w2"] { try cluster.startWorker(name) }
        let report = try await cluster.ledgerRun(ports: [port]) { load, ledger in
            try await Task.sleep(for: .milliseconds(1_500))
            #expect(cluster.signal("w1", SIGKILL) == 128 + SIGKILL)
            try await Task.sleep(for: .milliseconds(1_000))
            try cluster.startWorker("w1")  // restarted: re-reads its own pending entries first
            try await Task.sleep(for: .milliseconds(1_000))
            #expect(cluster.signal("w2", SIGKILL) == 128 + SIGKILL)  // not restarted: w1 claims its entries
            try await Task.sleep(for: .milliseconds(1_500))
        }
        #expect(report.accepted > 100 && report.refused > 0, "\(report)")
        passed = report.isClean
    }

    @Test(arguments: Cluster.Store.allCases) func redisKilledAndRestartedWithAppendfsyncAlways(store: Cluster.Store) async throws {
        let server = try RedisServer(arguments: ["--appendfsync", "always"])
        let cluster = try await Cluster(store: store, redisURL: server.url)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let port = try await cluster.startGateway(["OPERYN_REDIS_COMMAND_TIMEOUT_MS": "500"])
        try cluster.startWorker("w1")
        let ledger = Ledger()
        let load = LoadGenerator(ledger: ledger, ports: [port], apiKey: Cluster.serverKey)
        var acceptedBefore = 0
        try await underLoad(load) {
            try await Task.sleep(for: .milliseconds(1_500))
            acceptedBefore = ledger.counts.accepted
            server.crash()
            try await Task.sleep(for: .milliseconds(1_500))
            #expect((load.statusCounts[503] ?? 0) > 0, "503 while Redis is down: \(load.statusCounts)")
            try server.start()
            try await Task.sleep(for: .milliseconds(2_500))
        }
        #expect(ledger.counts.accepted > acceptedBefore, "accepting again after the restart")
        let report = try await cluster.drainAndVerify(ledger)
        #expect(report.isClean, "\(report)")
        #expect(report.accepted > 0 && acceptedBefore > 0, "\(report)")
        passed = report.isClean
    }
}
