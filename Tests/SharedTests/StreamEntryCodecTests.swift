import Shared
import Testing

@Suite("Stream entry codec")
struct StreamEntryCodecTests {
    let validator = EventValidator()
    let received = Timestamp(milliseconds: 1_700_000_000_000)

    @Test func everyKindRoundTrips() throws {
        let bodies: [(EventKind, String)] = [
            (
                .logs,
                #"{"service":"api","level":"warn","message":"m \"q\" é","timestamp":"2024-01-02T03:04:05.678+01:00","traceId":"t","spanId":"sp","metadata":{"n":[1,{"x":null}],"big":123456789012345678901234567890}}"#
            ),
            (.metrics, #"{"service":"api","name":"cpu","value":0.1,"unit":"percent","labels":{"b":"2","a":"1"}}"#),
            (.deployments, #"{"service":"pay","version":"v2.0.1","environment":"production","gitHash":"a1b2c3d4","metadata":{"deployedBy":"jenkins"}}"#),
        ]
        for (kind, body) in bodies {
            let event = try validator.event(kind, body: Array(body.utf8), now: received)
            let queued = QueuedEvent(id: "f47ac10b-58cc-4372-a567-0e02b2c3d479", org: "org_1", receivedAt: received, event: event)
            let decoded = try StreamEntryCodec.decode(StreamEntryCodec.encode(queued))
            #expect(decoded == queued)
            // The gateway's XADD, written straight from the event, is the same bytes as the fields encoded one by one.
            for receivedAt in [nil, "2023-11-14T22:13:20.000Z"] {
                let command = AppendEvent(queued, to: "operyn:stream:\(kind.rawValue)", receivedAt: receivedAt)
                var direct: [UInt8] = []
                command.encode(into: &direct)
                var reference: [UInt8] = []
                RedisCommandEncoder.append(
                    ["XADD", "operyn:stream:\(kind.rawValue)", "*"].map { Array($0.utf8) }
                        + StreamEntryCodec.encode(queued, receivedAt: receivedAt).flatMap { [$0.name, $0.value] }, to: &reference)
                #expect(direct == reference)
                #expect(direct == RedisCommandEncoder.hiredisEncoding(command.arguments))
            }
        }
    }

    @Test func fieldsAreNamedAfterColumns() throws {
        let event = try validator.event(.logs, body: Array(#"{"service":"s","level":"info","message":"m","traceId":"t"}"#.utf8), now: received)
        let fields = StreamEntryCodec.encode(QueuedEvent(id: "x", org: "default", receivedAt: received, event: event))
        let names = fields.map { String(decoding: $0.name, as: UTF8.self) }
        #expect(names == ["v", "id", "kind", "org", "received_at", "service", "level", "message", "timestamp", "trace_id"])
    }

    @Test func foreignEntriesAreRefusedWithAReason() {
        func decode(_ pairs: [(String, String)]) -> String? {
            do {
                _ = try StreamEntryCodec.decode(pairs.map { (Array($0.0.utf8), Array($0.1.utf8)) })
                return nil
            } catch { return error.reason }
        }
        #expect(decode([("hello", "world")]) == "missing field 'v'")
        #expect(decode([("v", "9")]) == "unknown format version '9'")
        #expect(decode([("v", "1"), ("kind", "traces")]) == "unknown kind 'traces'")
        #expect(decode([("v", "1"), ("kind", "metrics"), ("value", "abc")]) == "field 'value' is not a finite number")
    }

    @Test func jsonStringsEscapeQuotesBackslashesAndControlCharacters() throws {
        var output: [UInt8] = []
        JSONValue.encodeString("plain é ✓", into: &output)
        JSONValue.encodeString("a\"b\\c\nd\re\tf\u{01}g\u{1F}", into: &output)
        JSONValue.encodeString("", into: &output)
        #expect(String(decoding: output, as: UTF8.self) == #""plain é ✓""a\"b\\c\nd\re\tf\u0001g\u001f""""#)
        let text = "x\"\\\n\u{7}y"
        var encoded: [UInt8] = []
        JSONValue.encodeString(text, into: &encoded)
        #expect(try JSONParser.parse(encoded) == .string(text), "the parser reads back what was written")
    }

    @Test func fieldsThatAreNotUTF8AreRefused() throws {
        let event = try validator.event(.logs, body: Array(#"{"service":"s","level":"info","message":"m"}"#.utf8), now: received)
        let fields = StreamEntryCodec.encode(QueuedEvent(id: "x", org: "default", receivedAt: received, event: event))
        func decode(message: [UInt8]) -> String? {
            let changed = fields.map { $0.name == Array("message".utf8) ? ($0.name, message) : $0 }
            do {
                _ = try StreamEntryCodec.decode(changed)
                return nil
            } catch { return error.reason }
        }
        #expect(decode(message: Array("héllo ✓ 日本 🎉".utf8)) == nil)
        for invalid: [UInt8] in [[0xFF], [0x61, 0xE2, 0x82], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xEF, 0xBF, 0xBD, 0xFF], [0x80]] {
            #expect(decode(message: invalid) == "field 'message' is not valid UTF-8", "\(invalid)")
        }
        #expect(decode(message: [0xEF, 0xBF, 0xBD]) == nil, "a replacement character itself is valid")
    }
}
