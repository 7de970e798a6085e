import Foundation
import PostgresNIO
import Shared
import TestSupport
import Testing

@testable import Sinks
@testable import Worker

@Suite("Worker on the real Redis and SQLite")
struct ConsumerTests {
    @Test(arguments: EntryFormat.both)
    func storesEveryEventAndEmptiesTheStream(format: EntryFormat) async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        let events = try await harness.publish(
            (0..<300).map { Sample.log(service: "svc-\($0 % 3)", message: "m\($0)") } + [Sample.metric(), Sample.deployment()], as: format)
        let done = try await harness.run(harness.consumer()) { (try? harness.count("logs")) == 300 && (try? harness.count("metrics")) == 1 }
        #expect(done)
        #expect(try harness.count("deployments") == 1)
        #expect(try await harness.pending() == 0)
        #expect(try await harness.redis.send(XLEN(harness.keys.stream(.logs))) == 0, "acknowledged entries are deleted")
        #expect(try await harness.redis.send(HGET(harness.keys.counts(org: "default"), field: "stored:logs")) == "300")
        #expect(Set(try harness.query("SELECT id FROM logs").compactMap(\.first)) == Set(events.prefix(300).map(\.id)))
    }

    @Test(arguments: EntryFormat.both)
    func redeliveryMakesNoDuplicate(format: EntryFormat) async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        let events = (0..<50).map { _ in Sample.log() }
        try await harness.publish(events, as: format)
        #expect(try await harness.run(harness.consumer()) { (try? harness.count("logs")) == 50 })
        try await harness.publish(events, as: format)  // the same event ids again, as after a crash before XACK
        #expect(try await harness.run(harness.consumer()) { try await harness.redis.send(XLEN(harness.keys.stream(.logs))) == 0 })
        #expect(try harness.count("logs") == 50)
    }

    @Test(arguments: EntryFormat.both)
    func quotaAdmitsFiveServicesForTheDefaultOrganization(format: EntryFormat) async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        let events = (1...8).map { Sample.log(service: "svc-\($0)") } + [Sample.metric(service: "svc-1"), Sample.deployment(service: "svc-7")]
        try await harness.publish(events, as: format)
        #expect(
            try await harness.run(harness.consumer()) {
                let pending = try await harness.pending()
                return pending == 0 && (try? harness.count("logs")) == 5
            })
        #expect(try harness.count("metrics") == 1 && harness.count("deployments") == 0)
        #expect(Set(try harness.query("SELECT service FROM logs").compactMap(\.first)) == Set((1...5).map { "svc-\($0)" }), "the first five, in order")
        #expect(try await harness.redis.send(SCARD(harness.keys.services(org: "default"))) == 5)
        let rejected = try await harness.redis.send(RawCommand("XRANGE", harness.keys.rejectedStream, "-", "+"))
        #expect(rejected.array?.count == 4)
        #expect(try await harness.redis.send(HGET(harness.keys.counts(org: "default"), field: "rejected:service_quota_exceeded")) == "4")
        #expect(try await harness.redis.send(XLEN(harness.keys.stream(.logs))) == 0, "rejected events are acknowledged too")
    }

    @Test func tenWorkersRacingAdmitExactlyFive() async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        let clients = try (0..<10).map { _ in try TestRedis.client() }
        let admitted = try await withThrowingTaskGroup(of: Bool.self) { group in
            for (index, client) in clients.enumerated() {
                group.addTask {
                    try await QuotaEnforcer(redis: client, keys: harness.keys, defaultLimit: 100).admit(org: "default", service: "svc-\(index)")
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(admitted == 5)
        // A sixth service raced by ten workers still gets nothing; a known one always passes.
        let sixth = try await withThrowingTaskGroup(of: Bool.self) { group in
            for client in clients {
                group.addTask { try await QuotaEnforcer(redis: client, keys: harness.keys, defaultLimit: 100).admit(org: "default", service: "late") }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(sixth == 0)
        let members = try await harness.redis.send(SMEMBERS(harness.keys.services(org: "default")))
        #expect(try await QuotaEnforcer(redis: harness.redis, keys: harness.keys, defaultLimit: 100).admit(org: "default", service: members[0]))
        _ = try await harness.redis.send(HSET(harness.keys.settings(org: "org_a"), fields: [("service_limit", "1")]))
        let enforcer = QuotaEnforcer(redis: harness.redis, keys: harness.keys, defaultLimit: 100)
        #expect(try await enforcer.admit(org: "org_a", service: "one"))
        #expect(try await !enforcer.admit(org: "org_a", service: "two"), "the per-organization override applies")
        #expect(try await enforcer.admit(org: "org_b", service: "six"))
        #expect(try await enforcer.admit(org: "org_b", service: "seven"))
        for client in clients { client.shutdown() }
    }

    @Test func aPoisonEntryIsDeadLetteredWhileGoodEntriesFlow() async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        try await harness.publish([Sample.log()])
        _ = try await harness.redis.send(RawCommand("XADD", harness.keys.stream(.logs), "*", "v", "1", "kind", "logs", "garbage", "yes"))
        try await harness.publish([Sample.log()])
        #expect(
            try await harness.run(harness.consumer()) {
                let pending = try await harness.pending()
                return pending == 0 && (try? harness.count("logs")) == 2
            })
        let letters = try await harness.redis.send(RawCommand("XRANGE", harness.keys.deadLetterStream, "-", "+"))
        let fields = try #require(letters.array?.first?.array?[1].array).compactMap(\.string)
        #expect(letters.array?.count == 1)
        #expect(fields.contains("dlq_reason") && fields.contains("undecodable stream entry: missing field 'level'"))
        #expect(fields.contains("garbage"), "the original fields are kept")
    }

    @Test(arguments: EntryFormat.both)
    func entriesTheDatabaseRefusesAreRetriedThenDeadLettered(format: EntryFormat) async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        let poison = Sample.log(message: "refuse me")
        try await harness.publish([Sample.log(), poison, Sample.log()], as: format)
        let sink = RefusingSink(inner: harness.sink, refusedID: poison.id)
        #expect(try await harness.runRetryingUntilDeadLettered(1, sink: sink))
        #expect(try harness.count("logs") == 2)
        #expect(try await harness.redis.send(RawCommand("HLEN", harness.keys.attempts)) == .integer(0))
    }

    /// An acknowledgement sent twice (its reply lost after Redis ran it, then retried) counts each entry once.
    @Test func countersAreExactWhenAnAcknowledgementIsRetried() async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        _ = try await harness.redis.send(XGROUPCREATE(harness.keys.stream(.logs), group: harness.keys.consumerGroup))
        try await harness.publish((0..<1_500).map { _ in Sample.log(org: "org_a") } + [Sample.log(org: "org_b")])
        let read = try await harness.reader.send(
            XREADGROUP(group: harness.keys.consumerGroup, consumer: "c1", count: 2_000, block: nil, streams: [(harness.keys.stream(.logs), ">")]))
        let ids = try #require(read.first?.entries.map(\.id))
        #expect(ids.count == 1_501)
        var done = Acknowledgement()
        for id in ids.prefix(1_400) { done.add(id, kind: .logs, org: "org_a", field: "stored:logs") }
        for id in ids.dropFirst(1_400).prefix(100) { done.add(id, kind: .logs, org: "org_a", field: "rejected:service_quota_exceeded") }
        done.add(ids[1_500], kind: .logs)
        let first = try await done.send(on: harness.redis, keys: harness.keys)
        let again = try await done.send(on: harness.redis, keys: harness.keys)
        #expect(first.map(\.acknowledged).reduce(0, +) == 1_501)
        #expect(again.map(\.acknowledged).reduce(0, +) == 0)
        let counts = try await harness.redis.send(RawCommand("HGETALL", harness.keys.counts(org: "org_a")))
        let pairs = (counts.array ?? []).compactMap(\.string)
        let counters: [String: String] = Dictionary(uniqueKeysWithValues: stride(from: 0, to: pairs.count, by: 2).map { (pairs[$0], pairs[$0 + 1]) })
        #expect(counters == ["stored:logs": "1400", "rejected:service_quota_exceeded": "100"])
        #expect(try await harness.redis.send(XPENDING(harness.keys.stream(.logs), group: harness.keys.consumerGroup)).count == 0)
    }

    /// An entry that counts several events towards several fields (a chunk: some stored, some over quota) adds its
    /// amounts once, however often its acknowledgement is sent.
    @Test func entriesCountingSeveralEventsAddTheirAmountsOnce() async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        _ = try await harness.redis.send(XGROUPCREATE(harness.keys.stream(.logs), group: harness.keys.consumerGroup))
        try await harness.publish((0..<12).map { _ in Sample.log(org: "org_c") })
        let read = try await harness.reader.send(
            XREADGROUP(group: harness.keys.consumerGroup, consumer: "c1", count: 20, block: nil, streams: [(harness.keys.stream(.logs), ">")]))
        let ids = try #require(read.first?.entries.map(\.id))
        var done = Acknowledgement()
        let mixed = [Acknowledgement.Count(field: "stored:logs", amount: 7), .init(field: "rejected:service_quota_exceeded", amount: 3)]
        for id in ids.prefix(10) { done.add(id, kind: .logs, org: "org_c", counts: mixed) }
        for id in ids.suffix(2) { done.add(id, kind: .logs, org: "org_c", field: "stored:logs") }
        // Half of the first group is acknowledged already (by another consumer, or a lost reply).
        var earlier = Acknowledgement()
        for id in ids.prefix(5) { earlier.add(id, kind: .logs, org: "org_c", counts: mixed) }
        _ = try await earlier.send(on: harness.redis, keys: harness.keys)
        let answers = try await done.send(on: harness.redis, keys: harness.keys)
        #expect(answers.map(\.acknowledged).sorted() == [2, 5])
        _ = try await done.send(on: harness.redis, keys: harness.keys)
        let counts = try await harness.redis.send(HGETALL(harness.keys.counts(org: "org_c")))
        #expect(counts == ["stored:logs": "72", "rejected:service_quota_exceeded": "30"])
    }

    @Test func deletingNeverRemovesAnUnacknowledgedEntry() async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        try await harness.publish((0..<10).map { _ in Sample.log() })
        _ = try await harness.redis.send(XGROUPCREATE(harness.keys.stream(.logs), group: harness.keys.consumerGroup))
        // A consumer that crashes after reading four entries.
        _ = try await harness.redis.send(
            XREADGROUP(group: harness.keys.consumerGroup, consumer: "crashed", count: 4, streams: [(harness.keys.stream(.logs), ">")]))
        let crashed = try await harness.redis.send(XPENDINGRange(harness.keys.stream(.logs), group: harness.keys.consumerGroup, count: 10)).map(\.id)
        #expect(crashed.count == 4)
        #expect(try await harness.run(harness.consumer()) { (try? harness.count("logs")) == 6 })
        // The trim stops at the oldest pending entry: the crashed consumer's four and the six acknowledged after them stay.
        _ = try await harness.redis.send(TrimAcknowledged(harness.keys.stream(.logs)))
        let kept = try await harness.redis.send(XRANGE(harness.keys.stream(.logs))).map(\.id)
        #expect(kept.count == 10 && Array(kept.prefix(4)) == crashed, "the crashed consumer's entries stay")
        // Once they have been idle long enough, another worker takes them over; then everything is trimmed.
        #expect(try await harness.run(harness.consumer(name: "c2", claimIdle: 200)) { (try? harness.count("logs")) == 10 })
        #expect(try await harness.pending() == 0)
        #expect(try await harness.redis.send(XLEN(harness.keys.stream(.logs))) == 0)
    }

    @Test func theTrimKeepsWhatAnyGroupStillNeeds() async throws {
        let redis = try TestRedis.client()
        defer { redis.shutdown() }
        let stream = TestRedis.prefix() + ":trim"
        let trimmer = StreamTrimmer(redis: redis)
        func ids() async throws -> [String] { try await redis.send(XRANGE(stream)).map(\.id) }
        // Ids with huge sequence numbers: compared as numbers, not as text or doubles.
        let written = ["1-0", "1-9", "1-10", "2-18446744073709551614", "2-18446744073709551615", "10-0"]
        for id in written { _ = try await redis.send(RawCommand("XADD", stream, id, "f", "v")) }
        #expect(try await trimmer.trim(stream) == 0, "a stream without a group keeps everything")
        _ = try await redis.send(XGROUPCREATE(stream, group: "a", startId: "0"))
        _ = try await redis.send(XGROUPCREATE(stream, group: "b", startId: "0"))
        func read(_ group: String, _ count: Int) async throws -> [String] {
            try await redis.send(XREADGROUP(group: group, consumer: "c", count: count, streams: [(stream, ">")])).flatMap(\.entries).map(\.id)
        }
        func ack(_ group: String, _ ids: [String]) async throws { _ = try await redis.send(XACK(stream, group: group, ids: ids)) }

        // a needs 1-10 next, b needs 1-9: numerically 1-9 comes first (as text, 1-10 would).
        try await ack("a", try await read("a", 2))
        try await ack("b", try await read("b", 1))
        #expect(try await trimmer.trim(stream) == 1)
        #expect(try await ids() == Array(written[1...]))
        // a needs …615 next, b needs …614: equal as doubles, not as numbers.
        try await ack("a", try await read("a", 2))
        try await ack("b", try await read("b", 2))
        #expect(try await trimmer.trim(stream) == 2)
        #expect(try await ids() == Array(written[3...]))
        // An oldest pending entry holds the head however much was acknowledged after it.
        try await ack("a", try await read("a", 2))
        let pending = try await read("b", 3)
        try await ack("b", Array(pending[1...]))
        #expect(try await trimmer.trim(stream) == 0)
        try await ack("b", [pending[0]])
        #expect(try await trimmer.trim(stream) == 3)
        #expect(try await ids() == [])
        _ = try await redis.send(DEL([stream]))
    }

    @Test func silentConsumersWithNothingPendingAreRemoved() async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        let stream = harness.keys.stream(.logs)
        let group = harness.keys.consumerGroup
        try await harness.publish((0..<4).map { _ in Sample.log() })
        _ = try await harness.redis.send(XGROUPCREATE(stream, group: group))
        func read(_ consumer: String, _ count: Int) async throws -> [String] {
            try await harness.redis.send(XREADGROUP(group: group, consumer: consumer, count: count, streams: [(stream, ">")])).flatMap(\.entries).map(\.id)
        }
        @Sendable func consumers() async throws -> Set<String> {
            Set(try await harness.redis.send(RawCommand("XINFO", "CONSUMERS", stream, group)).array?.compactMap { $0.array?[1].string } ?? [])
        }
        _ = try await harness.redis.send(XACK(stream, group: group, ids: try await read("gone", 2)))  // a worker that finished and left
        _ = try await read("holder", 1)  // a worker that died holding an entry: its entry must stay claimable
        _ = try await harness.redis.send(XACK(stream, group: group, ids: try await read("me", 1)))  // this worker: kept though idle and empty
        let idle = IdleConsumers(redis: harness.redis, group: group, keep: "me", minIdleMilliseconds: 100)
        #expect(try await IdleConsumers(redis: harness.redis, group: group, keep: "me", minIdleMilliseconds: 60_000).remove(from: stream) == 0)
        try await Task.sleep(for: .milliseconds(150))
        #expect(try await idle.remove(from: stream) == 1)
        #expect(try await consumers() == ["holder", "me"])

        // The worker does the same on its claim cycle.
        _ = try await harness.redis.send(
            XACK(stream, group: group, ids: try await harness.redis.send(XPENDINGRange(stream, group: group, count: 10)).map(\.id)))
        #expect(try await harness.run(harness.consumer(name: "w", claimIdle: 200, consumerExpiry: 300)) { try await consumers() == ["w"] })
    }

    @Test func aLockedDatabaseHoldsTheBatchUntilItIsFree() async throws {
        let harness = try WorkerHarness(busyTimeoutMilliseconds: 50)
        defer { Task { await harness.cleanUp() } }
        try await harness.sink.prepare()
        try await harness.publish((0..<20).map { _ in Sample.log() })
        let lock = SQLiteLock(path: harness.databasePath)
        let task = Task { try await harness.consumer().run() }
        // The worker's start may itself wait out the lock (a busy schema check, retried): wait until it has read.
        var pending = 0
        for _ in 0..<100 where pending < 20 {
            try await Task.sleep(for: .milliseconds(100))
            pending = try await harness.pending()
        }
        try await Task.sleep(for: .milliseconds(1_000))
        #expect(try await harness.pending() == 20, "nothing is acknowledged while the database is locked")
        lock.release()
        var stored = false
        for _ in 0..<100 where !stored {
            try await Task.sleep(for: .milliseconds(100))
            stored = (try? harness.count("logs")) == 20
        }
        #expect(stored)
        var drained = false
        for _ in 0..<50 where !drained {
            drained = try await harness.pending() == 0
            if !drained { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(drained)
        task.cancel()
        _ = await task.result
    }
}

/// A sink that refuses one event id as a database would refuse a bad row.
struct RefusingSink: WrappingSink {
    let inner: any EventSink
    let refusedID: String

    func store(_ events: [QueuedEvent]) async throws(SinkError) -> Int {
        if events.contains(where: { $0.id == refusedID }) { throw SinkError(code: .rejected, message: "value too long for column") }
        return try await inner.store(events)
    }
}

/// A sink that passes everything to `inner` but what it implements itself (`store`, as a rule).
protocol WrappingSink: EventSink {
    var inner: any EventSink { get }
}

extension WrappingSink {
    func prepare() async throws(SinkError) { try await inner.prepare() }

    func close() async { await inner.close() }

    func prepareDays(around now: Timestamp) async throws(SinkError) { try await inner.prepareDays(around: now) }

    func expire(_ policy: RetentionPolicy, now: Timestamp, stepRows: Int, proceed: @Sendable () async -> Bool) async throws(SinkError)
        -> RetentionOutcome
    {
        try await inner.expire(policy, now: now, stepRows: stepRows, proceed: proceed)
    }

    func storage() async throws(SinkError) -> [EventKind: StorageReport] { try await inner.storage() }
}

@Suite("Worker into both engines")
struct EngineConsumerTests {
    @Test(arguments: SinkEngine.allCases, EntryFormat.both)
    func theFullPathFromStreamToRow(engine: SinkEngine, format: EntryFormat) async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        let target = try await SinkUnderTest.make(engine)
        let events = (0..<200).map { Sample.log(service: "svc-\($0 % 2)", message: "m\($0)") } + [Sample.metric(), Sample.deployment()]
        try await harness.publish(events, as: format)
        let consumer = harness.consumer(sink: target.sink)
        let done = try await harness.run(consumer) {
            let logs = try? await target.count("logs")
            let deployments = try? await target.count("deployments")
            return logs == 200 && deployments == 1
        }
        #expect(done)
        #expect(try await target.count("metrics") == 1)
        #expect(try await harness.pending() == 0)
        let ids = Set(try await target.query("SELECT CAST(id AS TEXT) FROM logs").compactMap { $0.first ?? nil })
        #expect(ids == Set(events.prefix(200).map(\.id)))
        await target.close()
    }
}

