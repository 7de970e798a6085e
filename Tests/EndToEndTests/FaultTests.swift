import Foundation
import NIOCore
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

    /// A hot organization moves into and out of overflow again and again (thresholds as low as a few batches, no
    /// cool-down) beside quieter ones of its partition and another, while workers are killed mid-batch: nothing is
    /// lost, stored twice or stored under another organization, and each organization's stored count is its rows.
    @Test func aHotOrganizationMovingInAndOutOfOverflowWhileWorkersAreKilled() async throws {
        let cluster = try await Cluster(store: .sqlite)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let keys = cluster.keys
        let neighbours = (0..<500).map { "org-\($0)" }.filter { keys.partition(of: $0) == keys.partition(of: "hot") }.prefix(2)
        let elsewhere = try #require((0..<500).map { "org-\($0)" }.first { keys.partition(of: $0) != keys.partition(of: "hot") })
        let organizations = Array(repeating: "hot", count: 6) + neighbours + [elsewhere]
        // The workers decide every 100 ms, with no cool-down: an organization overflows from 40 queued events or 200
        // events a second, and goes back under 10 and 100. The gateways report their counts every 250 ms, so a check
        // sees hot's rate jump (a report came in) or fall to nothing (none did): it moves in and out all along, and
        // out for good once the load stops. The gateway leaves the decision to the workers.
        let overflow = [
            "OPERYN_OVERFLOW_BACKLOG_EVENTS": "40", "OPERYN_OVERFLOW_RATE_EVENTS": "200", "OPERYN_OVERFLOW_CHECK_MS": "100",
            "OPERYN_OVERFLOW_COOLDOWN_SECONDS": "0",
        ]
        let port = try await cluster.startGateway(["OPERYN_OVERFLOW_RATE_EVENTS": "0"])
        for name in ["w1", "w2"] { try cluster.startWorker(name, overflow) }
        let report = try await cluster.ledgerRun(ports: [port], organizations: organizations) { load, ledger in
            try await Task.sleep(for: .milliseconds(1_500))
            #expect(cluster.signal("w1", SIGKILL) == 128 + SIGKILL)
            try await Task.sleep(for: .milliseconds(1_500))
            try cluster.startWorker("w1")
            try await Task.sleep(for: .milliseconds(1_000))
            #expect(cluster.signal("w2", SIGKILL) == 128 + SIGKILL)
            try await Task.sleep(for: .milliseconds(1_500))
            try cluster.startWorker("w2")
            try await Task.sleep(for: .milliseconds(1_500))
        }
        var (entered, left) = (0, 0)
        for _ in 0..<50 {
            let logs = cluster.log("w1") + cluster.log("w2")
            entered = logs.components(separatedBy: "worker.overflow.entered").count - 1
            left = logs.components(separatedBy: "worker.overflow.left").count - 1
            if entered >= 1 && left >= 1 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(entered >= 1 && left >= 1, "moved into overflow \(entered) times and out \(left) times")
        let redis = try cluster.redis()
        defer { redis.shutdown() }
        for org in Set(organizations) {
            let rows = try await cluster.query("SELECT COUNT(*) FROM logs WHERE org_id = '\(org)'")
            let counted = try await redis.send(HGET(keys.counts(org: org), field: "stored:logs"))
            #expect(counted == rows.first?.first ?? nil, "\(org): its stored count is its rows")
        }
        print("[hot organization] moved into overflow \(entered) times and out \(left) times")
        passed = report.isClean
    }

    /// The upgrade from one stream per kind (`OPERYN_STREAM_PARTITIONS=1`) to 16 partitions under load, one process
    /// at a time (a gateway, a worker, the other gateway, the other worker), each stopped with SIGTERM as a rolling
    /// deployment does: the old streams are drained by the new workers, and every accepted event is stored once.
    @Test func upgradingFromOneStreamPerKindUnderLoad() async throws {
        let cluster = try await Cluster(store: .sqlite)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let old = ["OPERYN_STREAM_PARTITIONS": "1"]
        let new = ["OPERYN_STREAM_PARTITIONS": "16"]
        let ports = [try await cluster.startGateway(old), try await cluster.startGateway(old)]
        for name in ["w1", "w2"] { try cluster.startWorker(name, old) }
        let ledger = Ledger()
        let load = LoadGenerator(ledger: ledger, ports: ports, apiKey: Cluster.serverKey, retryingWithKeys: true)
        try await underLoad(load) {
            try await Task.sleep(for: .milliseconds(1_500))
            // The old streams hold entries, some delivered and not yet acknowledged, as each process is replaced.
            #expect(cluster.signal("gateway-\(ports[0])", SIGTERM) == 0)
            _ = try await cluster.startGateway(new, port: ports[0])
            try await Task.sleep(for: .milliseconds(1_000))
            #expect(cluster.signal("w1", SIGTERM) == 0)
            try cluster.startWorker("w1", new)
            try await Task.sleep(for: .milliseconds(1_000))
            #expect(cluster.signal("gateway-\(ports[1])", SIGTERM) == 0)
            _ = try await cluster.startGateway(new, port: ports[1])
            try await Task.sleep(for: .milliseconds(1_000))
            #expect(cluster.signal("w2", SIGTERM) == 0)
            try cluster.startWorker("w2", new)
            try await Task.sleep(for: .milliseconds(1_500))
        }
        let redis = try cluster.redis()
        defer { redis.shutdown() }
        let previous = RedisKeys(prefix: cluster.prefix, partitions: 1)
        let deadline = NIODeadline.now() + .seconds(60)
        var left = 1
        while left > 0, NIODeadline.now() < deadline {
            left = 0
            for stream in EventKind.allCases.map({ previous.stream($0) }) {
                left += try await redis.send(XLEN(stream)) + ((try? await redis.send(XPENDING(stream, group: previous.consumerGroup)).count) ?? 0)
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(left == 0, "the old streams drained")
        #expect(cluster.log("w1").contains("worker.previous_layout.drained") || cluster.log("w2").contains("worker.previous_layout.drained"))
        let report = try await cluster.drainAndVerify(ledger)
        #expect(report.isClean && report.accepted > 100, "\(report)")
        passed = report.isClean
    }

    @Test(arguments: Cluster.Store.allCases) func redisKilledAndRestartedWithAppendfsyncAlways(store: Cluster.Store) async throws {
        let server = try await RedisServer(arguments: ["--appendfsync", "always"])
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
        try await server.start()
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
        let server = try await RedisServer()
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
