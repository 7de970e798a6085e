import Foundation
import Shared
import TestSupport
import Testing

/// The rest of the fault suite: slower faults, run by `scripts/fault-suite.sh` (`OPERYN_FAULT_SUITE=full`).
@Suite("Fault suite (full): more faults under load, ledger of every event", .serialized, .enabled(if: fullFaultSuite))
struct FaultSuiteTests {
    @Test func gatewayKilledUnderLoadTheOtherKeepsServing() async throws {
        let cluster = try await Cluster(store: .forFaults)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let ports = [try await cluster.startGateway(), try await cluster.startGateway()]
        try cluster.startWorker("w1")
        let report = try await cluster.ledgerRun(ports: ports) { load, ledger in
            try await Task.sleep(for: .milliseconds(1_500))
            #expect(cluster.signal("gateway-\(ports[0])", SIGKILL) == 128 + SIGKILL)
            let afterKill = ledger.counts.accepted
            try await Task.sleep(for: .milliseconds(2_000))
            #expect(ledger.counts.accepted > afterKill + 100, "the other gateway keeps accepting")
            try await cluster.restartGateway(port: ports[0])
            try await Task.sleep(for: .milliseconds(1_500))
        }
        passed = report.isClean
    }

    @Test func redisStalledTenSeconds() async throws {
        let server = try await RedisServer()
        let cluster = try await Cluster(store: .forFaults, redisURL: server.url)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let port = try await cluster.startGateway(["OPERYN_REDIS_COMMAND_TIMEOUT_MS": "1000"])
        try cluster.startWorker("w1")
        let report = try await cluster.ledgerRun(ports: [port]) { load, ledger in
            try await Task.sleep(for: .milliseconds(1_000))
            load.resetCounters()
            server.signal(SIGSTOP)
            try await Task.sleep(for: .seconds(10))
            let during = load.statusCounts
            let slowest = load.slowestAnswerMilliseconds
            server.signal(SIGCONT)
            print("[redis stalled] answers while stalled: \(during), slowest answer \(slowest) ms")
            #expect((during[503] ?? 0) > 0, "503 while Redis is stalled: \(during)")
            #expect((during[0] ?? 0) == 0, "no request hangs or is reset: \(during)")
            #expect(slowest < 2_500, "answered within the command timeout (1 s) plus scheduling: \(slowest) ms")
            let before = ledger.counts.accepted
            try await Task.sleep(for: .milliseconds(3_000))
            #expect(ledger.counts.accepted > before, "recovers after SIGCONT")
        }
        passed = report.isClean
    }

    @Test func redisOutOfMemoryThenReadOnly() async throws {
        let server = try await RedisServer(arguments: ["--maxmemory-policy", "noeviction"])
        let cluster = try await Cluster(store: .forFaults, redisURL: server.url)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let port = try await cluster.startGateway()
        try cluster.startWorker("w1")
        let admin = try cluster.redis()
        defer { admin.shutdown() }
        let report = try await cluster.ledgerRun(ports: [port]) { load, ledger in
            try await Task.sleep(for: .milliseconds(1_000))
            let info = try await admin.send(RawCommand("INFO", "memory")).string ?? ""
            let used = info.split(separator: "\r\n").first { $0.hasPrefix("used_memory:") }.flatMap { Int($0.dropFirst("used_memory:".count)) } ?? 0
            load.resetCounters()
            // Below what is used: every command that may grow memory (XADD, MULTI with XADD) is refused with OOM.
            _ = try await admin.send(RawCommand("CONFIG", "SET", "maxmemory", String(max(1, used / 2))))
            try await Task.sleep(for: .milliseconds(2_000))
            #expect((load.statusCounts[503] ?? 0) > 0, "503 while Redis is out of memory: \(load.statusCounts)")
            _ = try await admin.send(RawCommand("CONFIG", "SET", "maxmemory", "0"))
            var before = ledger.counts.accepted
            try await Task.sleep(for: .milliseconds(1_500))
            #expect(ledger.counts.accepted > before, "recovers when memory is back")

            load.resetCounters()
            _ = try await admin.send(RawCommand("REPLICAOF", "127.0.0.1", String(try RedisServer.freePort())))
            try await Task.sleep(for: .milliseconds(2_000))
            #expect((load.statusCounts[503] ?? 0) > 0, "503 while Redis is read-only: \(load.statusCounts)")
            _ = try await admin.send(RawCommand("REPLICAOF", "NO", "ONE"))
            before = ledger.counts.accepted
            try await Task.sleep(for: .milliseconds(1_500))
            #expect(ledger.counts.accepted > before, "recovers when Redis is a primary again")
        }
        passed = report.isClean
    }