@Suite("Worker on PostgreSQL with poison entries")
struct PostgresPoisonTests {
    /// Poison entries among a thousand good ones: the good ones are stored at once, each poison entry is dead-lettered
    /// alone with PostgreSQL's message after its attempts, nothing stays pending.
    @Test(arguments: EntryFormat.both)
    func poisonEntriesAreDeadLetteredAndTheRestFlows(format: EntryFormat) async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        let target = try await SinkUnderTest.make(.postgres)
        let poison = Sample.poison()
        var events = (0..<1_000).map { Sample.log(message: "good \($0)") }
        for (index, event) in poison.enumerated() { events.insert(event, at: 100 + index * 250) }
        try await harness.publish(events, as: format)
        let consumer = harness.consumer(claimIdle: 200, maxAttempts: 2, sink: target.sink)
        let done = try await harness.run(consumer, seconds: 30) {
            let letters: Int = try await harness.redis.send(XLEN(harness.keys.deadLetterStream))
            let pending = try await harness.pending()
            return letters == poison.count && pending == 0
        }
        #expect(done)
        #expect(try await target.count("logs") == 1_000)
        let letters = try await harness.redis.send(RawCommand("XRANGE", harness.keys.deadLetterStream, "-", "+"))
        for letter in letters.array ?? [] {
            let fields = (letter.array?[1].array ?? []).compactMap(\.string)
            let reason = fields.firstIndex(of: "dlq_reason").map { fields[$0 + 1] } ?? ""
            #expect(reason.hasPrefix("PostgreSQL 22"), "\(reason)")
            #expect(fields.firstIndex(of: "dlq_attempts").map { fields[$0 + 1] } == "2")
        }
        await target.close()
    }
}

