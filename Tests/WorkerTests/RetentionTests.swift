import Foundation
import Logging
import Prometheus
import Shared
import TestSupport
import Testing

@testable import Sinks
@testable import Worker

/// Events of one kind, organization and day of receipt, made as the gateway makes them.
enum Aged {
    static let day: Int64 = 86_400_000
    /// The clock the retention tests set: 2026-06-15T12:00:00Z.
    static let now = Timestamp(iso8601: "2026-06-15T12:00:00Z")!

    static func events(_ kind: EventKind, org: String, count: Int, receivedAt: Timestamp, message: String = "m") -> [QueuedEvent] {
        (0..<count).map { index in
            var event: QueuedEvent
            switch kind {
            case .logs: event = Sample.log(org: org, message: "\(message)-\(index)")
            case .metrics: event = Sample.metric(org: org)
            case .deployments: event = Sample.deployment(org: org)
            }
            event.receivedAt = Timestamp(milliseconds: receivedAt.milliseconds + Int64(index))
            return event
        }
    }

    /// `days` before `now`.
    static func ago(_ days: Int) -> Timestamp { Timestamp(milliseconds: now.milliseconds - Int64(days) * day) }

    static let proceed: @Sendable () async -> Bool = { true }
}

@Suite("Storage lifecycle: partitions, migration, retention")
struct RetentionTests {
    func count(_ target: SinkUnderTest, _ table: String, org: String) async throws -> Int {
        let rows = try await target.query("SELECT CAST(COUNT(*) AS TEXT) FROM \(table) WHERE org_id = '\(org)'")
        return Int((rows.first?.first ?? nil) ?? "0") ?? 0
    }

