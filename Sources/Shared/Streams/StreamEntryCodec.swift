/// Encodes events as stream entry fields and decodes them back: the one format gateway and worker share.
///
/// Fields: `v` (format version, `1`), `id`, `kind`, `org`, `received_at`, then the event's fields under their
/// stored column names (`service`, `level`, `message`, `timestamp`, `trace_id`, `span_id`, `metadata`, `name`,
/// `value`, `unit`, `labels`, `version`, `environment`, `git_hash`). Timestamps are ISO 8601 UTC with
/// milliseconds; `metadata` and `labels` are compact JSON; absent optional fields are left out.
public enum StreamEntryCodec {
    /// The format version written in field `v`.
    public static let version = "1"

    /// The entry fields for `queued`; `receivedAt` may carry `queued.receivedAt` already formatted, as a
    /// batch shares one arrival time.
    public static func encode(_ queued: QueuedEvent, receivedAt: String? = nil) -> [(name: [UInt8], value: [UInt8])] {
        fields(queued, receivedAt: receivedAt).map { (Array($0.name.utf8), Array($0.value.utf8)) }
    }

    /// The entry's fields in order, absent optional ones left out.
    static func fields(_ queued: QueuedEvent, receivedAt: String?) -> [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = []
        fields.reserveCapacity(12)
        func put(_ field: Field, _ value: String?) {
            if let value { fields.append((field.rawValue, value)) }
        }
        put(.v, version)
        put(.id, queued.id)
        put(.kind, queued.event.kind.rawValue)
        put(.org, queued.org)
        put(.receivedAt, receivedAt ?? queued.receivedAt.iso8601)
        switch queued.event {
        case .log(let event):
            put(.service, event.service)
            put(.level, event.level.rawValue)
            put(.message, event.message)
            put(.timestamp, event.timestamp.iso8601)
            put(.traceId, event.traceId)
            put(.spanId, event.spanId)
            put(.metadata, event.metadata?.jsonText)
        case .metric(let event):
            put(.service, event.service)
            put(.name, event.name)
            put(.value, "\(event.value)")
            put(.unit, event.unit)
            put(.timestamp, event.timestamp.iso8601)
            put(.labels, event.labelsObject?.jsonText)
        case .deployment(let event):
            put(.service, event.service)
            put(.version, event.version)
            put(.environment, event.environment)
            put(.gitHash, event.gitHash)
            put(.timestamp, event.timestamp.iso8601)
            put(.metadata, event.metadata?.jsonText)
        }
        return fields
    }

    /// Decodes an entry written by `encode`; throws for anything else, naming what is wrong. Unknown fields
    /// are ignored; of repeated fields the last wins.
    public static func decode(_ fields: [(name: [UInt8], value: [UInt8])]) throws(StreamEntryError) -> QueuedEvent {
        try decode(fields.map { (ArraySlice($0.name), ArraySlice($0.value)) })
    }

    /// Decodes an entry as read from a stream (slices of the reply's bytes).
    public static func decode(_ fields: [(name: ArraySlice<UInt8>, value: ArraySlice<UInt8>)]) throws(StreamEntryError) -> QueuedEvent {
        let entry = try Slots(fields)
        let formatVersion = try entry.required(.v)
        guard formatVersion == version else { throw StreamEntryError(reason: "unknown format version '\(formatVersion)'") }
        return try entry.queuedEvent()
    }

    /// An entry's values by field, matched by bytes into fixed slots: the worker decodes every entry, so no
    /// dictionary per entry. Unknown fields are ignored; of repeated fields the last wins.
    struct Slots {
        var values = [String?](repeating: nil, count: Field.allCases.count)
        /// Objects already parsed (`metadata`, `labels` of a chunk's event line).
        var objects = [JSONValue?](repeating: nil, count: Field.allCases.count)

        init() {}

        init(_ fields: [(name: ArraySlice<UInt8>, value: ArraySlice<UInt8>)]) throws(StreamEntryError) {
            for field in fields {
                guard let slot = Field.slot(of: field.name) else { continue }
                guard let value = StreamEntryCodec.text(field.value) else {
                    throw StreamEntryError(reason: "field '\(Field.allCases[slot].rawValue)' is not valid UTF-8")
                }
                values[slot] = value
            }
        }

