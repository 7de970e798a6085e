import NIOCore

/// Format version 2: one entry carries a chunk, the events of one organization and kind (one request's, or several
/// requests' coalesced), so Redis does its work per entry rather than per event.
///
/// Fields: `v` (`2`), `kind`, `org`, `received_at` (of the first event), `count`, and `events`: one compact JSON
/// object per event, joined by newlines (JSON text never holds a raw newline), with the event's stored fields under
/// their column names (`id`, `service`, `level`, `message`, `timestamp`, … `metadata` and `labels` as objects,
/// `value` as a number) and `received_at` only where it differs from the chunk's.
///
/// Format version 3, a packed chunk: the same fields, with `v` `3` and `events` compressed with zstd (see
/// `packedVersion`). The gateway packs chunks whose lines reach `OPERYN_QUEUE_COMPRESS_BYTES`; workers read all three
/// versions.
extension StreamEntryCodec {
    /// The format version written in field `v` of a chunk.
    public static let chunkVersion = "2"

    /// The format version of a packed chunk: as version 2, but `events` holds its lines compressed, one or more zstd
    /// frames whose decoded bytes, one after the other, are the lines each ended by a newline.
    public static let packedVersion = "3"

    /// The zstd level chunks are packed at: the fastest of those that reach a tenth of the lines' size for typical
    /// events (see the performance page).
    public static let packLevel: Int32 = 1

    /// The most bytes a packed chunk may decode to: a version-2 chunk's lines are bounded by the gateway's body limit;
    /// a frame claiming more is not read (a corrupted entry, or a hostile one).
    public static let maxPackedLineBytes = 64 << 20

    /// `lines` (event lines joined by newlines) as one zstd frame of a packed chunk (decoding to them and a newline).
    public static func packLines(_ lines: [UInt8]) -> [UInt8] {
        var input = lines
        input.append(UInt8(ascii: "\n"))
        var output: [UInt8] = []
        Zstd.compress(input, level: packLevel, appendingTo: &output)
        return output
    }

    /// The most bytes of event lines in one chunk by default; a batch larger than this becomes several chunks (an
    /// event larger than it is a chunk of its own). Decoding a chunk needs memory in proportion to this.
    public static let maxChunkBytes = 256 * 1024

    /// The chunk entries for `events` (one organization, one kind, in order): as few as fit `maxBytes` of lines each.
    public static func encodeChunks(_ events: [QueuedEvent], maxBytes: Int = maxChunkBytes) -> [[(name: [UInt8], value: [UInt8])]] {
        chunks(events, maxBytes: maxBytes).map(\.fields)
    }

    /// `events` (one organization, one kind, in order) as chunks of at most `maxBytes` of lines each (an event larger
    /// than that is a chunk of its own).
    public static func chunks(_ events: [QueuedEvent], maxBytes: Int = maxChunkBytes) -> [StreamChunk] {
        precondition(!events.isEmpty, "a chunk holds at least one event")
        var chunks: [StreamChunk] = []
        var chunk = StreamChunk(events[0])
        for event in events.dropFirst() {
            if !chunk.append(event, maxBytes: maxBytes) {
                chunks.append(chunk)
                chunk = StreamChunk(event)  // its arrival time is now the chunk's
            }
        }
        chunks.append(chunk)
        return chunks
    }

