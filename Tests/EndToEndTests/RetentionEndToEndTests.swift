import Foundation
import Shared
import TestSupport
import Testing

/// Retention on the built processes: `operyn-admin orgs set-retention`, the workers' runs, what `status`, `orgs show`
/// and `GET /usage` say, and a run killed with `kill -9` mid-step.
@Suite("End to end: retention")
struct RetentionEndToEndTests {
    static let validator = EventValidator()

    /// Appends `count` logs of `org`, accepted `daysAgo` days ago, as a gateway then would have.
    static func publishOld(_ cluster: Cluster, org: String, count: Int, daysAgo: Int) async throws {
        let redis = try cluster.redis()
        let task = Task { try await redis.run() }
        defer { task.cancel() }
        let receivedAt = Timestamp(milliseconds: Timestamp.now.milliseconds - Int64(daysAgo) * 86_400_000)
        for index in 0..<count {
            let body = #"{"service":"api","level":"info","message":"\#(org) \#(daysAgo) \#(index)"}"#
            let event = QueuedEvent(
                id: UUID().uuidString.lowercased(), org: org, receivedAt: Timestamp(milliseconds: receivedAt.milliseconds + Int64(index)),
                event: try validator.event(.logs, body: Array(body.utf8)))
            _ = try await redis.send(XADD(cluster.keys.stream(.logs), fields: StreamEntryCodec.encode(event)))
        }
    }

    func count(_ cluster: Cluster, _ sql: String = "SELECT CAST(COUNT(*) AS TEXT) FROM logs") async throws -> Int {
        Int((try await cluster.query(sql).first?.first ?? nil) ?? "0") ?? 0
    }

    func waitFor(_ seconds: Double = 30, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            // A table the worker has not made yet is no answer yet.
            if (try? await condition()) == true { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return try await condition()
    }

    @Test(arguments: Cluster.Store.allCases)
    func overridesSetWithOperynAdminAreAppliedAndShown(store: Cluster.Store) async throws {
        let cluster = try await Cluster(store: store)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let port = try await cluster.startGateway()
        #expect(try cluster.admin("orgs", "set-retention", "beta", "--days", "5").status == 0)
        #expect(try cluster.admin("orgs", "set-retention", "gamma", "--kind", "logs", "--days", "60").status == 0)
        #expect(try cluster.admin("orgs", "set-retention", "beta", "--days", "0").status != 0, "days out of range")
        #expect(try cluster.admin("orgs", "set-retention", "beta").status != 0, "neither --days nor --clear")
        try await Self.publishOld(cluster, org: "acme", count: 100, daysAgo: 10)
        try await Self.publishOld(cluster, org: "acme", count: 100, daysAgo: 40)
        try await Self.publishOld(cluster, org: "beta", count: 100, daysAgo: 10)
        try await Self.publishOld(cluster, org: "gamma", count: 100, daysAgo: 40)
        try cluster.startWorker("w1", ["OPERYN_RETENTION_DAYS": "30", "OPERYN_RETENTION_INTERVAL_SECONDS": "1"])
        try cluster.startWorker("w2", ["OPERYN_RETENTION_DAYS": "30", "OPERYN_RETENTION_INTERVAL_SECONDS": "1"])

        // acme keeps 30 days (its 40-day-old logs go), beta 5 (all go), gamma's logs 60 (all stay).
        let byOrganization = "SELECT org_id || ':' || CAST(COUNT(*) AS TEXT) FROM logs GROUP BY org_id ORDER BY org_id"
        let settled = try await waitFor { try await cluster.query(byOrganization) == [["acme:100"], ["gamma:100"]] }
        let rows = try await cluster.query(byOrganization)
        #expect(settled, "\(rows)")

        let show = try cluster.adminJSON("orgs", "show", "gamma")
        #expect(show["retention"]?["logs"] == .object([("days", .number("60")), ("source", .string("kind"))]))
        #expect(show["retention"]?["metrics"] == .object([("days", .number("30")), ("source", .string("default"))]))
        #expect(show["storage"]?["logs"]?["oldestDay"] != .null)
        let status = try cluster.adminJSON("status")
        #expect(status["storage"]?["defaultRetentionDays"] == .number("30"))
        if store == .postgres, case .number(let partitions)? = status["storage"]?["logs"]?["partitions"] { #expect(Int(partitions)! >= 4) }
        #expect(try cluster.admin("orgs", "show", "beta").output.contains("5 days (set)"))

        let usage = try cluster.get(port: port, "/usage", headers: ["x-api-key": Cluster.serverKey, "x-organization-id": "beta"])
        let body = try JSONParser.parse(Array(usage.body.utf8))
        #expect(body["retention"]?["logs"] == .object([("days", .number("5")), ("source", .string("organization"))]), "\(usage.body)")

        // --clear of beta: the default applies again.
        #expect(try cluster.admin("orgs", "set-retention", "beta", "--clear").status == 0)
        #expect(try cluster.adminJSON("orgs", "show", "beta")["retention"]?["logs"]?["source"] == .string("default"))
        passed = true
    }

    @Test func aRetentionRunKilledMidStepResumes() async throws {
        let cluster = try await Cluster(store: .sqlite)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        // The schema from a first start, then 100 000 old rows and 1 000 fresh ones, written directly.
        try cluster.startWorker("w0")
        let path = cluster.sqlitePath!
        let migrated = try await waitFor { try sqliteQuery(path: path, "SELECT COUNT(*) FROM schema_migrations") == [["2"]] }
        #expect(migrated)
        #expect(cluster.signal("w0", SIGTERM) == 0)
        try sqliteExecute(
            path: path,
            """
            WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 101000)
            INSERT INTO logs (id, org_id, service, level, message, timestamp, received_at)
            SELECT printf('00000000-0000-4000-8000-%012d', n), 'acme', 'api', 'info', 'row ' || n, '2026-01-01T00:00:00.000Z',
                CASE WHEN n <= 100000 THEN '2020-01-01T00:00:00.000Z' ELSE strftime('%Y-%m-%dT%H:%M:%fZ', 'now') END FROM g
            """)
        let settings = ["OPERYN_RETENTION_DAYS": "30", "OPERYN_RETENTION_INTERVAL_SECONDS": "1", "OPERYN_RETENTION_STEP_ROWS": "200"]
        try cluster.startWorker("w1", settings)
        let started = try await waitFor { try await count(cluster) < 101_000 }
        #expect(started, "retention started")
        #expect(cluster.signal("w1", SIGKILL) == 128 + SIGKILL)
        let left = try await count(cluster)
        #expect(left > 1_000 && left < 101_000, "killed mid-way: \(left) rows left")
        #expect(try sqliteQuery(path: path, "PRAGMA integrity_check") == [["ok"]])

        // The next run (the lease is the dead worker's name, so its successor of that name takes it at once) goes on.
        try cluster.startWorker("w1", settings)
        let resumed = try await waitFor(60) { try await count(cluster) == 1_000 }
        #expect(resumed)
        #expect(try await count(cluster, "SELECT CAST(COUNT(*) AS TEXT) FROM logs WHERE received_at > '2021'") == 1_000, "every fresh row kept")
        #expect(try sqliteQuery(path: path, "PRAGMA integrity_check") == [["ok"]])
        passed = true
    }
}
