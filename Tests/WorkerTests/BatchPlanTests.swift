import Shared
import TestSupport
import Testing

@testable import Worker

/// The batch's decisions without Redis or a database: what is done, dead-lettered, recorded as rejected, and what
/// each finished entry counts.
@Suite("Batch plan (no I/O)")
struct BatchPlanTests {
    let keys = RedisKeys(prefix: "plan", partitions: 4)
    var plan: BatchPlan { BatchPlan(keys: keys, consumer: "w1", maxAttempts: 3, now: "2026-01-01T00:00:00.000Z") }

    func entry(_ id: String, _ events: [QueuedEvent], partition: Int = 1) -> ReadEntry {
        let fields = StreamEntryCodec.chunks(events)[0].fields().map { (name: $0.name[...], value: $0.value[...]) }
        return ReadEntry(kind: .logs, entry: StreamEntry(id: id, fields: fields), partition: partition)
    }

    /// The counts the acknowledgement carries for entry `id`.
    func counts(of id: String, in done: Acknowledgement) -> [String: Int] {
        var counts: [String: Int] = [:]
        for (group, ids) in done.ids where ids.contains(id) {
            for count in group.counts {
                let target =
                    switch count.target {
                    case .counters: "counters"
                    case .usage(let day): "usage \(day)"
                    case .flow(let partition): "flow \(partition)"
                    }
                counts["\(target) \(count.field)"] = count.amount
            }
        }
        return counts
    }

    @Test func decodingSetsAsideDeletedAndUndecodableEntries() {
        let good = entry("1-0", [Sample.log(), Sample.log()])
        let deleted = ReadEntry(kind: .logs, entry: StreamEntry(id: "2-0", fields: nil), partition: 1)
        let garbage = ReadEntry(kind: .logs, entry: StreamEntry(id: "3-0", fields: [(ArraySlice("v".utf8), ArraySlice("4".utf8))]), partition: 1)
        let decoded = plan.decode([good, deleted, garbage])
        #expect(decoded.entries.map(\.read.entry.id) == ["1-0"] && decoded.entries[0].events.count == 2)
        #expect(decoded.events.map(\.entry) == [0, 0])
        #expect(decoded.done.ids.values.flatMap { $0 } == ["2-0"], "a deleted entry is done at once, counting nothing")
        #expect(decoded.deadLetters.count == 1)
        let letter = decoded.deadLetters[0].letter
        #expect(letter.originalID == "3-0" && letter.attempts == 1 && letter.consumer == "w1" && letter.stream == keys.stream(.logs, partition: 1))
        #expect(letter.reason.contains("'4'") && letter.originalFields.map(\.value) == [Array("4".utf8)], "dead-lettered whole, as it was")
        #expect(!decoded.deadLetters[0].clearsAttempts)

        let outcome = plan.finish(decoded, attempts: [:]) { _ in 100 }
        #expect(Set(outcome.done.ids.values.flatMap { $0 }) == ["1-0", "2-0", "3-0"], "the undecodable entry is acknowledged once moved")
    }

    @Test func aFinishedEntryCountsItsStoredAndRejectedEventsAndRecordsEachRejection() {
        let events = [Sample.log(service: "a", org: "acme"), Sample.log(service: "b", org: "acme"), Sample.log(service: "a", org: "acme")]
        var decoded = plan.decode([entry("5-0", events)])
        decoded.entries[0].rejected = [events[1]]
        let outcome = plan.finish(decoded, attempts: [:]) { org in org == "acme" ? 7 : 0 }
        #expect(outcome.deadLetters.isEmpty && outcome.waiting.isEmpty)
        #expect(
            outcome.rejections == [
                Rejection(
                    eventID: events[1].id, org: "acme", service: "b", kind: .logs, receivedAt: events[1].receivedAt.iso8601,
                    sourceStream: keys.stream(.logs, partition: 1), sourceID: "5-0", defaultLimit: 7)
            ])
        let day = Usage.day(events[0].receivedAt)
        #expect(
            counts(of: "5-0", in: outcome.done) == [
                "counters stored:logs": 2, "counters rejected:service_quota_exceeded": 1, "usage \(day) accepted:logs": 3,
                "usage \(day) stored:logs": 2, "usage \(day) quota_rejected:logs": 1, "flow 1 out:acme": 3,
            ])
    }

    @Test func aRefusedEventWaitsUntilItsLastAttemptThenGoesAloneToTheDeadLetters() throws {
        let events = [Sample.log(org: "acme"), Sample.log(org: "acme")]
        var decoded = plan.decode([entry("6-0", events)])
        decoded.entries[0].refused = [(events[0], "value too long")]
        let field = decoded.entries[0].attemptsField

        let early = plan.finish(decoded, attempts: [field: 2]) { _ in 100 }
        #expect(early.waiting.map(\.attempts) == [2] && early.done.isEmpty && early.deadLetters.isEmpty && early.rejections.isEmpty)

        let last = plan.finish(decoded, attempts: [field: 3]) { _ in 100 }
        #expect(last.waiting.isEmpty)
        #expect(last.deadLetters.count == 1 && last.deadLetters[0].clearsAttempts)
        let letter = last.deadLetters[0].letter
        #expect(letter.reason == "value too long" && letter.attempts == 3 && letter.originalID == "6-0")
        let alone = try StreamEntryCodec.decodeEvents(letter.originalFields.map { (name: $0.name[...], value: $0.value[...]) })
        #expect(alone.map(\.id) == [events[0].id], "the refused event as a chunk of one")
        let day = Usage.day(events[0].receivedAt)
        #expect(
            counts(of: "6-0", in: last.done) == [
                "counters stored:logs": 1, "usage \(day) accepted:logs": 2, "usage \(day) stored:logs": 1, "usage \(day) dead_lettered:logs": 1,
                "flow 1 out:acme": 2,
            ])
    }
}