    /// The events of any entry: a version-1 entry holds one, a version-2 entry its chunk, in order. Throws for an
    /// entry that cannot be read whole (unknown version, a count that does not match, a line that is not an event).
    public static func decodeEvents(_ fields: [(name: ArraySlice<UInt8>, value: ArraySlice<UInt8>)]) throws(StreamEntryError) -> [QueuedEvent] {
        var formatVersion: ArraySlice<UInt8>?
        var lines: ArraySlice<UInt8>?
        var count: Int?
        for field in fields {
            if field.name.elementsEqual(versionName) {
                formatVersion = field.value
            } else if field.name.elementsEqual(eventsName) {
                lines = field.value
            } else if field.name.elementsEqual(countName) {
                count = text(field.value).flatMap { Int($0) }
            }
        }
        guard let formatVersion else { throw StreamEntryError(reason: "missing field 'v'") }
        if formatVersion.elementsEqual(version.utf8) { return [try decode(fields)] }
        let packed = formatVersion.elementsEqual(packedVersion.utf8)
        guard packed || formatVersion.elementsEqual(chunkVersion.utf8) else {
            throw StreamEntryError(reason: "unknown format version '\(text(formatVersion)?.prefix(20) ?? "?")'")
        }
        let chunk = try Slots(fields)
        guard let count, count > 0 else { throw StreamEntryError(reason: "field 'count' is not a positive integer") }
        guard var lines else { throw StreamEntryError(reason: "missing field 'events'") }
        if packed { lines = try unpackLines(lines) }
        var events: [QueuedEvent] = []
        events.reserveCapacity(count)
        for line in lines.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            guard events.count < count else { throw StreamEntryError(reason: "more event lines than its count of \(count)") }
            events.append(try event(line, chunk: chunk, index: events.count))
        }
        guard events.count == count else { throw StreamEntryError(reason: "\(events.count) event lines, its count says \(count)") }
        return events
    }

    /// The lines of a packed chunk's `events`: its frames decoded, less the last line's newline.
    static func unpackLines(_ packed: ArraySlice<UInt8>) throws(StreamEntryError) -> ArraySlice<UInt8> {
        let decoded: ByteBuffer
        do {
            decoded = try Zstd.decompress(ByteBuffer(bytes: packed), maxSize: maxPackedLineBytes)
        } catch {
            switch error {
            case .tooLarge: throw StreamEntryError(reason: "packed events decode to more than \(maxPackedLineBytes) bytes")
            case .invalid(let reason): throw StreamEntryError(reason: "packed events are not zstd (\(reason))")
            }
        }
        var bytes = decoded.readableBytesView
        guard bytes.last == UInt8(ascii: "\n") else { throw StreamEntryError(reason: "packed events do not end with a newline") }
        bytes.removeLast()
        return ArraySlice(bytes)
    }

    /// How many events an entry holds, from its `count` field (1 for a version-1 entry or an unreadable count), without
    /// decoding it.
    public static func eventCount(_ fields: [(name: ArraySlice<UInt8>, value: ArraySlice<UInt8>)]) -> Int {
        guard let field = fields.first(where: { $0.name.elementsEqual(countName) }), let count = text(field.value).flatMap({ Int($0) }) else { return 1 }
        return max(1, count)
    }

    static let versionName = Array("v".utf8)
    static let eventsName = Array("events".utf8)
    static let countName = Array("count".utf8)
    /// Stored once per chunk, not per line.
    private static let perChunkFields: Set<String> = ["v", "kind", "org"]

    /// Appends one event's line to `line`: its stored fields as a compact JSON object, written straight from the
    /// event (the gateway writes one per event it accepts).
    static func writeEventLine(_ event: QueuedEvent, chunkReceivedAt: Timestamp, into line: inout [UInt8]) {
        var first = true
        func key(_ name: StaticString) {
            line.append(UInt8(ascii: first ? "{" : ","))
            first = false
            line.append(UInt8(ascii: "\""))
            line.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            line.append(contentsOf: #"":"#.utf8)
        }
        func string(_ name: StaticString, _ value: String?) {
            guard let value else { return }
            key(name)
            JSONValue.encodeString(value, into: &line)
        }
        func time(_ name: StaticString, _ value: Timestamp) {
            key(name)
            line.append(UInt8(ascii: "\""))
            value.appendISO8601(to: &line)
            line.append(UInt8(ascii: "\""))
        }
        func object(_ name: StaticString, _ value: JSONValue?) {
            guard let value else { return }
            key(name)
            value.encode(into: &line)
        }
        string("id", event.id)
        if event.receivedAt != chunkReceivedAt { time("received_at", event.receivedAt) }
        switch event.event {
        case .log(let log):
            string("service", log.service)
            string("level", log.level.rawValue)
            string("message", log.message)
            time("timestamp", log.timestamp)
            string("trace_id", log.traceId)
            string("span_id", log.spanId)
            object("metadata", log.metadata)
        case .metric(let metric):
            string("service", metric.service)
            string("name", metric.name)
            key("value")
            line.append(contentsOf: "\(metric.value)".utf8)
            string("unit", metric.unit)
            time("timestamp", metric.timestamp)
            if let labels = metric.labels {
                key("labels")
                line.append(UInt8(ascii: "{"))
                for (index, label) in labels.enumerated() {
                    if index > 0 { line.append(UInt8(ascii: ",")) }
                    JSONValue.encodeString(label.key, into: &line)
                    line.append(UInt8(ascii: ":"))
                    JSONValue.encodeString(label.value, into: &line)
                }
                line.append(UInt8(ascii: "}"))
            }
        case .deployment(let deployment):
            string("service", deployment.service)
            string("version", deployment.version)
            string("environment", deployment.environment)
            string("git_hash", deployment.gitHash)
            time("timestamp", deployment.timestamp)
            object("metadata", deployment.metadata)
        }
        line.append(UInt8(ascii: "}"))
    }

    /// The event of one line, with the chunk's organization, kind and arrival time.
    private static func event(_ line: ArraySlice<UInt8>, chunk: Slots, index: Int) throws(StreamEntryError) -> QueuedEvent {
        guard let value = try? JSONParser.parse(line), case .object(let members) = value else {
            throw StreamEntryError(reason: "event line \(index + 1) is not a JSON object")
        }
        var slots = Slots()
        for field in [Field.kind, .org, .receivedAt] { slots.values[field.slot] = chunk.values[field.slot] }
        for member in members {
            guard let field = Field(rawValue: member.key), !perChunkFields.contains(member.key) else { continue }
            switch member.value {
            case .string(let text): slots.values[field.slot] = text
            case .number(let text): slots.values[field.slot] = text
            case .object: slots.objects[field.slot] = member.value
            case .null: continue
            default: throw StreamEntryError(reason: "event line \(index + 1): field '\(member.key)' is a \(member.value.typeName)")
            }
        }
        do {
            return try slots.queuedEvent()
        } catch {
            throw StreamEntryError(reason: "event line \(index + 1): \(error.reason)")
        }
    }
}