    @Test(arguments: SinkEngine.allCases)
    func aDatabaseOfThePreviousSchemaIsMigratedWithEveryRowKept(engine: SinkEngine) async throws {
        let target = try await SinkUnderTest.make(engine)
        defer { Task { await target.close() } }
        // The schema and rows of the previous release: migration 1 alone, 300 logs over three days, metrics and deployments.
        switch engine {
        case .sqlite:
            let path = String(target.url.dropFirst("sqlite:".count))
            try sqliteExecute(
                path: path,
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);" + SQLiteSink.migrations[0]
                    + """
                    ;INSERT INTO schema_migrations VALUES (1, '2026-01-01T00:00:00.000Z');
                    WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 300)
                    INSERT INTO logs (id, org_id, service, level, message, timestamp, received_at)
                    SELECT printf('00000000-0000-4000-8000-%012d', n), 'org_a', 'api', 'info', 'old ' || n, '2026-06-01T00:00:00.000Z',
                        strftime('%Y-%m-%dT%H:%M:%fZ', '2026-06-10', '+' || (n * 15) || ' minutes') FROM g;
                    INSERT INTO metrics (id, org_id, service, name, value, unit, timestamp, received_at)
                        VALUES ('00000000-0000-4000-9000-000000000001', 'org_a', 'api', 'cpu', 1.5, 'percent', '2026-06-10T00:00:00.000Z', '2026-06-10T00:00:00.000Z');
                    INSERT INTO deployments (id, org_id, service, version, environment, timestamp, received_at)
                        VALUES ('00000000-0000-4000-a000-000000000001', 'org_a', 'api', 'v1', 'prod', '2026-06-10T00:00:00.000Z', '2026-06-10T00:00:00.000Z');
                    """)
        case .postgres:
            _ = try await target.query("CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            for statement in PostgresSink.migrations[0] { _ = try await target.query(statement) }
            _ = try await target.query("INSERT INTO schema_migrations (version) VALUES (1)")
            _ = try await target.query(
                """
                INSERT INTO logs (id, org_id, service, level, message, timestamp, received_at)
                SELECT ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, 'org_a', 'api', 'info', 'old ' || n, '2026-06-01',
                    timestamptz '2026-06-10 00:00:00+00' + n * interval '15 minutes' FROM generate_series(1, 300) n
                """)
            _ = try await target.query(
                "INSERT INTO metrics VALUES ('00000000-0000-4000-9000-000000000001', 'org_a', 'api', 'cpu', 1.5, 'percent', '2026-06-10', NULL, '2026-06-10 00:00:00+00')"
            )
            _ = try await target.query(
                "INSERT INTO deployments VALUES ('00000000-0000-4000-a000-000000000001', 'org_a', 'api', 'v1', 'prod', NULL, '2026-06-10', NULL, '2026-06-10 00:00:00+00')"
            )
        }

        try await target.sink.prepare()
        #expect(try await target.count("logs") == 300)
        #expect(try await target.count("metrics") == 1)
        #expect(try await target.count("deployments") == 1)
        #expect(try await target.query("SELECT CAST(MAX(version) AS TEXT) FROM schema_migrations") == [["2"]])
        // A redelivered old event is still stored once; new events are stored beside the old ones.
        var again = Aged.events(.logs, org: "org_a", count: 1, receivedAt: .now)[0]
        let old = try await target.query("SELECT \(target.iso("received_at")) FROM logs WHERE message = 'old 7'")
        again.id = "00000000-0000-4000-8000-000000000007"
        again.receivedAt = Timestamp(iso8601: old[0][0]!)!
        #expect(try await target.sink.store([again] + Aged.events(.logs, org: "org_a", count: 5, receivedAt: .now)) == 5)
        #expect(try await target.count("logs") == 305)
        switch engine {
        case .sqlite:
            let path = String(target.url.dropFirst("sqlite:".count))
            #expect(try sqliteQuery(path: path, "PRAGMA auto_vacuum") == [["2"]], "incremental vacuum turned on")
            let indexes = Set(try sqliteQuery(path: path, "SELECT name FROM sqlite_master WHERE type = 'index'").compactMap(\.first).compactMap { $0 })
            #expect(indexes.isSuperset(of: ["logs_org_received", "metrics_org_received", "deployments_org_received", "logs_org_trace"]))
        case .postgres:
            // The old table is the partition of the days its rows span; today's rows are in today's partition.
            #expect(
                try await target.query(
                    "SELECT name, to_char(lower AT TIME ZONE 'UTC', 'YYYY-MM-DD'), to_char(upper AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM operyn_partitions WHERE name = 'logs_before_partitions'"
                )
                    == [["logs_before_partitions", "2026-06-10", "2026-06-14"]])
            #expect(try await target.count("logs_before_partitions") == 300)
            #expect(try await target.count("logs_default") == 0)
            #expect(try await target.count("ONLY logs_default") == 0)
        }
    }

    @Test func partitionsAreMadeForPastAndFutureDaysAndTheDefaultStaysEmpty() async throws {
        let target = try await SinkUnderTest.make(.postgres)
        defer { Task { await target.close() } }
        try await target.sink.prepare()
        try await target.sink.prepareDays(around: .now)
        let today = Timestamp.now
        let past = Aged.events(.logs, org: "org_a", count: 10, receivedAt: Timestamp(milliseconds: today.milliseconds - 400 * Aged.day))
        let future = Aged.events(.metrics, org: "org_a", count: 10, receivedAt: Timestamp(milliseconds: today.milliseconds + 3 * Aged.day))
        #expect(try await target.sink.store(past + future) == 20)
        let where400 = try await target.query("SELECT DISTINCT CAST(tableoid::regclass AS TEXT) FROM logs")
        let day400 = String(Timestamp(milliseconds: today.milliseconds - 400 * Aged.day).iso8601.prefix(10)).replacingOccurrences(of: "-", with: "")
        #expect(where400 == [["logs_p\(day400)"]])
        let day3 = String(Timestamp(milliseconds: today.milliseconds + 3 * Aged.day).iso8601.prefix(10)).replacingOccurrences(of: "-", with: "")
        #expect(try await target.query("SELECT DISTINCT CAST(tableoid::regclass AS TEXT) FROM metrics") == [["metrics_p\(day3)"]])
        // Yesterday to the day after tomorrow exist ahead of time for every kind.
        for kind in EventKind.allCases {
            let count = try await target.query(
                "SELECT CAST(COUNT(*) AS TEXT) FROM operyn_partitions WHERE parent = '\(kind.rawValue)' AND lower >= now() - interval '2 days' AND upper <= now() + interval '4 days'"
            )
            #expect(Int(count[0][0]!)! >= 4, "\(kind) partitions ahead")
        }
        #expect(try await target.count("logs_default") == 0)
        #expect(try await target.count("metrics_default") == 0)

        // A row that reached the default partition (a day made by no worker) moves into its partition when it is made.
        let stray = "2020-02-02"
        _ = try await target.query(
            "INSERT INTO logs (id, org_id, service, level, message, timestamp, received_at) VALUES (gen_random_uuid(), 'org_a', 'api', 'info', 'stray', now(), '\(stray) 12:00:00+00')"
        )
        #expect(try await target.count("logs_default") == 1)
        #expect(try await target.sink.store(Aged.events(.logs, org: "org_a", count: 1, receivedAt: Timestamp(iso8601: "\(stray)T13:00:00Z")!)) == 1)
        #expect(try await target.count("logs_default") == 0)
        #expect(try await target.count("logs_p20200202") == 2)
    }

    @Test(arguments: SinkEngine.allCases)
    func aRedeliveryAcrossUTCMidnightIsStoredOnce(engine: SinkEngine) async throws {
        let target = try await SinkUnderTest.make(engine)
        defer { Task { await target.close() } }
        try await target.sink.prepare()
        let beforeMidnight = Aged.events(.logs, org: "org_a", count: 1, receivedAt: Timestamp(iso8601: "2026-06-14T23:59:59.999Z")!)[0]
        #expect(try await target.sink.store([beforeMidnight]) == 1)
        // The worker dies before acknowledging; after midnight another redelivers the entry beside new events.
        let afterMidnight = Aged.events(.logs, org: "org_a", count: 3, receivedAt: Timestamp(iso8601: "2026-06-15T00:00:00.000Z")!)
        #expect(try await target.sink.store([beforeMidnight] + afterMidnight) == 3)
        #expect(try await target.count("logs") == 4)
        #expect(try await target.query("SELECT CAST(COUNT(*) AS TEXT) FROM logs WHERE id = '\(beforeMidnight.id)'") == [["1"]])
    }

    /// Org a: default (30 days); org b: 7 days for every kind; org c: 90 days for logs. Rows 1, 10, 40, 100 and 200
    /// days old of each kind and organization.
    static let policy = RetentionPolicy(defaultDays: 30, overrides: ["org_b": [nil: 7], "org_c": [.logs: 90]])
    static let ages = [1, 10, 40, 100, 200]

    func populate(_ target: SinkUnderTest) async throws {
        for kind in EventKind.allCases {
            for org in ["org_a", "org_b", "org_c"] {
                for age in Self.ages {
                    _ = try await target.sink.store(Aged.events(kind, org: org, count: 20, receivedAt: Aged.ago(age), message: "\(org)-\(age)"))
                }
            }
        }
    }

    /// Rows left when `policy` holds: those younger than the organization's retention of the kind.
    func expected(_ kind: EventKind, _ org: String, _ policy: RetentionPolicy) -> Int {
        guard let days = policy.days(organization: org, kind: kind) else { return Self.ages.count * 20 }
        return Self.ages.filter { $0 < days }.count * 20
    }

    @Test(arguments: SinkEngine.allCases)
    func retentionByDefaultByOrganizationAndByKind(engine: SinkEngine) async throws {
        let target = try await SinkUnderTest.make(engine)
        defer { Task { await target.close() } }
        try await target.sink.prepare()
        try await populate(target)

        // Unset, nothing expires.
        let none = try await target.sink.expire(RetentionPolicy(), now: Aged.now, stepRows: 7, proceed: Aged.proceed)
        #expect(none.expiredRows.isEmpty && none.droppedPartitions.isEmpty && none.finished)
        for kind in EventKind.allCases { #expect(try await target.count(kind.rawValue) == 300) }

        let outcome = try await target.sink.expire(Self.policy, now: Aged.now, stepRows: 7, proceed: Aged.proceed)
        #expect(outcome.finished)
        for kind in EventKind.allCases {
            for org in ["org_a", "org_b", "org_c"] {
                #expect(try await count(target, kind.rawValue, org: org) == expected(kind, org, Self.policy), "\(kind) of \(org)")
            }
        }
        if engine == .postgres {
            // Logs keep 90 days for org c: the 100- and 200-day partitions go whole; metrics and deployments keep 30.
            #expect(outcome.droppedPartitions == [.logs: 2, .metrics: 3, .deployments: 3])
            #expect(outcome.expiredRows[.logs] == 20 * 3, "org a's and org b's 40-day logs, org b's 10-day logs")
        } else {
            let expired = EventKind.allCases.map { outcome.expiredRows[$0] ?? 0 }.reduce(0, +)
            var kept = 0
            for kind in EventKind.allCases {
                for org in ["org_a", "org_b", "org_c"] { kept += expected(kind, org, Self.policy) }
            }
            #expect(expired == 900 - kept)
        }
        // A second run finds nothing more.
        let again = try await target.sink.expire(Self.policy, now: Aged.now, stepRows: 7, proceed: Aged.proceed)
        #expect(again.expiredRows.values.reduce(0, +) == 0 && again.droppedPartitions.isEmpty)

        let storage = try await target.sink.storage()
        #expect(storage[.logs]?.oldestDay == String(Aged.ago(40).iso8601.prefix(10)), "org c's 40-day-old logs are the oldest left")
        if engine == .postgres { #expect((storage[.logs]?.partitions ?? 0) >= 3) }
    }

    @Test(arguments: SinkEngine.allCases)
    func twoRetentionRunsAtOnceExpireEachRowOnce(engine: SinkEngine) async throws {
        let target = try await SinkUnderTest.make(engine)
        defer { Task { await target.close() } }
        try await target.sink.prepare()
        try await populate(target)
        let second: any EventSink =
            engine == .sqlite ? SQLiteSink(path: String(target.url.dropFirst("sqlite:".count))) : try PostgresSink(url: target.url)
        let runner = (second as? PostgresSink).map { sink in Task { try await sink.run() } }
        defer { runner?.cancel() }
        try await second.prepare()
        let policy = RetentionPolicy(defaultDays: 5)
        async let first = target.sink.expire(policy, now: Aged.now, stepRows: 3, proceed: Aged.proceed)
        async let other = second.expire(policy, now: Aged.now, stepRows: 3, proceed: Aged.proceed)
        let outcomes = try await [first, other]
        for kind in EventKind.allCases { #expect(try await target.count(kind.rawValue) == 60, "\(kind): the 1-day-old rows of three organizations") }
        if engine == .sqlite {
            let expired: Int = outcomes.map { $0.expiredRows.values.reduce(0, +) }.reduce(0, +)
            #expect(expired == 3 * 240, "each row deleted once between them")
        }
        await second.close()
    }

    @Test func oneWorkerAtATimeHoldsTheRetentionLease() async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        try await harness.sink.prepare()
        _ = try await harness.sink.store(Aged.events(.logs, org: "org_a", count: 50, receivedAt: Aged.ago(10)))
        let registry = PrometheusCollectorRegistry()
        func runner(_ name: String) -> RetentionRunner {
            var settings = RetentionSettings()
            settings.defaultDays = 3
            return RetentionRunner(
                redis: harness.redis, keys: harness.keys, sink: harness.sink, settings: settings, holder: name,
                metrics: WorkerMetrics(factory: PrometheusMetricsFactory(registry: registry)), logger: Logger(label: "test"))
        }
        let a = runner("worker-a")
        let b = runner("worker-b")
        #expect(await a.renew())
        #expect(await b.runOnce(now: Aged.now) == nil, "b waits while a holds the lease")
        #expect(try harness.count("logs") == 50)
        let outcome = await a.runOnce(now: Aged.now)
        #expect(outcome?.expiredRows[.logs] == 50)
        var text: [UInt8] = []
        registry.emit(into: &text)
        let metrics = String(decoding: text, as: UTF8.self)
        #expect(metrics.contains(#"operyn_worker_retention_expired_rows_total{kind="logs"} 50"#), "\(metrics)")
        #expect(metrics.contains(#"operyn_worker_retention_runs_total{outcome="finished"} 1"#))
        #expect(try await harness.redis.send(HGETALL(harness.keys.retentionLease)).isEmpty, "given up after the run")
        // The report is published for operyn-admin and GET /usage.
        let published = try await StorageReport.read(redis: harness.redis, keys: harness.keys)
        #expect(published.published && published.defaultDays == 3)
        #expect(published.reports[.logs] == StorageReport(oldestDay: nil, partitions: 0, bytes: published.reports[.logs]!.bytes))
        #expect(await b.runOnce(now: Aged.now) != nil, "b runs once a is done")
    }

    @Test func overridesAreReadFromRedis() async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        _ = try await harness.redis.send(HSET(harness.keys.settings(org: "org_b"), fields: [("retention_days", "7"), ("retention_days:logs", "2")]))
        _ = try await harness.redis.send(SADD(harness.keys.retentionOrganizations, members: ["org_b"]))
        let policy = try await RetentionPolicy.read(redis: harness.redis, keys: harness.keys, defaultDays: 30)
        #expect(policy == RetentionPolicy(defaultDays: 30, overrides: ["org_b": [nil: 7, .logs: 2]]))
        #expect(policy.days(organization: "org_b", kind: .logs) == 2)
        #expect(policy.days(organization: "org_b", kind: .metrics) == 7)
        #expect(policy.days(organization: "org_a", kind: .metrics) == 30)
        #expect(policy.longest(.logs) == 30)
        #expect(RetentionPolicy(overrides: ["org_b": [nil: 7]]).longest(.logs) == nil, "the default keeps for ever")
    }

    /// `OPERYN_MAX_STRING_BYTES` far above 1 KiB: the indexed texts stay within 1 KiB (the gateway says so with a 400),
    /// and the widest of them fit PostgreSQL's btree rows, so an accepted event is never dead-lettered for its index.
    @Test func theWidestAcceptedIndexedTextsFitEveryIndex() async throws {
        var limits = EventLimits()
        limits.maxStringBytes = 8_192
        let validator = EventValidator(limits: limits)
        func text(_ bytes: Int) -> String { String((0..<bytes).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ".randomElement()! }) }
        let wide = EventLimits.indexedBytesCeiling
        do {
            _ = try validator.event(.logs, body: Array(#"{"service":"\#(text(wide + 1))","level":"info","message":"m"}"#.utf8))
            Issue.record("a service past the indexed bound was accepted")
        } catch {
            #expect(error.message.contains("service"), "\(error.message)")
            #expect(error.message.contains("\(wide)"), "\(error.message)")
        }
        #expect(throws: ValidationError.self) {
            try validator.event(.deployments, body: Array(#"{"service":"s","version":"v","environment":"\#(text(wide + 1))"}"#.utf8))
        }
        let org = String(repeating: "o", count: 64)
        let events = [
            QueuedEvent(
                id: UUID().uuidString.lowercased(), org: org, receivedAt: .now,
                event: try validator.event(
                    .logs, body: Array(#"{"service":"\#(text(wide))","level":"info","message":"m","traceId":"\#(text(wide))"}"#.utf8))),
            QueuedEvent(
                id: UUID().uuidString.lowercased(), org: org, receivedAt: .now,
                event: try validator.event(.metrics, body: Array(#"{"service":"\#(text(wide))","name":"\#(text(wide))","value":1,"unit":"u"}"#.utf8))),
            QueuedEvent(
                id: UUID().uuidString.lowercased(), org: org, receivedAt: .now,
                event: try validator.event(
                    .deployments, body: Array(#"{"service":"\#(text(wide))","version":"\#(text(8_000))","environment":"\#(text(wide))"}"#.utf8))),
        ]
        for engine in SinkEngine.allCases {
            let target = try await SinkUnderTest.make(engine)
            try await target.sink.prepare()
            #expect(try await target.sink.store(events) == 3, "\(engine)")
            await target.close()
        }
    }

    /// Day after day of the same volume under a retention that holds: the file stops growing (freed pages are
    /// reused, and released by incremental vacuum).
    @Test func aSQLiteFileStopsGrowingOnceRetentionHolds() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("operyn-steady-\(UUID().uuidString)/operyn.sqlite").path
        let sink = SQLiteSink(path: path)
        try await sink.prepare()
        let policy = RetentionPolicy(defaultDays: 2)
        var sizes: [Int] = []
        for day in 0..<8 {
            let now = Timestamp(milliseconds: Aged.now.milliseconds + Int64(day) * Aged.day)
            for batch in 0..<5 {
                _ = try await sink.store(
                    Aged.events(.logs, org: "org_a", count: 400, receivedAt: now, message: "\(day)-\(batch)-\(String(repeating: "z", count: 300))"))
            }
            _ = try await sink.expire(policy, now: now, stepRows: 500, proceed: Aged.proceed)
            let pages = try sqliteQuery(path: path, "PRAGMA page_count")
            sizes.append(Int(pages[0][0]!)!)
        }
        // Kept: rows received at or after two days before the last day's clock: that day's and the two before.
        #expect(try sqliteQuery(path: path, "SELECT COUNT(*) FROM logs") == [["6000"]])
        // From the third day on, each day's rows take the pages the expired day left.
        #expect(sizes[7] <= sizes[3] + sizes[3] / 10, "pages per day: \(sizes)")
        await sink.close()
    }

    @Test func aFullSQLiteFileIsUnavailableAndRetentionFreesIt() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("operyn-full-\(UUID().uuidString)/operyn.sqlite").path
        let sink = SQLiteSink(path: path, maxPageCount: 800)
        try await sink.prepare()
        var stored: [QueuedEvent] = []
        var failure: SinkError?
        // Old rows, then today's until the file is full.
        let big = String(repeating: "x", count: 2_000)
        for round in 0..<400 {
            let batch = Aged.events(.logs, org: "org_a", count: 20, receivedAt: round < 10 ? Aged.ago(60) : Aged.now, message: "\(round)-\(big)")
            do {
                _ = try await sink.store(batch)
                stored += batch
            } catch {
                failure = error
                // The batch waits (in Redis, in the worker): unavailable, not rejected.
                #expect(error.code == .unavailable, "\(error)")
                #expect(error.message.contains("full"), "\(error)")
                let outcome = try await sink.expire(RetentionPolicy(defaultDays: 30), now: Aged.now, stepRows: 100, proceed: Aged.proceed)
                #expect(outcome.expiredRows[.logs] == 200)
                #expect(try await sink.store(batch) == 20, "the waiting batch is stored once space is back")
                stored += batch
                break
            }
        }
        #expect(failure != nil, "the file filled up")
        let left = try sqliteQuery(path: path, "SELECT COUNT(*) FROM logs")
        #expect(left == [[String(stored.count - 200)]])
        await sink.close()
    }

    /// On the small filesystem `scripts/test.sh` mounts where the machine lets it (it says so when it cannot).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["OPERYN_TEST_SMALL_DISK"] != nil, "no small filesystem (OPERYN_TEST_SMALL_DISK)"))
    func aFullPostgreSQLTablespaceIsUnavailableAndDroppingAPartitionFreesIt() async throws {
        let disk = ProcessInfo.processInfo.environment["OPERYN_TEST_SMALL_DISK"]!
        let directory = disk + "/pg-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if getuid() == 0 { try FileManager.default.setAttributes([.ownerAccountName: "postgres"], ofItemAtPath: directory) }
        let url = try await PostgresTestDatabase.create()
        let database = String(URLComponents(string: url)!.path.dropFirst())
        let space = "small_\(database)"
        _ = try await PostgresTestDatabase.query(url: url, "CREATE TABLESPACE \(space) LOCATION '\(directory)'")
        _ = try await PostgresTestDatabase.query(url: url, "ALTER DATABASE \(database) SET default_tablespace = \(space)")
        let sink = try PostgresSink(url: url, timeout: .seconds(5))
        let runner = Task { try await sink.run() }
        var failure: (any Error)?
        do { try await fillAndFree(sink, url: url) } catch { failure = error }
        runner.cancel()
        // The small filesystem is shared: give its space back before anything else can fail.
        _ = try? await PostgresTestDatabase.query(url: try PostgresTestDatabase.serverURL, "DROP DATABASE IF EXISTS \(database) WITH (FORCE)")
        _ = try? await PostgresTestDatabase.query(url: try PostgresTestDatabase.serverURL, "DROP TABLESPACE IF EXISTS \(space)")
        if let failure { throw failure }
    }

    private func fillAndFree(_ sink: PostgresSink, url: String) async throws {
        try await sink.prepare()
        let big = String(repeating: "y", count: 4_000)
        var stored = 0
        var failure: SinkError?
        for round in 0..<2_000 {
            // Incompressible enough: each message differs.
            let batch = Aged.events(.logs, org: "org_a", count: 50, receivedAt: round < 20 ? Aged.ago(60) : .now, message: "\(round)-\(UUID())-\(big)")
            do {
                stored += try await sink.store(batch)
            } catch {
                failure = error
                #expect(error.code == .unavailable, "\(error)")
                #expect(error.message.contains("53100"), "\(error)")
                let outcome = try await sink.expire(RetentionPolicy(defaultDays: 30), now: .now, stepRows: 1_000, proceed: Aged.proceed)
                #expect(outcome.droppedPartitions[.logs] == 1, "the old day's partition dropped")
                #expect(try await sink.store(batch) == 50, "the waiting batch is stored once space is back")
                stored += 50
                break
            }
        }
        #expect(failure != nil, "the tablespace filled up")
        let left = try await PostgresTestDatabase.query(url: url, "SELECT CAST(COUNT(*) AS TEXT) FROM logs")
        #expect(left == [[String(stored - 1_000)]])
    }
}