@Suite("Worker when PostgreSQL goes away")
struct PostgresOutageTests {
    @Test func aStoppedDatabaseHoldsTheBacklogUntilItIsBack() async throws {
        let server = try await PostgresServer()
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        let sink = try PostgresSink(url: server.url, timeout: .seconds(2))
        let pool = Task { try await sink.run() }
        defer { pool.cancel() }
        // The schema first, here: with every suite running, migrating a new server's day partitions once took longer
        // than the consumer's start-up timeout, and the consumer gave up before the outage this test is about.
        var prepared = false
        for _ in 0..<120 where !prepared {
            do {
                try await sink.prepare()
                prepared = true
            } catch {
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        try #require(prepared, "the new PostgreSQL server takes the schema")
        let consumer = Task { try await harness.consumer(sink: sink).run() }
        defer { consumer.cancel() }
        func rows() async -> Int? {
            guard let sequence = try? await sink.client.query("SELECT CAST(COUNT(*) AS INTEGER) FROM logs") else { return nil }
            var count: Int?
            do { for try await value in sequence.decode(Int.self) { count = value } } catch { return nil }
            return count
        }
        func streamLength() async throws -> Int { try await harness.redis.send(XLEN(harness.keys.stream(.logs))) }

        try await harness.publish([Sample.log()])
        var stored = false
        // Up to 30 s: with every suite running, the worker's first batch once took more than 10 s to reach the table.
        for _ in 0..<300 where !stored {
            try await Task.sleep(for: .milliseconds(100))
            stored = await rows() == 1
        }
        #expect(stored, "the worker runs before the outage")

        try await server.stop()
        try await harness.publish((0..<100).map { _ in Sample.log() })
        try await Task.sleep(for: .seconds(3))
        #expect(try await streamLength() == 100, "nothing is acknowledged or deleted while PostgreSQL is down")

        try await server.start()
        var drained = false
        for _ in 0..<600 where !drained {
            try await Task.sleep(for: .milliseconds(100))
            let length = try await streamLength()
            let pending = try await harness.pending()
            drained = length == 0 && pending == 0
        }
        #expect(drained, "the backlog drains once PostgreSQL is back")
        #expect(await rows() == 101)
    }
}
