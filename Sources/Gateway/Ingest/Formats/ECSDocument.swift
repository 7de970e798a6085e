import Foundation
import OTLP
import Shared

/// A bulk document as a `logs` event, by the Elastic Common Schema's names. Nested objects and dotted names are the
/// same field (`{"log": {"level": "warn"}}` is `log.level`):
///
/// | document | event |
/// |---|---|
/// | `service.name`, else `service` (a string), else the index | `service` (none of the three: refused) |
/// | `log.level`, else `level`, else `severity` | `level`: a name (`warning`, `err`, `notice`, `critical`…, any case) or a syslog severity number 0–7, normalized to the five levels; none: `info` |
/// | `message` | `message`: a string as itself, any other value as compact JSON, none as `""` |
/// | `@timestamp` | `timestamp`: ISO 8601, or epoch milliseconds as a number; none: receipt |
/// | `trace.id`, `span.id` | `traceId`, `spanId` |
/// | every other field, flattened to dotted names | `metadata` (arrays kept as they are) |
///
/// A level whose text is not one of the five names is also kept in `metadata` under its own name (`log.level:
/// "notice"`), and so are the level and service fields not chosen. The index is kept as `metadata._index` when it is
/// not the service, the action's `_id` as `metadata._id`.
struct ECSDocument {
    let validator: EventValidator

    /// Why a document was refused: the reason of its item's 400.
    struct Refusal: Error {
        let reason: String
    }

    func event(_ document: JSONValue, index: String?, id: String?, now: Timestamp) throws(Refusal) -> IngestEvent {
        guard case .object(let members) = document else {
            throw Refusal(reason: "failed to parse: the document must be a JSON object, got \(document.typeName)")
        }
        var fields = Fields()
        fields.metadata.reserveCapacity(members.count + 2)
        fields.flatten(members, prefix: nil)
        if fields.sawDottedName {
            var seen = Set<String>()
            for member in fields.metadata where !seen.insert(member.key).inserted {
                throw Refusal(reason: "field [\(Self.clipped(member.key))] appears twice once nested objects are flattened")
            }
        }
        // Moved out, not shared: appending to a copy still held by `fields` would copy it whole.
        var metadata: [(key: String, value: JSONValue)] = []
        swap(&metadata, &fields.metadata)
        let service: String
        if let name = fields.serviceName {
            service = try Self.text(name, field: "service.name")
            if let other = fields.service { metadata.append(("service", other)) }
        } else if let other = fields.service, case .string(let text) = other {
            service = text
        } else if let index {
            service = index
            if let other = fields.service { metadata.append(("service", other)) }
        } else {
            throw Refusal(reason: "the document has no service.name or service, and the request no index, to name its service")
        }
        if let index, index != service { metadata.append(("_index", .string(index))) }
        if let id { metadata.append(("_id", .string(id))) }
        var level = LogLevel.info
        var chosen = false
        func consider(_ name: String, _ value: JSONValue?) throws(Refusal) {
            guard let value else { return }
            if chosen {
                metadata.append((name, value))
                return
            }
            chosen = true
            level = try Self.level(value, field: name)
            if case .string(let text) = value, text == level.rawValue { return }
            metadata.append((name, value))
        }
        try consider("log.level", fields.logLevel)
        try consider("level", fields.level)
        try consider("severity", fields.severity)
        let message: String
        switch fields.message {
        case .string(let text): message = text
        case nil, .null: message = ""
        case let value?: message = value.jsonText
        }
        let timestamp = try fields.timestamp.map { value throws(Refusal) in try Self.timestamp(value) } ?? now
        let traceId = try fields.traceId.map { value throws(Refusal) in try Self.text(value, field: "trace.id") }
        let spanId = try fields.spanId.map { value throws(Refusal) in try Self.text(value, field: "span.id") }
        guard metadata.count <= validator.limits.maxObjectKeys else {
            throw Refusal(
                reason:
                    "the document has \(metadata.count) fields for metadata once flattened, more than the limit of \(validator.limits.maxObjectKeys)")
        }
        do {
            for member in metadata { try validator.checkMetadataMember(member.value, named: member.key, kind: .logs) }
            return try validator.checked(
                .log(
                    LogEvent(
                        service: service, level: level, message: message, timestamp: timestamp, traceId: traceId, spanId: spanId,
                        metadata: metadata.isEmpty ? nil : .object(metadata))),
                path: "", metadataChecked: true)
        } catch {
            throw Refusal(reason: error.path.isEmpty ? error.rule : "\(error.path) \(error.rule)")
        }
    }

