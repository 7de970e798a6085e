import Shared
import Testing

@Suite("Dead letters: the record worker and operyn-admin share")
struct DeadLetterTests {
    @Test func aDeadLetterReadsBackAsItWasWritten() {
        let original: [(name: [UInt8], value: [UInt8])] = [(Array("v".utf8), Array("2".utf8)), (Array("events".utf8), Array("{}\n".utf8))]
        let letter = DeadLetter(
            stream: "operyn:stream:logs", originalID: "1-0", reason: "refused", attempts: 5, at: "2026-12-06T00:00:00.000Z", consumer: "w1",
            originalFields: original)
        #expect(
            letter.fields.prefix(6).map { String(decoding: $0.name, as: UTF8.self) } == [
                "dlq_reason", "dlq_stream", "dlq_id", "dlq_attempts", "dlq_at", "dlq_consumer",
            ])
        let entry = StreamEntry(id: "9-0", fields: letter.fields.map { (name: $0.name[...], value: $0.value[...]) })
        let read = DeadLetter(entry)
        #expect(read.id == "9-0" && read.stream == letter.stream && read.originalID == "1-0" && read.reason == "refused")
        #expect(read.attempts == 5 && read.at == letter.at && read.consumer == "w1")
        #expect(read.originalFields.map(\.name) == original.map(\.name) && read.originalFields.map(\.value) == original.map(\.value))
        #expect(read.json["attempts"] == .number("5") && read.json["originalId"] == "1-0")
        // An entry missing the worker's fields (written by hand): empty values, 0 attempts, every field original.
        let bare = DeadLetter(StreamEntry(id: "10-0", fields: [(name: Array("x".utf8)[...], value: Array("y".utf8)[...])]))
        #expect(bare.attempts == 0 && bare.stream.isEmpty && bare.originalFields.count == 1)
    }
}
