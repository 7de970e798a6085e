import Foundation
import Shared
import TestSupport
import Testing

@testable import Worker

/// Entries of format version 2, each a chunk of events: every per-event behaviour of the worker holds inside a chunk.
@Suite("Worker on chunked entries (real Redis and SQLite)")
struct ChunkTests {
    /// In one chunk: stored events, an event over quota and an event the database refuses. The refused event is
    /// retried with its chunk, then dead-lettered alone as a chunk of one; the chunk's other events are stored once,
    /// its rejection recorded once, its counters exact, and nothing stays pending.
    @Test func aPoisonEventInsideAChunkIsDeadLetteredAloneAndTheRestIsRecordedOnce() async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        _ = try await harness.redis.send(HSET(harness.keys.settings(org: "org_a"), fields: [("service_limit", "1")]))
        let poison = Sample.log(service: "one", org: "org_a", message: "refuse me")
        let over = Sample.log(service: "two", org: "org_a")
        let good = [Sample.log(service: "one", org: "org_a"), Sample.log(service: "one", org: "org_a")]
        try await harness.publish([good[0], poison, over, good[1]], as: .chunks(perChunk: 100))
        #expect(try await harness.redis.send(XLEN(harness.keys.stream(.logs))) == 1, "one entry holds the four events")

        let sink = RefusingSink(inner: harness.sink, refusedID: poison.id)
        #expect(try await harness.runRetryingUntilDeadLettered(1, sink: sink))
        #expect(Set(try harness.query("SELECT id FROM logs").compactMap(\.first)) == Set(good.map(\.id)))

        let letter = try #require(try await harness.redis.send(XRANGE(harness.keys.deadLetterStream)).first)
        let fields = try #require(letter.fields)
        func field(_ name: String) -> String? {
            fields.last { $0.name.elementsEqual(name.utf8) }.map { String(decoding: $0.value, as: UTF8.self) }
        }
        #expect(field("dlq_attempts") == "3" && field("dlq_reason") == "value too long for column")
        #expect(field("v") == "2" && field("count") == "1", "a chunk of one")
        #expect(try StreamEntryCodec.decodeEvents(fields) == [poison], "holding exactly the refused event")

