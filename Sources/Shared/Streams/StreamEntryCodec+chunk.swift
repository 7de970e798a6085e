/// Format version 2: one entry carries a chunk, the events of one organization and kind (one request's, or several
/// requests' coalesced), so Redis does its work per entry rather than per event.
///
/// Fields: `v` (`2`), `kind`, `org`, `received_at` (of the first event), `count`, and `events`: one compact JSON
/// object per event, joined by newlines (JSON text never holds a raw newline), with the event's stored fields under
/// their column names (`id`, `service`, `level`, `message`, `timestamp`, … `metadata` and `labels` as objects,
/// `value` as a number) and `received_at` only where it differs from the chunk's.
///
/// Not written by the gateway yet: the worker must read chunks before gateways write them (the chunked-entries issue).
extension StreamEntryCodec {
    /// The format version written in field `v` of a chunk.
    public static let chunkVersion = "2"

    /// The most bytes of event lines in one chunk by default; a batch larger than this becomes several chunks (an
    /// event larger than it is a chunk of its own). Decoding a chunk needs memory in proportion to this.
    public static let maxChunkBytes = 256 * 1024

    /// The chunk entries for `events` (one organization, one kind, in order): as few as fit `maxBytes` of lines each.
    public static func encodeChunks(_ events: [QueuedEvent], maxBytes: Int = maxChunkBytes) -> [[(name: [UInt8], value: [UInt8])]] {
        precondition(!events.isEmpty, "a chunk holds at least one event")
        var chunks: [[(name: [UInt8], value: [UInt8])]] = []
        var lines: [UInt8] = []
        var first = events[0]
        var count = 0
        for event in events {
            precondition(event.org == first.org && event.event.kind == first.event.kind, "a chunk holds one organization and one kind")
            var line = eventLine(event, chunkReceivedAt: first.receivedAt)
            if count > 0 && lines.count + 1 + line.count > maxBytes {
                chunks.append(chunkFields(first, count: count, lines: lines))
                lines = []
                count = 0
                first = event
                line = eventLine(event, chunkReceivedAt: event.receivedAt)  // its arrival time is now the chunk's
            }
            if count > 0 { lines.append(UInt8(ascii: "\n")) }
            lines += line
            count += 1
        }
        chunks.append(chunkFields(first, count: count, lines: lines))
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
        guard formatVersion.elementsEqual(chunkVersion.utf8) else {
            throw StreamEntryError(reason: "unknown format version '\(text(formatVersion)?.prefix(20) ?? "?")'")
        }
        let chunk = try Slots(fields)
        guard let count, count > 0 else { throw StreamEntryError(reason: "field 'count' is not a positive integer") }
        guard let lines else { throw StreamEntryError(reason: "missing field 'events'") }
        var events: [QueuedEvent] = []
        events.reserveCapacity(count)
        for line in lines.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            guard events.count < count else { throw StreamEntryError(reason: "more event lines than its count of \(count)") }
            events.append(try event(line, chunk: chunk, index: events.count))
        }
        guard events.count == count else { throw StreamEntryError(reason: "\(events.count) event lines, its count says \(count)") }
        return events
    }

    private static let versionName = Array("v".utf8)
    private static let eventsName = Array("events".utf8)
    private static let countName = Array("count".utf8)
    /// Stored once per chunk, not per line.
    private static let perChunkFields: Set<String> = ["v", "kind", "org"]
    /// Written into a line as JSON as they are (already JSON text or a number).
    private static let rawFields: Set<String> = ["metadata", "labels", "value"]

    private static func chunkFields(_ first: QueuedEvent, count: Int, lines: [UInt8]) -> [(name: [UInt8], value: [UInt8])] {
        [
            (Array("v".utf8), Array(chunkVersion.utf8)), (Array("kind".utf8), Array(first.event.kind.rawValue.utf8)),
            (Array("org".utf8), Array(first.org.utf8)), (Array("received_at".utf8), Array(first.receivedAt.iso8601.utf8)),
            (Array("count".utf8), Array(String(count).utf8)), (eventsName, lines),
        ]
    }

    /// One event's line: its stored fields as a compact JSON object.
    private static func eventLine(_ event: QueuedEvent, chunkReceivedAt: Timestamp) -> [UInt8] {
        var line: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        for field in fields(event, receivedAt: nil) where !perChunkFields.contains(field.name) {
            if field.name == "received_at" && event.receivedAt == chunkReceivedAt { continue }
            if !first { line.append(UInt8(ascii: ",")) }
            first = false
            JSONValue.encodeString(field.name, into: &line)
            line.append(UInt8(ascii: ":"))
            if rawFields.contains(field.name) {
                line += field.value.utf8
            } else {
                JSONValue.encodeString(field.value, into: &line)
            }
        }
        line.append(UInt8(ascii: "}"))
        return line
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