    @Test func postgresStoppedThirtySeconds() async throws {
        let postgres = try await PostgresServer()
        let cluster = try Cluster(databaseURL: postgres.url)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let port = try await cluster.startGateway()
        for name in ["w1", "w2"] { try cluster.startWorker(name) }
        let redis = try cluster.redis()
        defer { redis.shutdown() }
        let report = try await cluster.ledgerRun(ports: [port], drainSeconds: 120) { load, ledger in
            try await Task.sleep(for: .milliseconds(2_000))
            try await postgres.stop()
            try await Task.sleep(for: .seconds(30))
            let backlog = try await StreamBacklog.read(redis: redis, keys: cluster.keys)
            #expect(backlog.total > 0, "nothing is acknowledged while the database is down: \(backlog)")
            try await postgres.start()
            try await Task.sleep(for: .milliseconds(2_000))
        }
        passed = report.isClean
    }

    @Test func sqliteHeldLockedByAnotherProcess() async throws {
        let cluster = try Cluster()
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let port = try await cluster.startGateway()
        try cluster.startWorker("w1")
        let report = try await cluster.ledgerRun(ports: [port]) { load, ledger in
            try await Task.sleep(for: .milliseconds(1_500))
            let lock = SQLiteLock(path: try #require(cluster.sqlitePath))
            try #require(lock.acquired, "the database is locked")
            let rowsBefore = try await cluster.query("SELECT COUNT(*) FROM logs").first?.first ?? nil
            try await Task.sleep(for: .seconds(10))
            let rowsDuring = try await cluster.query("SELECT COUNT(*) FROM logs").first?.first ?? nil
            #expect(rowsBefore == rowsDuring, "nothing is written while the file is locked")
            lock.release()
            try await Task.sleep(for: .milliseconds(2_000))
        }
        passed = report.isClean
    }

    @Test func workersStoppedBackpressureThenDrain() async throws {
        let cluster = try await Cluster(store: .forFaults)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let highWater = 5_000
        let port = try await cluster.startGateway(["OPERYN_BACKLOG_HIGH_WATER": "\(highWater)", "OPERYN_BACKLOG_REFRESH_MS": "100"])
        try cluster.startWorker("w1")
        try await Task.sleep(for: .milliseconds(500))  // the group exists
        #expect(cluster.signal("w1", SIGTERM) == 0)
        let redis = try cluster.redis()
        defer { redis.shutdown() }
        let report = try await cluster.ledgerRun(ports: [port]) { load, ledger in
            try await Task.sleep(for: .seconds(6))
            let backlog = try await StreamBacklog.read(redis: redis, keys: cluster.keys)
            let events = try await Self.eventsInStreams(redis, cluster.keys)
            print(
                "[backpressure] \(events) events in \(backlog.total) entries (the gateway's estimate: \(backlog.totalEvents)) with high water \(highWater) events; answers \(load.statusCounts)"
            )
            #expect((load.statusCounts[503] ?? 0) > 0, "503 past the high-water mark")
            // The mark counts events (estimated by the gateway from the newest entries' counts); what Redis holds is
            // counted here exactly.
            #expect(events < highWater * 2, "Redis stays bounded: \(events) events")
            try await Task.sleep(for: .seconds(2))
            #expect(try await Self.eventsInStreams(redis, cluster.keys) < highWater * 2)
            try cluster.startWorker("w1")
            try await Task.sleep(for: .seconds(2))
        }
        passed = report.isClean
    }

    @Test func sigtermUnderLoadExitsCleanly() async throws {
        let cluster = try await Cluster(store: .forFaults)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let ports = [try await cluster.startGateway(), try await cluster.startGateway()]
        for name in ["w1", "w2"] { try cluster.startWorker(name) }
        let report = try await cluster.ledgerRun(ports: ports) { load, ledger in
            try await Task.sleep(for: .milliseconds(1_500))
            #expect(cluster.signal("w1", SIGTERM) == 0, "a worker finishes its batch and exits 0")
            #expect(cluster.signal("gateway-\(ports[0])", SIGTERM) == 0, "a gateway finishes its requests and exits 0")
            try await Task.sleep(for: .milliseconds(1_500))
            try cluster.startWorker("w1")
            try await cluster.restartGateway(port: ports[0])
            try await Task.sleep(for: .milliseconds(1_500))
        }
        let exits = cluster.stop()
        #expect(exits.values.allSatisfy { $0 == 0 }, "\(exits)")
        passed = report.isClean
    }

    /// Every event the streams hold, of every kind and partition: each entry's `count` (1 for a format-1 entry).
    static func eventsInStreams(_ redis: RedisClient, _ keys: RedisKeys) async throws -> Int {
        var events = 0
        for stream in keys.allStreams {
            for entry in try await redis.send(XRANGE(stream)) { events += entry.fields.map(StreamEntryCodec.eventCount) ?? 0 }
        }
        return events
    }
}
