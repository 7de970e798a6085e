import Foundation
import Shared
import TestSupport
import Testing

@testable import Sinks
@testable import Worker

/// The worker on the test command's Redis Cluster: every partition read, claimed, acknowledged and trimmed; every
/// script and transaction within one slot.
@Suite("Worker on a real Redis Cluster and SQLite")
struct ClusterConsumerTests {
    @Test(arguments: EntryFormat.both)
    func storesEveryPartitionsEventsAndCountsThem(format: EntryFormat) async throws {
        let harness = try WorkerHarness(redisURL: TestRedis.clusterURL)
        defer { Task { await harness.cleanUp() } }
        #expect(harness.keys.clustered && harness.keys.partitions == RedisKeys.defaultPartitions)
        let organizations = (0..<24).map { "org-\($0)" }
        var events: [QueuedEvent] = []
        for (index, org) in organizations.enumerated() {
            events += (0..<25).map { Sample.log(service: "svc-\($0 % 2)", org: org, message: "m\(index)-\($0)") }
            events.append(Sample.metric(org: org))
        }
        // The default organization: 7 services, 5 admitted.
        events += (1...7).map { Sample.log(service: "d-\($0)") }
        try await harness.publish(events, as: format)
        let partitions = Set(organizations.map { harness.keys.partition(of: $0) })
        #expect(partitions.count >= 8, "24 organizations spread over the partitions")

        let done = try await harness.run(harness.consumer()) {
            let pending = try await harness.pending()
            return pending == 0 && (try? harness.count("logs")) == 24 * 25 + 5 && (try? harness.count("metrics")) == 24
        }
        #expect(done)
        #expect(
            Set(try harness.query("SELECT id FROM logs").compactMap(\.first))
                == Set(events.filter { $0.event.kind == .logs }.map(\.id)).subtracting(events.suffix(2).map(\.id)))
        for org in organizations {
            #expect(try await harness.redis.send(HGET(harness.keys.counts(org: org), field: "stored:logs")) == "25", "\(org)")
            #expect(try await harness.redis.send(HGET(harness.keys.counts(org: org), field: "stored:metrics")) == "1", "\(org)")
        }
        #expect(try await harness.redis.send(HGET(harness.keys.counts(org: "default"), field: "rejected:service_quota_exceeded")) == "2")
        #expect(try await harness.redis.send(SCARD(harness.keys.services(org: "default"))) == 5)
        for stream in harness.keys.allStreams {
            #expect(try await harness.redis.send(XLEN(stream)) == 0, "\(stream): acknowledged entries are trimmed")
        }
    }

    @Test func refusedEventsAreRetriedThenDeadLetteredInTheirPartition() async throws {
        let harness = try WorkerHarness(redisURL: TestRedis.clusterURL)
        defer { Task { await harness.cleanUp() } }
        // An organization whose partition is not the first: its attempts are counted under the partition.
        let org = try #require((0..<100).map { "poison-\($0)" }.first { harness.keys.partition(of: $0) != 0 })
        let poison = Sample.log(org: org, message: "refuse me")
        try await harness.publish([Sample.log(org: org), poison, Sample.log(org: org)], as: .chunks(perChunk: 100, maxBytes: StreamEntryCodec.maxChunkBytes))
        let sink = RefusingSink(inner: harness.sink, refusedID: poison.id)
        #expect(try await harness.runRetryingUntilDeadLettered(1, sink: sink))
        #expect(try harness.count("logs") == 2)
        #expect(try await harness.redis.send(RawCommand("HLEN", harness.keys.attempts)) == .integer(0))
        let letter = try #require(try await harness.redis.send(XRANGE(harness.keys.deadLetterStream)).first)
        #expect(letter.value("dlq_stream") == Array(harness.keys.stream(.logs, partition: harness.keys.partition(of: org)).utf8))
        #expect(try await harness.redis.send(HGET(harness.keys.counts(org: org), field: "stored:logs")) == "2")
    }

    @Test func aSecondWorkerTakesOverEntriesLeftPendingInAnyPartition() async throws {
        let harness = try WorkerHarness(redisURL: TestRedis.clusterURL)
        defer { Task { await harness.cleanUp() } }
        let events = (0..<40).map { Sample.log(org: "claim-\($0)") }
        try await harness.publish(events)
        for stream in harness.keys.allStreams { _ = try await harness.redis.send(XGROUPCREATE(stream, group: harness.keys.consumerGroup)) }
        // A worker that read everything and died before storing any of it.
        for partition in 0..<harness.keys.partitions {
            _ = try await harness.reader.send(
                XREADGROUP(
                    group: harness.keys.consumerGroup, consumer: "dead", count: 100, block: nil,
                    streams: EventKind.allCases.map { (harness.keys.stream($0, partition: partition), ">") }))
        }
        #expect(try await harness.pending() == 40)
        let claimed = try await harness.run(harness.consumer(name: "c2", claimIdle: 200)) {
            let pending = try await harness.pending()
            return pending == 0 && (try? harness.count("logs")) == 40
        }
        #expect(claimed)
    }
    /// Every Lua script and `MULTI`/`EXEC` of the gateway, the workers and operyn-admin, on cluster keys: none touches
    /// two slots (Redis would refuse it with CROSSSLOT).
    @Test func everyScriptAndTransactionStaysInOneSlot() async throws {
        let harness = try WorkerHarness(redisURL: TestRedis.clusterURL)
        defer { Task { await harness.cleanUp() } }
        let (keys, redis) = (harness.keys, harness.redis)
        let org = "scripts-\(UUID().uuidString.prefix(6))"
        let stream = keys.stream(.logs, partition: keys.partition(of: org))

        // The gateway: a batch larger than a chunk, appended in one transaction (and with WAIT).
        let events = (0..<3).map { _ in Sample.log(org: org, message: String(repeating: "x", count: 1_000)) }
        let chunks = StreamEntryCodec.chunks(events, maxBytes: 1_500)
        #expect(chunks.count == 3)
        let loop = redis.anyEventLoop
        _ = try await redis.transaction(chunks.map { AppendChunk($0, to: stream) }, on: loop).get()
        _ = try await redis.transaction(chunks.map { AppendChunk($0, to: stream) }, waitingForReplicas: 1, timeoutMilliseconds: 2_000, on: loop).get()
        #expect(try await redis.send(XLEN(stream)) == 6)

        // The backlog's sample script (the gateway's backpressure, the worker's gauges, operyn-admin status).
        _ = try await redis.send(XGROUPCREATE(stream, group: keys.consumerGroup))
        let backlog = try await StreamBacklog.read(redis: redis, keys: keys)
        #expect(backlog.lag[.logs] == 6 && backlog.totalEvents == 6)

        // The worker: quota, acknowledgement (streams of a partition, then the organization's counters), trim, idle
        // consumers.
        let quota = QuotaEnforcer(redis: redis, keys: keys, defaultLimit: 1)
        #expect(try await quota.admit(org: org, service: "a"))
        #expect(try await !quota.admit(org: org, service: "b"), "one service for this organization")
        let read = try await harness.reader.send(XREADGROUP(group: keys.consumerGroup, consumer: "c1", count: 10, streams: [(stream, ">")]))
        var done = Acknowledgement()
        for entry in read[0].entries { done.add(entry.id, kind: .logs, partition: keys.partition(of: org), org: org, field: "stored:logs") }
        #expect(try await done.send(on: redis, keys: keys).map(\.acknowledged) == [6])
        #expect(try await redis.send(HGET(keys.counts(org: org), field: "stored:logs")) == "6")
        #expect(try await StreamTrimmer(redis: redis).trim(stream) == 6)
        let idle = IdleConsumers(redis: redis, group: keys.consumerGroup, keep: "c2", minIdleMilliseconds: 0)
        #expect(try await idle.remove(from: stream) == 1)

        // operyn-admin: organization keys (two slots: written one after the other) and a dead letter replayed.
        let store = APIKeyStore(redis: redis, keys: keys)
        let (apiKey, record) = try await store.create(organization: org, now: 1)
        #expect(try await store.record(sha256: APIKey.sha256(apiKey))?.organization == org)
        #expect(try await store.list(organization: org).map(\.id) == [record.id])
        #expect(try await store.revoke(organization: org, id: record.id))
        #expect(try await store.record(sha256: APIKey.sha256(apiKey)) == nil)
        #expect(try await store.list(organization: org).isEmpty)
        for key in [keys.counts(org: org), keys.services(org: org), keys.settings(org: org), keys.apiKeys(org: org), stream] {
            _ = try await redis.send(DEL([key]))
        }
    }
}
