import Foundation
import Shared
import TestSupport
import Testing

@testable import Sinks

@Suite("Event sinks: one suite, both engines")
struct SinkTests {
    @Test(arguments: SinkEngine.allCases)
    func migratesOnceAndStoresEveryFieldOnce(engine: SinkEngine) async throws {
        let target = try await SinkUnderTest.make(engine)
        try await target.sink.prepare()
        try await target.sink.prepare()
        #expect(try await target.query("SELECT CAST(MAX(version) AS TEXT), CAST(COUNT(*) AS TEXT) FROM schema_migrations") == [["2", "2"]])

        let log = Sample.log(org: "org_a")
        let metric = Sample.metric()
        let deployment = Sample.deployment()
        #expect(try await target.sink.store([log, metric, deployment]) == 3)
        #expect(try await target.sink.store([log, metric, deployment]) == 0, "a redelivery stores nothing twice")
        #expect(try await target.count("logs") == 1)

        let logRow = try await target.query(
            "SELECT CAST(id AS TEXT), org_id, service, level, message, \(target.iso("timestamp")), trace_id, span_id, \(target.member("metadata", "region")), \(target.iso("received_at")) FROM logs"
        )
        #expect(logRow == [[log.id, "org_a", "api", "warn", "hello", "2024-05-01T10:00:00.500Z", "t-1", "s-1", "eu", "2023-11-14T22:13:20.000Z"]])
        #expect(
            try await target.query("SELECT name, CAST(value AS TEXT), unit, \(target.member("labels", "zone")) FROM metrics") == [
                ["cpu", "0.25", "percent", "b"]
            ])
        #expect(
            try await target.query("SELECT version, environment, git_hash, \(target.member("metadata", "deployedBy")) FROM deployments") == [
                ["v2.0.1", "production", "a1b2c3d4", "jenkins"]
            ])
        let nulls = Sample.log(id: "01a2199f-0000-7000-8000-000000000001")
        var bare = nulls
        if case .log(var event) = bare.event {
            event.traceId = nil
            event.spanId = nil
            event.metadata = nil
            bare.event = .log(event)
        }
        #expect(try await target.sink.store([bare]) == 1)
        #expect(try await target.query("SELECT trace_id, span_id, metadata FROM logs WHERE CAST(id AS TEXT) = '\(bare.id)'") == [[nil, nil, nil]])
        await target.close()
    }

    /// PostgreSQL refuses each poison event as a data error (`rejected`, so the worker splits and dead-letters), never
    /// as an outage (which would hold every event behind it); its message carries the SQLSTATE.
    @Test func postgresRefusesWhatItCannotStoreAsRejected() async throws {
        let target = try await SinkUnderTest.make(.postgres)
        try await target.sink.prepare()
        for poison in Sample.poison() {
            do {
                _ = try await target.sink.store([Sample.log(), poison])
                Issue.record("stored \(poison)")
            } catch {
                #expect(error.code == .rejected, "\(error.message)")
                #expect(error.message.hasPrefix("PostgreSQL 22"), "\(error.message)")
            }
        }
        #expect(try await target.count("logs") == 0, "a refused batch stores nothing")
        #expect(try await target.sink.store([Sample.log()]) == 1, "the pool is usable after refusals")
        await target.close()
    }

    /// Workers starting together on a new SQLite file: one migrates, the others find it done (never "table exists", a
    /// refusal that would end their start).
    @Test func sqliteWorkersStartingTogetherMigrateOnce() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("operyn-race-\(UUID().uuidString)/o.sqlite").path
        let sinks = (0..<4).map { _ in SQLiteSink(path: path) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sink in sinks {
                group.addTask {
                    // As the worker does at start: a lock is waited out; a refusal would end the start (exit 3).
                    var attempt = 0
                    while true {
                        do {
                            try await sink.prepare()
                            break
                        } catch {
                            attempt += 1
                            guard (error as? SinkError)?.code == .unavailable, attempt < 100 else { throw error }
                            try await Task.sleep(for: .milliseconds(20))
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try sqliteQuery(path: path, "SELECT COUNT(*) FROM schema_migrations") == [[String(SQLiteSink.migrations.count)]])
        for sink in sinks { await sink.close() }
    }

    @Test func rowsAreLaidOutInTheSchemasColumnOrder() {
        for (event, columns) in [(Sample.log(), Schema.logs), (Sample.metric(), Schema.metrics), (Sample.deployment(), Schema.deployments)] {
            var names: [String] = []
            event.forEachColumn { name, _ in names.append(name.description) }
            #expect(names == columns)
            let recordNames = PostgresSink.recordTypes[event.event.kind]!.split(separator: ", ").map { String($0.split(separator: " ")[0]) }
            #expect(recordNames == columns, "the PostgreSQL record type of \(event.event.kind)")
        }
    }

    @Test(arguments: SinkEngine.allCases)
    func textsAreStoredByteForByteAndEmptyIsNotNull(engine: SinkEngine) async throws {
        let target = try await SinkUnderTest.make(engine)
        try await target.sink.prepare()
        let log = Sample.log(service: "sérvice ✓ 日本", message: #"quote \" backslash \\ newline \n tab \t end"#)
        var metric = Sample.metric()
        if case .metric(var event) = metric.event {
            event.unit = ""
            metric.event = .metric(event)
        }
        // Real control characters and what COPY's text format would read as a null or an escape.
        let controls = "line\nbreak\ttab\rreturn \\N \\t \\ end"
        var raw = Sample.log(service: "raw")
        if case .log(var event) = raw.event {
            event.message = controls
            raw.event = .log(event)
        }
        #expect(try await target.sink.store([log, metric, raw]) == 3)
        #expect(
            try await target.query("SELECT service, message FROM logs WHERE service <> 'raw'") == [
                ["sérvice ✓ 日本", "quote \" backslash \\ newline \n tab \t end"]
            ])
        #expect(try await target.query("SELECT message FROM logs WHERE service = 'raw'") == [[controls]])
        #expect(try await target.query("SELECT unit, CAST(unit IS NULL AS TEXT) FROM metrics") == [["", engine == .sqlite ? "0" : "false"]])
        await target.close()
    }

    @Test(arguments: SinkEngine.allCases)
    func aBigMixedBatchIsOneTransaction(engine: SinkEngine) async throws {
        let target = try await SinkUnderTest.make(engine)
        try await target.sink.prepare()
        let events = (0..<3_000).map { index -> QueuedEvent in
            switch index % 3 {
            case 0: Sample.log(message: "m\(index)")
            case 1: Sample.metric()
            default: Sample.deployment()
            }
        }
        #expect(try await target.sink.store(events) == 3_000)
        #expect(try await target.count("logs") == 1_000)
        #expect(try await target.count("metrics") == 1_000)
        #expect(try await target.count("deployments") == 1_000)
        await target.close()
    }

    @Test func aLockedSQLiteDatabaseIsUnavailableNotRejected() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("operyn-lock-\(UUID().uuidString)/operyn.sqlite").path
        let sink = SQLiteSink(path: path, busyTimeoutMilliseconds: 100)
        try await sink.prepare()
        let lock = SQLiteLock(path: path)
        do {
            _ = try await sink.store([Sample.log()])
            Issue.record("stored through an exclusive lock")
        } catch {
            #expect(error.code == .unavailable)
        }
        lock.release()
        #expect(try await sink.store([Sample.log()]) == 1)
        await sink.close()
    }

    @Test func anUnreachablePostgresIsUnavailable() async throws {
        let sink = try PostgresSink(url: "postgres://operyn@127.0.0.1:\(try RedisServer.freePort())/none", timeout: .seconds(1))
        let runner = Task { try await sink.run() }
        defer { runner.cancel() }
        do {
            _ = try await sink.store([Sample.log()])
            Issue.record("stored into nothing")
        } catch {
            #expect(error.code == .unavailable)
        }
    }
}