        func optional(_ field: Field) -> String? { values[field.slot] }

        func required(_ field: Field) throws(StreamEntryError) -> String {
            guard let value = values[field.slot] else { throw StreamEntryError(reason: "missing field '\(field.rawValue)'") }
            return value
        }

        func timestamp(_ field: Field) throws(StreamEntryError) -> Timestamp {
            guard let value = Timestamp(iso8601: try required(field)) else { throw StreamEntryError(reason: "field '\(field.rawValue)' is not a timestamp") }
            return value
        }

        func object(_ field: Field) throws(StreamEntryError) -> JSONValue? {
            if let parsed = objects[field.slot] { return parsed }
            guard let text = values[field.slot] else { return nil }
            guard let value = try? JSONParser.parse(Array(text.utf8)), case .object = value else {
                throw StreamEntryError(reason: "field '\(field.rawValue)' is not a JSON object")
            }
            return value
        }

        /// The event these values describe.
        func queuedEvent() throws(StreamEntryError) -> QueuedEvent {
            let kindText = try required(.kind)
            guard let kind = EventKind(rawValue: kindText) else { throw StreamEntryError(reason: "unknown kind '\(kindText)'") }
            let event: IngestEvent =
                switch kind {
                case .logs: .log(try logEvent())
                case .metrics: .metric(try metricEvent())
                case .deployments: .deployment(try deploymentEvent())
                }
            return QueuedEvent(id: try required(.id), org: try required(.org), receivedAt: try timestamp(.receivedAt), event: event)
        }

        func logEvent() throws(StreamEntryError) -> LogEvent {
            let levelText = try required(.level)
            guard let level = LogLevel(rawValue: levelText) else { throw StreamEntryError(reason: "unknown level '\(levelText)'") }
            return LogEvent(
                service: try required(.service), level: level, message: try required(.message), timestamp: try timestamp(.timestamp),
                traceId: optional(.traceId), spanId: optional(.spanId), metadata: try object(.metadata))
        }

        func metricEvent() throws(StreamEntryError) -> MetricEvent {
            guard let value = Double(try required(.value)), value.isFinite else { throw StreamEntryError(reason: "field 'value' is not a finite number") }
            var labels: [(key: String, value: String)]?
            if case .object(let members) = try object(.labels) {
                labels = []
                for member in members {
                    guard case .string(let text) = member.value else { throw StreamEntryError(reason: "label '\(member.key)' is not a string") }
                    labels!.append((member.key, text))
                }
            }
            return MetricEvent(
                service: try required(.service), name: try required(.name), value: value, unit: try required(.unit),
                timestamp: try timestamp(.timestamp), labels: labels)
        }

        func deploymentEvent() throws(StreamEntryError) -> DeploymentEvent {
            DeploymentEvent(
                service: try required(.service), version: try required(.version), environment: try required(.environment),
                gitHash: optional(.gitHash), timestamp: try timestamp(.timestamp), metadata: try object(.metadata))
        }
    }

    /// `bytes` as a string when they are valid UTF-8.
    static func text(_ bytes: ArraySlice<UInt8>) -> String? { bytes.withUnsafeBufferPointer(UTF8Text.validated) }

    /// The fields an entry may carry, by their names in the stream.
    enum Field: String, CaseIterable {
        case v, id, kind, org
        case receivedAt = "received_at"
        case service, level, message, timestamp
        case traceId = "trace_id"
        case spanId = "span_id"
        case metadata, name, value, unit, labels, version, environment
        case gitHash = "git_hash"

        private static let names: [[UInt8]] = allCases.map { Array($0.rawValue.utf8) }

        var slot: Int { Self.allCases.firstIndex(of: self)! }

        /// The slot of the field called `name`, or `nil` for a field the format does not have.
        static func slot(of name: ArraySlice<UInt8>) -> Int? {
            names.firstIndex { $0.elementsEqual(name) }
        }
    }
}

/// Why a stream entry could not be decoded (the worker dead-letters such entries).
public struct StreamEntryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong with the entry.
    public var reason: String

    public var description: String { "undecodable stream entry: \(reason)" }
}
