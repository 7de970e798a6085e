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
            // The gateway's XADD, written straight from the chunk's lines, is the same bytes as its fields encoded one
            // by one.
            let command = AppendChunk(StreamChunk(queued), to: "operyn:stream:\(kind.rawValue)")
            var direct: [UInt8] = []
            command.encode(into: &direct)
            #expect(direct == RedisCommandEncoder.hiredisEncoding(command.arguments))
            #expect(try StreamEntryCodec.decodeEvents(command.chunk.fields.map { (ArraySlice($0.name), ArraySlice($0.value)) }) == [queued])
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

@Suite("Stream entry codec: chunks (format 2)")
struct ChunkCodecTests {
    let validator = EventValidator()
    let received = Timestamp(milliseconds: 1_700_000_000_000)

    func queued(_ kind: EventKind, _ body: String, id: Int, receivedAt: Timestamp? = nil) throws -> QueuedEvent {
        QueuedEvent(
            id: "00000000-0000-7000-8000-\(String(repeating: "0", count: 12 - String(id).count))\(id)", org: "org_1",
            receivedAt: receivedAt ?? received, event: try validator.event(kind, body: Array(body.utf8), now: received))
    }

    func decode(_ fields: [(name: [UInt8], value: [UInt8])]) throws(StreamEntryError) -> [QueuedEvent] {
        try StreamEntryCodec.decodeEvents(fields.map { (ArraySlice($0.name), ArraySlice($0.value)) })
    }

    @Test func everyKindAndFieldRoundTripsInOrder() throws {
        let bodies: [(EventKind, [String])] = [
            (
                .logs,
                [
                    #"{"service":"api","level":"warn","message":"line one\nline \"two\" é \u2028 end","timestamp":"2024-01-02T03:04:05.678+01:00","traceId":"t","spanId":"sp","metadata":{"n":[1,{"x":null}],"big":123456789012345678901234567890,"s":"a\nb"}}"#,
                    #"{"service":"api","level":"info","message":"m"}"#,
                ]
            ),
            (
                .metrics,
                [
                    #"{"service":"api","name":"cpu","value":0.1,"unit":"percent","labels":{"b":"2","a":"1"}}"#,
                    #"{"service":"api","name":"n","value":-1e300,"unit":"u"}"#,
                ]
            ),
            (
                .deployments,
                [
                    #"{"service":"pay","version":"v2.0.1","environment":"production","gitHash":"a1b2c3d4","metadata":{"deployedBy":"jenkins"}}"#,
                    #"{"service":"pay","version":"v3","environment":"staging"}"#,
                ]
            ),
        ]
        for (kind, lines) in bodies {
            // Coalesced requests: the second event arrived a millisecond later than the chunk's first.
            let events = try lines.enumerated().map { index, body in
                try queued(kind, body, id: index, receivedAt: Timestamp(milliseconds: received.milliseconds + Int64(index)))
            }
            let chunks = StreamEntryCodec.encodeChunks(events)
            #expect(chunks.count == 1)
            let names = chunks[0].map { String(decoding: $0.name, as: UTF8.self) }
            #expect(names == ["v", "kind", "org", "received_at", "count", "events"])
            #expect(try decode(chunks[0]) == events)
        }
    }