        let rejected = try await harness.redis.send(XRANGE(harness.keys.rejectedStream))
        #expect(rejected.count == 1, "recorded once, though the chunk was read three times")
        let counts = try await harness.redis.send(HGETALL(harness.keys.counts(org: "org_a")))
        #expect(counts == ["stored:logs": "2", "rejected:service_quota_exceeded": "1"])
        #expect(try await harness.redis.send(RawCommand("HLEN", harness.keys.attempts)) == .integer(0))
    }

    /// Streams written by gateways of both versions (a rolling upgrade) drain in order, every event stored once.
    @Test func streamsMixingBothVersionsDrainEveryEventOnce() async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        let before = try await harness.publish((0..<40).map { _ in Sample.log() })
        let during = try await harness.publish((0..<200).map { _ in Sample.log() } + [Sample.metric(), Sample.deployment()], as: .chunks(perChunk: 30))
        let after = try await harness.publish((0..<40).map { _ in Sample.log() })
        #expect(
            try await harness.run(harness.consumer()) {
                let pending = try await harness.pending()
                return pending == 0 && (try? harness.count("logs")) == 280 && (try? harness.count("deployments")) == 1
            })
        #expect(Set(try harness.query("SELECT id FROM logs").compactMap(\.first)) == Set((before + during + after).filter { $0.event.kind == .logs }.map(\.id)))
        #expect(try await harness.redis.send(HGET(harness.keys.counts(org: "default"), field: "stored:logs")) == "280")
    }

    /// A batch of 10 000 events becomes several chunks (each within the size bound); stored exactly once.
    @Test func aTenThousandEventBatchSplitIntoChunksIsStoredOnce() async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        let events = (0..<10_000).map { Sample.log(service: "svc-\($0 % 4)", message: "event \($0)") }
        let chunks = StreamEntryCodec.encodeChunks(events)
        #expect(chunks.count > 4)
        for chunk in chunks {
            let bytes = chunk.first { $0.name.elementsEqual("events".utf8) }?.value.count ?? 0
            #expect(bytes <= StreamEntryCodec.maxChunkBytes)
        }
        try await harness.publish(events, as: .chunks(perChunk: 10_000))
        #expect(try await harness.redis.send(XLEN(harness.keys.stream(.logs))) == chunks.count)
        #expect(
            try await harness.run(harness.consumer(), seconds: 60) {
                let pending = try await harness.pending()
                return pending == 0 && (try? harness.count("logs")) == 10_000
            })
        #expect(try harness.count("logs", where: "id IN (SELECT id FROM logs GROUP BY id HAVING COUNT(*) > 1)") == 0)
        #expect(try harness.query("SELECT message FROM logs WHERE id = '\(events[9_999].id)'").first?.first == "event 9999")
        #expect(try await harness.redis.send(HGET(harness.keys.counts(org: "default"), field: "stored:logs")) == "10000")
    }

    /// Chunks that cannot be read whole are dead-lettered whole at once (no retries), with the reason and their fields
    /// as they were, while the chunks around them are stored.
    @Test func undecodableChunksAreDeadLetteredWholeAtOnce() async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        let stream = harness.keys.stream(.logs)
        let good = try await harness.publish([Sample.log(), Sample.log()], as: .chunks(perChunk: 1))
        let valid = StreamEntryCodec.encodeChunks([Sample.log(), Sample.log()])[0]
        func altered(_ name: String, _ value: String) -> [(name: [UInt8], value: [UInt8])] {
            valid.map { $0.name.elementsEqual(name.utf8) ? ($0.name, Array(value.utf8)) : $0 }
        }
        let broken: [(fields: [(name: [UInt8], value: [UInt8])], reason: String)] = [
            (altered("count", "3"), "undecodable stream entry: 2 event lines, its count says 3"),
            (altered("v", "4"), "undecodable stream entry: unknown format version '4'"),
            (altered("events", #"{"id":"x","service":"api"#), "undecodable stream entry: event line 1 is not a JSON object"),
            (altered("events", #"{"id":"x"}"#), "undecodable stream entry: event line 1: missing field 'level'"),
        ]
        for entry in broken { _ = try await harness.redis.send(XADD(stream, fields: entry.fields)) }
        try await harness.publish([Sample.log()], as: .chunks(perChunk: 1))
        #expect(
            try await harness.run(harness.consumer(maxAttempts: 5)) {
                let letters = try await harness.redis.send(XLEN(harness.keys.deadLetterStream))
                return letters == broken.count && (try? harness.count("logs")) == 3
            })
        #expect(try harness.count("logs", where: "id IN ('\(good[0].id)', '\(good[1].id)')") == 2)
        let letters = try await harness.redis.send(XRANGE(harness.keys.deadLetterStream))
        for (letter, entry) in zip(letters, broken) {
            let fields = letter.fields ?? []
            func field(_ name: String) -> String? {
                fields.first { $0.name.elementsEqual(name.utf8) }.map { String(decoding: $0.value, as: UTF8.self) }
            }
            #expect(field("dlq_reason") == entry.reason)
            #expect(field("dlq_attempts") == "1")
            #expect(fields.filter { !$0.name.starts(with: "dlq_".utf8) }.map { Array($0.value) } == entry.fields.map(\.value), "kept as it was")
        }
        #expect(try await harness.pending() == 0)
    }

    /// The reader asks for as many entries as make about `OPERYN_BATCH_SIZE` events.
    @Test func theReadSizeFollowsTheEventsPerEntry() {
        let size = ReadSize()
        #expect(size.entries(forEvents: 1_000) == 10, "before the first read: chunks of 100 assumed")
        func entry(count: Int) -> ReadEntry {
            let fields: [(name: ArraySlice<UInt8>, value: ArraySlice<UInt8>)] =
                count == 1 ? [(ArraySlice("v".utf8), ArraySlice("1".utf8))] : [(ArraySlice("count".utf8), ArraySlice(String(count).utf8))]
            return ReadEntry(kind: .logs, entry: StreamEntry(id: "1-1", fields: fields))
        }
        for _ in 0..<10 { size.observe(Array(repeating: entry(count: 1), count: 10)) }
        #expect(size.entries(forEvents: 1_000) == 1_000, "single events: as many entries as events")
        for _ in 0..<10 { size.observe([entry(count: 250), entry(count: 250)]) }
        #expect(size.entries(forEvents: 1_000) == 4)
        for _ in 0..<10 { size.observe([entry(count: 100_000)]) }
        #expect(size.entries(forEvents: 1_000) == 1, "at least one entry")
    }
}