/// The events of one organization and kind as one version-2 entry: built event by event or chunk by chunk (the
/// gateway merges the requests of one event-loop tick), then written as `XADD` straight from its lines.
public struct StreamChunk: Sendable {
    /// The kind of every event.
    public let kind: EventKind
    /// The organization of every event.
    public let org: String
    /// The first event's arrival time: lines of events that arrived then leave `received_at` out.
    public let receivedAt: Timestamp
    /// How many events it holds.
    public private(set) var count: Int
    /// The event lines, joined by newlines.
    public private(set) var lines: [UInt8]
    /// `receivedAt` as the entry writes it.
    public let receivedAtText: String

    /// A chunk holding `event`.
    public init(_ event: QueuedEvent) {
        kind = event.event.kind
        org = event.org
        receivedAt = event.receivedAt
        receivedAtText = event.receivedAt.iso8601
        count = 1
        lines = []
        lines.reserveCapacity(256)
        StreamEntryCodec.writeEventLine(event, chunkReceivedAt: event.receivedAt, into: &lines)
    }

    /// Adds an event of the same organization and kind.
    public mutating func append(_ event: QueuedEvent) {
        _ = append(event, maxBytes: .max)
    }

    /// Adds an event of the same organization and kind if its line fits within `maxBytes` of lines; answers whether it
    /// did (the chunk is unchanged otherwise).
    mutating func append(_ event: QueuedEvent, maxBytes: Int) -> Bool {
        precondition(event.org == org && event.event.kind == kind, "a chunk holds one organization and one kind")
        let end = lines.count
        lines.append(UInt8(ascii: "\n"))
        StreamEntryCodec.writeEventLine(event, chunkReceivedAt: receivedAt, into: &lines)
        guard lines.count <= maxBytes else {
            lines.removeSubrange(end...)
            return false
        }
        count += 1
        return true
    }

    /// How many bytes of lines `append(contentsOf: other)` adds.
    public func appendedLength(of other: StreamChunk) -> Int {
        // Per line of a chunk with another arrival time: the member written in, less the `{` it replaces.
        let member = #"{"received_at":"","#.utf8.count + other.receivedAtText.utf8.count - 1
        return 1 + other.lines.count + (other.receivedAt == receivedAt ? 0 : other.count * member)
    }

    /// Adds another chunk's events after these (same organization and kind). Its lines that leave their arrival
    /// time to their chunk get it written in, unless both chunks share it.
    public mutating func append(contentsOf other: StreamChunk) {
        precondition(other.org == org && other.kind == kind, "a chunk holds one organization and one kind")
        lines.append(UInt8(ascii: "\n"))
        other.appendLines(relativeTo: receivedAt, to: &lines)
        count += other.count
    }