    @Test func versionOneEntriesDecodeAsOneEvent() throws {
        let event = try queued(.logs, #"{"service":"s","level":"info","message":"m"}"#, id: 1)
        #expect(try decode(StreamEntryCodec.encode(event)) == [event])
    }

    /// A worker of the previous version reads entries with the format-1 decoder only: a chunk is refused with a reason
    /// (and so dead-lettered whole, nothing lost) — the refused combination the upgrade notes describe.
    @Test func theFormatOneDecoderRefusesAChunkWithAReason() throws {
        let event = try queued(.logs, #"{"service":"s","level":"info","message":"m"}"#, id: 1)
        let chunk = StreamEntryCodec.encodeChunks([event])[0]
        let error = #expect(throws: StreamEntryError.self) { try StreamEntryCodec.decode(chunk) }
        #expect(error?.reason == "unknown format version '2'")
    }

    @Test func largeBatchesBecomeBoundedChunksInOrder() throws {
        let events = try (0..<1_000).map {
            try queued(.logs, #"{"service":"s","level":"info","message":"event \#($0) \#(String(repeating: "x", count: $0 % 50))"}"#, id: $0)
        }
        let chunks = StreamEntryCodec.encodeChunks(events, maxBytes: 10_000)
        #expect(chunks.count > 5)
        var decoded: [QueuedEvent] = []
        for chunk in chunks {
            #expect(chunk.last!.value.count <= 10_000)
            decoded += try decode(chunk)
        }
        #expect(decoded == events)
        // An event larger than the bound is a chunk of its own.
        let big = try queued(.logs, #"{"service":"s","level":"info","message":"\#(String(repeating: "y", count: 20_000))"}"#, id: 5_000)
        let split = StreamEntryCodec.encodeChunks([events[0], big, events[1]], maxBytes: 10_000)
        #expect(split.count == 3)
        #expect(try split.flatMap { try decode($0) } == [events[0], big, events[1]])
    }

    @Test func brokenChunksAreRefusedWholeWithTheReason() throws {
        let events = try (0..<3).map { try queued(.logs, #"{"service":"s","level":"info","message":"m\#($0)"}"#, id: $0) }
        let good = StreamEntryCodec.encodeChunks(events)[0]
        func broken(_ change: (inout [(name: [UInt8], value: [UInt8])]) -> Void) -> String? {
            var fields = good
            change(&fields)
            do {
                _ = try decode(fields)
                return nil
            } catch { return error.reason }
        }
        func set(_ name: String, _ value: String) -> (inout [(name: [UInt8], value: [UInt8])]) -> Void {
            { fields in fields[fields.firstIndex { $0.name == Array(name.utf8) }!].value = Array(value.utf8) }
        }
        let lines = String(decoding: good.last!.value, as: UTF8.self)
        #expect(broken(set("v", "4")) == "unknown format version '4'")
        #expect(broken(set("count", "4")) == "3 event lines, its count says 4")
        #expect(broken(set("count", "2")) == "more event lines than its count of 2")
        #expect(broken(set("count", "x")) == "field 'count' is not a positive integer")
        #expect(broken(set("events", String(lines.dropLast(5)))) == "event line 3 is not a JSON object")
        #expect(broken(set("events", lines.replacingOccurrences(of: #""level":"info""#, with: #""level":"loud""#))) == "event line 1: unknown level 'loud'")
        #expect(broken(set("events", lines + "\n[1]")) == "more event lines than its count of 3")
        #expect(broken(set("kind", "traces")) == "event line 1: unknown kind 'traces'")
        #expect(broken { $0.removeLast() } == "missing field 'events'")
        #expect(broken { $0.removeFirst() } == "missing field 'v'")
    }

    /// Requests merged into one chunk (the gateway's coalescing): every event keeps its own arrival time, whether or
    /// not its request arrived in the chunk's millisecond; the entry is written byte for byte as its fields say.
    @Test func mergedChunksKeepEveryEventsArrivalTime() throws {
        let at = { (offset: Int64) in Timestamp(milliseconds: self.received.milliseconds + offset) }
        let first = try [0, 1].map { try queued(.logs, #"{"service":"s","level":"info","message":"a\#($0)"}"#, id: $0, receivedAt: at(0)) }
        let same = try queued(.logs, #"{"service":"s","level":"info","message":"b"}"#, id: 2, receivedAt: at(0))
        let later = try [3, 4].map { try queued(.logs, #"{"service":"s","level":"info","message":"c\#($0)"}"#, id: $0, receivedAt: at(7)) }
        var chunk = StreamEntryCodec.chunks(first)[0]
        for other in [StreamEntryCodec.chunks([same])[0], StreamEntryCodec.chunks(later)[0]] {
            let expected = chunk.lines.count + chunk.appendedLength(of: other)
            chunk.append(contentsOf: other)
            #expect(chunk.lines.count == expected)
        }
        chunk.append(try queued(.logs, #"{"service":"s","level":"info","message":"d"}"#, id: 5, receivedAt: at(9)))
        #expect(chunk.count == 6)
        let decoded = try decode(chunk.fields)
        #expect(decoded.map(\.receivedAt) == [at(0), at(0), at(0), at(7), at(7), at(9)])
        #expect(decoded.prefix(5) == ArraySlice(first + [same] + later))

        var resp: [UInt8] = []
        AppendChunk(chunk, to: "s").encode(into: &resp)
        var expected: [UInt8] = []
        RedisCommandEncoder.append(AppendChunk(chunk, to: "s").arguments, to: &expected)
        #expect(resp == expected)
    }
}

/// Format version 3: a chunk's lines packed with zstd.
@Suite("Packed chunks (format version 3)")
struct PackedChunkTests {
    func events(_ count: Int, org: String = "acme") -> [QueuedEvent] {
        (0..<count).map { index in
            QueuedEvent(
                id: EventID.make(milliseconds: 1_700_000_000_000 + Int64(index)), org: org, receivedAt: Timestamp(milliseconds: 1_700_000_000_000),
                event: .log(LogEvent(service: "api", level: .info, message: "request \(index) served", timestamp: Timestamp(milliseconds: 1_699_999_999_000))))
        }
    }

    func decode(_ fields: [(name: [UInt8], value: [UInt8])]) throws(StreamEntryError) -> [QueuedEvent] {
        try StreamEntryCodec.decodeEvents(fields.map { (ArraySlice($0.name), ArraySlice($0.value)) })
    }

    @Test func aChunkPastTheThresholdIsPackedAndReadsBackTheSame() throws {
        let sent = events(100)
        let chunk = StreamEntryCodec.chunks(sent)[0]
        let plain = chunk.fields(packAbove: chunk.lines.count + 1)
        let packed = chunk.fields(packAbove: chunk.lines.count)
        #expect(String(decoding: plain[0].value, as: UTF8.self) == "2" && String(decoding: packed[0].value, as: UTF8.self) == "3")
        #expect(try decode(packed) == sent)
        #expect(packed[5].value.count * 5 < plain[5].value.count, "\(packed[5].value.count) of \(plain[5].value.count) bytes")
        // The encoder straight to RESP says the same as the fields.
        var resp: [UInt8] = []
        AppendChunk(chunk, to: "s", packAbove: 1).encode(into: &resp)
        var expected: [UInt8] = []
        RedisCommandEncoder.append([Array("XADD".utf8), Array("s".utf8), [UInt8(ascii: "*")]] + packed.flatMap { [$0.name, $0.value] }, to: &expected)
        #expect(resp == expected)
    }

    @Test func framesOneAfterTheOtherReadAsOneChunk() throws {
        let (a, b) = (events(3), events(4))
        let (first, second) = (StreamEntryCodec.chunks(a)[0], StreamEntryCodec.chunks(b)[0])
        var fields = first.fields(packAbove: 1)
        fields[4].value = Array("7".utf8)
        fields[5].value = StreamEntryCodec.packLines(first.lines) + StreamEntryCodec.packLines(second.lines)
        #expect(try decode(fields) == a + b)
    }

    @Test func brokenPackedChunksAreRefusedWithAReason() throws {
        let chunk = StreamEntryCodec.chunks(events(3))[0]
        func broken(_ events: [UInt8]) -> String? {
            var fields = chunk.fields(packAbove: 1)
            fields[5].value = events
            do {
                _ = try decode(fields)
                return nil
            } catch { return error.reason }
        }
        #expect(broken(Array("not zstd".utf8))?.contains("not zstd") == true)
        #expect(broken(Zstd.compress(chunk.lines)) == "packed events do not end with a newline")
        let packed = StreamEntryCodec.packLines(chunk.lines)
        #expect(broken(Array(packed.dropLast(3)))?.contains("not zstd") == true, "a frame cut short")
        // A frame claiming far more than a chunk may hold is not decoded.
        let bomb = Zstd.compress([UInt8](repeating: UInt8(ascii: "a"), count: StreamEntryCodec.maxPackedLineBytes + 1), level: 1)
        #expect(broken(bomb)?.contains("more than") == true)
    }
}
