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
        passed = try await redisKilledAndRestartedUnderLoad(server, cluster)
    }
}

/// A gateway and a worker on `server` under load while Redis is killed with `kill -9` and restarted from its AOF:
/// 503 while it is down, accepting again after, and a clean ledger. Answers whether the ledger was clean.
func redisKilledAndRestartedUnderLoad(_ server: RedisServer, _ cluster: Cluster) async throws -> Bool {
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
    return report.isClean
}

/// Clients that retry every unknown answer with their `Idempotency-Key` (to the other gateway) through a Redis stall
/// and a gateway killed: nothing is stored twice, and every event ends accepted once.
@Suite("Idempotent retries under faults, with a ledger of every event", .serialized)
struct IdempotentRetryTests {
    /// With keys (and, to show the test can tell, without: the same retries then store events twice).
    @Test(arguments: [true, false])
    func retriesThroughARedisStallAndAGatewayKillStoreEachEventOnceWithKeys(withKeys: Bool) async throws {
        let server = try RedisServer()
        let cluster = try await Cluster(store: .sqlite, redisURL: server.url)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let settings = ["OPERYN_REDIS_COMMAND_TIMEOUT_MS": "500"]
        let ports = [try await cluster.startGateway(settings), try await cluster.startGateway(settings)]
        try cluster.startWorker("w1")
        let ledger = Ledger()
        let load = LoadGenerator(ledger: ledger, ports: ports, apiKey: Cluster.serverKey, retryingWithKeys: true, sendsKeys: withKeys)
        try await underLoad(load) {
            try await Task.sleep(for: .milliseconds(1_500))
            // Stalled: appends time out at the gateways (503) and run when Redis resumes; their retries must find them.
            server.signal(SIGSTOP)
            try await Task.sleep(for: .milliseconds(2_000))
            server.signal(SIGCONT)
            try await Task.sleep(for: .milliseconds(1_500))
            // A gateway killed mid-request: cut answers, retried on the other gateway.
            #expect(cluster.signal("gateway-\(ports[0])", SIGKILL) == 128 + SIGKILL)
            try await Task.sleep(for: .milliseconds(1_000))
            try await cluster.restartGateway(port: ports[0])
            try await Task.sleep(for: .milliseconds(1_500))
        }
        let report = try await cluster.drainAndVerify(ledger)
        let (retries, replays) = load.retryCounts
        print("[idempotent retries, keys: \(withKeys)] \(report) | retries \(retries), answered from a record \(replays), statuses \(load.statusCounts)")
        #expect(report.unknown == 0, "every request ended with a definite answer")
        #expect(report.lost == 0 && report.unexpected == 0 && report.wrongOrganization == 0, "\(report)")
        if withKeys {
            #expect(report.isClean, "\(report)")
            // Each organization's usage agrees with the ledger: what workers took is what was stored (all of it valid).
            var acceptedInUsage = 0
            for organization in LoadGenerator.defaultOrganizations {
                let answer = try cluster.get(port: ports[1], "/usage", headers: ["x-api-key": Cluster.serverKey, "x-organization-id": organization])
                let today = try JSONParser.parse(Array(answer.body.utf8))["days"]?.elements.first
                acceptedInUsage += Int(today?["accepted"]?["logs"]?.text ?? "0") ?? 0
                #expect(today?["accepted"]?["logs"] == today?["stored"]?["logs"], "\(organization): \(answer.body.prefix(300))")
            }
            #expect(acceptedInUsage == report.stored, "usage counts every stored event once: \(acceptedInUsage) against \(report.stored) rows")
            #expect(retries > 0 && replays > 0, "the faults made retries, and some found their first request queued: \(retries), \(replays)")
        } else {
            #expect(report.duplicated > 0, "without keys, retries of requests that were queued store their events twice: \(report)")
        }
        passed = true
    }
}
