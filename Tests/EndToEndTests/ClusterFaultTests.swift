import Foundation
import Shared
import TestSupport
import Testing

/// The promises of docs/reliability.md on a Redis Cluster of the test's own, under ledger traffic from 12
/// organizations (their partitions on every master): a master killed, slots moving, a master stalled.
@Suite("Faults of a Redis Cluster under load, with a ledger of every event", .serialized)
struct ClusterFaultTests {
    static let organizations = (0..<12).map { "tenant-\($0)" }

    /// A master killed with SIGKILL: its replica is promoted. With `OPERYN_REDIS_WAIT_REPLICAS=1` every 202 was on a
    /// replica as well, so nothing accepted is lost; appends to that shard get 503 until it has a replica again.
    @Test func aMasterKilledAndItsReplicaPromotedLosesNothingAccepted() async throws {
        let redis = try await RedisClusterServer()
        let cluster = try await Cluster(store: .sqlite, redisURL: redis.url)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let port = try await cluster.startGateway(["OPERYN_REDIS_WAIT_REPLICAS": "1", "OPERYN_REDIS_WAIT_TIMEOUT_MS": "500"])
        for name in ["w1", "w2"] { try cluster.startWorker(name) }
        let ledger = Ledger()
        let load = LoadGenerator(ledger: ledger, ports: [port], organizations: Self.organizations, apiKey: Cluster.serverKey)
        var acceptedBefore = 0
        try await underLoad(load) {
            try await Task.sleep(for: .milliseconds(2_000))
            acceptedBefore = ledger.counts.accepted
            #expect(acceptedBefore > 0, "accepting with WAIT 1 before the kill: \(load.statusCounts)")
            let victim = try #require(try await redis.masters().first)
            redis.crash(port: victim.port)
            // Node timeout 2 s, then the replica's election.
            var masters = 0
            for _ in 0..<75 where masters < 3 {
                try await Task.sleep(for: .milliseconds(200))
                masters = (try? await redis.masters().count) ?? 0
            }
            #expect(masters == 3, "a replica took over within 15 s")
            try await Task.sleep(for: .milliseconds(2_000))  // accepting while the shard has no replica: 503
            try await redis.start(port: victim.port)  // back as a replica of the new master
            try await redis.waitUntilHealthy(seconds: 30)
            try await Task.sleep(for: .milliseconds(3_000))
        }
        #expect(ledger.counts.accepted > acceptedBefore + 50, "accepting again after the failover: \(load.statusCounts)")
        let report = try await cluster.drainAndVerify(ledger)
        #expect(report.isClean && report.accepted > 100, "\(report)")
        passed = report.isClean
    }

    /// A thousand slots resharded from one master to another while events flow: nothing lost, nothing stored twice.
    @Test func slotsMigratedWhileEventsFlowLoseAndDuplicateNothing() async throws {
        let redis = try await RedisClusterServer()
        let cluster = try await Cluster(store: .sqlite, redisURL: redis.url)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let port = try await cluster.startGateway()
        for name in ["w1", "w2"] { try cluster.startWorker(name) }
        let report = try await cluster.ledgerRun(ports: [port], organizations: Self.organizations) { _, _ in
            try await Task.sleep(for: .milliseconds(1_500))
            let masters = try await redis.masters()
            try await redis.cli([
                "--cluster", "reshard", "127.0.0.1:\(masters[0].port)", "--cluster-from", masters[0].id, "--cluster-to", masters[1].id,
                "--cluster-slots", "1000", "--cluster-yes",
            ])
            try await redis.waitUntilAgreed(seconds: 20)
            try await redis.cli(["--cluster", "rebalance", "127.0.0.1:\(masters[0].port)"])
            try await redis.waitUntilAgreed(seconds: 20)
            try await Task.sleep(for: .milliseconds(1_500))
        }
        #expect(report.accepted > 100, "\(report)")
        passed = report.isClean
    }

    /// A master stalled with SIGSTOP for 10 s: requests for its slots get 503 within the command timeout (never a
    /// hang); the cluster fails it over, the gateway and workers follow, and the ledger is clean.
    @Test func aMasterStalledForTenSecondsAnswers503InTimeThenRecovers() async throws {
        let redis = try await RedisClusterServer()
        let cluster = try await Cluster(store: .sqlite, redisURL: redis.url)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let port = try await cluster.startGateway(["OPERYN_REDIS_COMMAND_TIMEOUT_MS": "1000"])
        for name in ["w1", "w2"] { try cluster.startWorker(name) }
        let ledger = Ledger()
        let load = LoadGenerator(ledger: ledger, ports: [port], organizations: Self.organizations, apiKey: Cluster.serverKey)
        var acceptedDuring = 0
        try await underLoad(load) {
            try await Task.sleep(for: .milliseconds(1_500))
            let victim = try #require(try await redis.masters().first)
            load.resetCounters()
            redis.signal(SIGSTOP, port: victim.port)
            try await Task.sleep(for: .milliseconds(10_000))
            redis.signal(SIGCONT, port: victim.port)
            #expect((load.statusCounts[503] ?? 0) > 0, "503 while a master is stalled: \(load.statusCounts)")
            #expect(load.slowestAnswerMilliseconds < 3_000, "every answer within the command timeout (1 s) and a margin")
            acceptedDuring = load.statusCounts[202] ?? 0
            try await redis.waitUntilHealthy(seconds: 30)
            try await Task.sleep(for: .milliseconds(2_000))
        }
        #expect(acceptedDuring > 0, "the other masters' organizations were served meanwhile")
        let report = try await cluster.drainAndVerify(ledger)
        #expect(report.isClean && report.accepted > 100, "\(report)")
        passed = report.isClean
    }
}