    /// Appends these lines to `buffer` as lines of a chunk whose arrival time is `chunkReceivedAt`: a line that leaves
    /// its arrival time to this chunk gets it written in, unless both times are the same.
    public func appendLines(relativeTo chunkReceivedAt: Timestamp, to buffer: inout [UInt8]) {
        guard receivedAt != chunkReceivedAt else {
            buffer += lines
            return
        }
        // Each line is a JSON object: `{` then its members. A member written first is overridden by one the line
        // already has (the last of repeated members wins).
        var member = Array(#"{"received_at":"#.utf8)
        JSONValue.encodeString(receivedAtText, into: &member)
        member.append(UInt8(ascii: ","))
        buffer.reserveCapacity(buffer.count + lines.count + count * member.count)
        var start = lines.startIndex
        while start < lines.endIndex {
            let end = lines[start...].firstIndex(of: UInt8(ascii: "\n")) ?? lines.endIndex
            if start > lines.startIndex { buffer.append(UInt8(ascii: "\n")) }
            buffer += member
            buffer += lines[(start + 1)..<end]  // after its `{`
            start = end + 1
        }
    }

    /// The entry's fields: packed (version 3) when its lines are `packAbove` bytes or more, else version 2.
    public func fields(packAbove: Int? = nil) -> [(name: [UInt8], value: [UInt8])] {
        let packed = packAbove.map { lines.count >= $0 } ?? false
        return [
            (StreamEntryCodec.versionName, Array((packed ? StreamEntryCodec.packedVersion : StreamEntryCodec.chunkVersion).utf8)),
            (Array("kind".utf8), Array(kind.rawValue.utf8)), (Array("org".utf8), Array(org.utf8)), (Array("received_at".utf8), Array(receivedAtText.utf8)),
            (StreamEntryCodec.countName, Array(String(count).utf8)), (StreamEntryCodec.eventsName, packed ? StreamEntryCodec.packLines(lines) : lines),
        ]
    }

    /// The entry's fields, unpacked.
    public var fields: [(name: [UInt8], value: [UInt8])] { fields() }

    /// The RESP encoding of `XADD stream * <its fields>` (packed as `fields(packAbove:)` says), appended to `buffer`.
    public func appendXADD(stream: String, packAbove: Int? = nil, to buffer: inout [UInt8]) {
        let packed = packAbove.map { lines.count >= $0 } ?? false
        RedisCommandEncoder.appendHeader(arguments: 15, to: &buffer)
        RedisCommandEncoder.appendArgument("XADD".utf8, to: &buffer)
        RedisCommandEncoder.appendArgument(stream.utf8, to: &buffer)
        RedisCommandEncoder.appendArgument("*".utf8, to: &buffer)
        let version = packed ? StreamEntryCodec.packedVersion : StreamEntryCodec.chunkVersion
        for (name, value) in [("v", version), ("kind", kind.rawValue), ("org", org), ("received_at", receivedAtText)] {
            RedisCommandEncoder.appendArgument(name.utf8, to: &buffer)
            RedisCommandEncoder.appendArgument(value.utf8, to: &buffer)
        }
        RedisCommandEncoder.appendArgument("count".utf8, to: &buffer)
        RedisCommandEncoder.appendArgument(String(count).utf8, to: &buffer)
        RedisCommandEncoder.appendArgument("events".utf8, to: &buffer)
        RedisCommandEncoder.appendArgument(packed ? StreamEntryCodec.packLines(lines) : lines, to: &buffer)
    }
}

/// `XADD <stream> * <a chunk's fields>`, encoded straight from the chunk; answers the entry's id.
public struct AppendChunk: RedisCommand {
    /// The stream's key.
    public let stream: String
    /// The chunk.
    public let chunk: StreamChunk
    /// Lines of this many bytes or more are packed (version 3); `nil`: never.
    public let packAbove: Int?

    /// Appends `chunk` to `stream`, packed when its lines reach `packAbove` bytes.
    public init(_ chunk: StreamChunk, to stream: String, packAbove: Int? = nil) {
        self.stream = stream
        self.chunk = chunk
        self.packAbove = packAbove
    }

    public var arguments: [[UInt8]] {
        [Array("XADD".utf8), Array(stream.utf8), [UInt8(ascii: "*")]] + chunk.fields(packAbove: packAbove).flatMap { [$0.name, $0.value] }
    }

    public func encode(into buffer: inout [UInt8]) { chunk.appendXADD(stream: stream, packAbove: packAbove, to: &buffer) }

    public var routingKey: [UInt8]? { Array(stream.utf8) }

    public func response(from reply: RedisReply) throws(RedisError) -> String { try reply.expectString("XADD") }
}
