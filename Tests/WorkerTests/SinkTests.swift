import Shared
import TestSupport
import Testing

@testable import Worker

@Suite("SQLite sink")
struct SQLiteSinkTests {
    @Test func migratesOnceAndStoresEveryField() async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        try await harness.sink.prepare()
        try await harness.sink.prepare()
        #expect(try harness.query("SELECT version FROM schema_migrations") == [["1"]])

        let log = Sample.log(org: "org_a")
        let metric = Sample.metric()
        let deployment = Sample.deployment()
        #expect(try await harness.sink.store([log, metric, deployment]) == 3)
        #expect(try await harness.sink.store([log, metric, deployment]) == 0, "a redelivery stores nothing twice")

        let logRow = try harness.query("SELECT id, org_id, service, level, message, timestamp, trace_id, span_id, metadata, received_at FROM logs")
        #expect(
            logRow == [
                [
                    log.id, "org_a", "api", "warn", "hello", "2024-05-01T10:00:00.500Z", "t-1", "s-1", #"{"region":"eu","n":[1,{"x":true}]}"#,
                    "2023-11-14T22:13:20.000Z",
                ]
            ])
        #expect(try harness.query("SELECT name, value, unit, labels FROM metrics") == [["cpu", "0.25", "percent", #"{"host":"a","zone":"b"}"#]])
        #expect(
            try harness.query("SELECT version, environment, git_hash, metadata FROM deployments") == [
                ["v2.0.1", "production", "a1b2c3d4", #"{"deployedBy":"jenkins"}"#]
            ])
        let indexes = try harness.query("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name").compactMap(\.first)
        #expect(indexes == ["deployments_org_service_time", "logs_org_service_time", "logs_org_time", "metrics_org_service_name_time"])
        await harness.sink.close()
    }

    @Test func aLockedDatabaseIsUnavailableNotRejected() async throws {
        let harness = try WorkerHarness(busyTimeoutMilliseconds: 100)
        defer { Task { await harness.cleanUp() } }
        try await harness.sink.prepare()
        let lock = SQLiteLock(path: harness.databasePath)
        do {
            _ = try await harness.sink.store([Sample.log()])
            Issue.record("stored through an exclusive lock")
        } catch {
            #expect(error.code == .unavailable)
        }
        lock.release()
        #expect(try await harness.sink.store([Sample.log()]) == 1)
    }
}