    /// The fields the mapping reads, and the rest as `metadata`.
    private struct Fields {
        var serviceName, service, logLevel, level, severity, message, timestamp, traceId, spanId: JSONValue?
        var metadata: [(key: String, value: JSONValue)] = []
        /// A name had a dot of its own: two fields may have become one name.
        var sawDottedName = false

        static func hasDot(_ key: String) -> Bool {
            key.utf8.withContiguousStorageIfAvailable { $0.isEmpty ? false : memchr($0.baseAddress!, Int32(UInt8(ascii: ".")), $0.count) != nil }
                ?? key.utf8.contains(UInt8(ascii: "."))
        }

        mutating func flatten(_ members: [(key: String, value: JSONValue)], prefix: String?) {
            for (key, value) in members {
                if !sawDottedName && Self.hasDot(key) { sawDottedName = true }
                if case .object(let nested) = value, !nested.isEmpty, prefix != nil || key != "message" {
                    flatten(nested, prefix: prefix.map { $0 + "." + key } ?? key)
                    continue
                }
                // The fields the mapping reads, matched without making their dotted names.
                switch (prefix, key) {
                case ("service"?, "name"), (nil, "service.name"): serviceName = value
                case (nil, "service"): service = value
                case ("log"?, "level"), (nil, "log.level"): logLevel = value
                case (nil, "level"): level = value
                case (nil, "severity"): severity = value
                case (nil, "message"): message = value
                case (nil, "@timestamp"): timestamp = value
                case ("trace"?, "id"), (nil, "trace.id"): traceId = value
                case ("span"?, "id"), (nil, "span.id"): spanId = value
                default: metadata.append((prefix.map { $0 + "." + key } ?? key, value))
                }
            }
        }
    }

    private static func text(_ value: JSONValue, field: String) throws(Refusal) -> String {
        guard case .string(let text) = value else { throw Refusal(reason: "\(field) must be a string, got \(value.typeName)") }
        return text
    }

    /// A level name (as OTLP's severity texts are read), or a syslog severity: 0–2 `fatal`, 3 `error`, 4 `warn`, 5–6
    /// `info`, 7 `debug`.
    static func level(_ value: JSONValue, field: String) throws(Refusal) -> LogLevel {
        switch value {
        case .string(let text):
            // The five names as they are, without reading the text's letters.
            if let level = LogLevel(rawValue: text) { return level }
            return OTLPLogs.level(number: 0, text: text) ?? .info
        case .number(let text):
            switch Int(text) {
            case 0, 1, 2: return .fatal
            case 3: return .error
            case 4: return .warn
            case 5, 6: return .info
            case 7: return .debug
            default: throw Refusal(reason: "\(field) must be a level name or a syslog severity 0 to 7, got \(clipped(text))")
            }
        default:
            throw Refusal(reason: "\(field) must be a level name or a syslog severity 0 to 7, got \(value.typeName)")
        }
    }

    /// ISO 8601 text, or epoch milliseconds.
    static func timestamp(_ value: JSONValue) throws(Refusal) -> Timestamp {
        switch value {
        case .string(let text):
            if let timestamp = Timestamp(iso8601: text, years: Timestamp.inputYears) { return timestamp }
            throw Refusal(reason: "@timestamp must be an ISO 8601 date-time or epoch milliseconds, got '\(clipped(text))'")
        case .number(let text):
            guard let milliseconds = Double(text), milliseconds.isFinite, abs(milliseconds) < 1e15,
                case let timestamp = Timestamp(milliseconds: Int64(milliseconds.rounded(.down))), Timestamp.storable.contains(timestamp)
            else {
                throw Refusal(reason: "@timestamp must be epoch milliseconds within years 1 to 9999, got \(clipped(text))")
            }
            return timestamp
        default:
            throw Refusal(reason: "@timestamp must be an ISO 8601 date-time or epoch milliseconds, got \(value.typeName)")
        }
    }

    static func clipped(_ text: String) -> String { text.utf8.count <= 64 ? text : String(text.prefix(64)) + "…" }
}
