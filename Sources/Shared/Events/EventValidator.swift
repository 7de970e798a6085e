#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Turns request bodies into validated events, or a `ValidationError` naming the field and the rule.
///
/// Unknown fields are ignored; `null` in an optional field counts as omitted.
public struct EventValidator: Sendable {
    /// The bounds applied.
    public var limits: EventLimits

    /// A validator with the given limits.
    public init(limits: EventLimits = EventLimits()) { self.limits = limits }

    /// Validates a single-event body; `now` stands in for an omitted timestamp.
    public func event(_ kind: EventKind, body: some Collection<UInt8>, now: Timestamp = .now) throws(ValidationError) -> IngestEvent {
        let value: JSONValue
        do {
            value = try JSONParser.parse(body)
        } catch {
            throw ValidationError(kind: kind, path: "", rule: error.description)
        }
        return try event(kind, value, path: "", now: now)
    }

    /// Validates a batch body: a non-empty JSON array of at most `maxBatchEvents` events.
    public func batch(_ kind: EventKind, body: some Collection<UInt8>, now: Timestamp = .now) throws(ValidationError) -> [IngestEvent] {
        let value: JSONValue
        do {
            value = try JSONParser.parse(body)
        } catch {
            throw ValidationError(kind: kind, path: "", rule: error.description)
        }
        guard case .array(let elements) = value else {
            throw ValidationError(kind: kind, path: "", rule: "batch body must be a JSON array of events, got \(value.typeName)")
        }
        guard !elements.isEmpty else { throw ValidationError(kind: kind, path: "", rule: "batch must contain at least 1 event") }
        guard elements.count <= limits.maxBatchEvents else {
            throw ValidationError(kind: kind, path: "", rule: "batch must contain at most \(limits.maxBatchEvents) events, got \(elements.count)")
        }
        var events: [IngestEvent] = []
        events.reserveCapacity(elements.count)
        for (index, element) in elements.enumerated() {
            events.append(try event(kind, element, path: "[\(index)].", now: now))
        }
        return events
    }

    /// Validates one parsed event; `path` prefixes field names in errors (`[3].` inside a batch).
    public func event(_ kind: EventKind, _ value: JSONValue, path: String, now: Timestamp) throws(ValidationError) -> IngestEvent {
        guard case .object = value else {
            let whole = path.isEmpty ? "body" : String(path.dropLast())
            throw ValidationError(kind: kind, path: "", rule: "\(whole) must be a JSON object, got \(value.typeName)")
        }
        let fields = Fields(kind: kind, object: value, path: path, limits: limits)
        switch kind {
        case .logs:
            let levelText = try fields.string("level", required: true)!
            guard let level = LogLevel(rawValue: levelText) else {
                throw fields.error("level", "must be one of debug, info, warn, error, fatal, got '\(Fields.clipped(levelText))'")
            }
            return .log(
                LogEvent(
                    service: try fields.service(),
                    level: level,
                    message: try fields.string("message", required: true, maxBytes: limits.maxMessageBytes)!,
                    timestamp: try fields.timestamp(now: now),
                    traceId: try fields.string("traceId", maxBytes: limits.maxIndexedBytes),
                    spanId: try fields.string("spanId"),
                    metadata: try fields.metadata("metadata")
                ))
        case .metrics:
            return .metric(
                MetricEvent(
                    service: try fields.service(),
                    name: try fields.string("name", required: true, nonEmpty: true, maxBytes: limits.maxIndexedBytes)!,
                    value: try fields.number("value"),
                    unit: try fields.string("unit", required: true)!,
                    timestamp: try fields.timestamp(now: now),
                    labels: try fields.labels("labels")
                ))
        case .deployments:
            return .deployment(
                DeploymentEvent(
                    service: try fields.service(),
                    version: try fields.string("version", required: true, nonEmpty: true)!,
                    environment: try fields.string("environment", required: true, nonEmpty: true, maxBytes: limits.maxIndexedBytes)!,
                    gitHash: try fields.string("gitHash"),
                    timestamp: try fields.timestamp(now: now),
                    metadata: try fields.metadata("metadata")
                ))
        }
    }
}

extension EventValidator {
    /// Checks an event made by another front door (OTLP) by the rules a JSON body meets: every string within its bound
    /// and free of NUL, a service that is not empty once trimmed (and is returned trimmed), a non-empty metric name, a
    /// finite value, labels and metadata within their key counts and depth, a storable timestamp. `path` prefixes the
    /// field names in errors.
    ///
    /// `metadataChecked`: the caller has checked every member of the metadata with `checkMetadataMember` (members
    /// shared by many events are checked once) and their count.
    public func checked(_ event: consuming IngestEvent, path: String, metadataChecked: Bool = false) throws(ValidationError) -> IngestEvent {
        let fields = Fields(kind: event.kind, object: .null, path: path, limits: limits)
        func service(_ raw: String) throws(ValidationError) -> String {
            try fields.checkText(raw, at: "service", maxBytes: limits.maxIndexedBytes)
            let trimmed = Fields.trimmed(raw)
            guard !trimmed.isEmpty else { throw fields.error("service", "must not be empty") }
            return trimmed
        }
        func timestamp(_ timestamp: Timestamp) throws(ValidationError) {
            guard Timestamp.storable.contains(timestamp) else {
                throw fields.error("timestamp", "must be within 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z in UTC, got \(timestamp.milliseconds) ms")
            }
        }
        func metadata(_ value: JSONValue?) throws(ValidationError) {
            guard let value, !metadataChecked else { return }
            try fields.checkNested(value, path: "metadata", depth: 1, root: "metadata")
        }
        switch event {
        case .log(var log):
            log.service = try service(log.service)
            try fields.checkText(log.message, at: "message", maxBytes: limits.maxMessageBytes)
            try timestamp(log.timestamp)
            if let traceId = log.traceId { try fields.checkText(traceId, at: "traceId", maxBytes: limits.maxIndexedBytes) }
            if let spanId = log.spanId { try fields.checkText(spanId, at: "spanId", maxBytes: limits.maxStringBytes) }
            try metadata(log.metadata)
            return .log(log)
        case .metric(var metric):
            metric.service = try service(metric.service)
            guard !metric.name.isEmpty else { throw fields.error("name", "must not be empty") }
            try fields.checkText(metric.name, at: "name", maxBytes: limits.maxIndexedBytes)
            try fields.checkText(metric.unit, at: "unit", maxBytes: limits.maxStringBytes)
            guard metric.value.isFinite else { throw fields.error("value", "must be a finite number within ±1.8e308") }
            try timestamp(metric.timestamp)
            if let labels = metric.labels {
                guard labels.count <= limits.maxObjectKeys else {
                    throw fields.error("labels", "must have at most \(limits.maxObjectKeys) keys, got \(labels.count)")
                }
                for label in labels {
                    try fields.checkKey(label.key, in: "labels")
                    try fields.checkText(label.value, at: "labels.\(Fields.clipped(label.key))", maxBytes: limits.maxStringBytes)
                }
            }
            return .metric(metric)
        case .deployment(var deployment):
            deployment.service = try service(deployment.service)
            try fields.checkText(deployment.environment, at: "environment", maxBytes: limits.maxIndexedBytes)
            try timestamp(deployment.timestamp)
            try metadata(deployment.metadata)
            return .deployment(deployment)
        }
    }
}

extension EventValidator {
    /// Checks `value` as the member `name` of an event's `metadata`, by the rules of `metadata` (its depth counted from
    /// the metadata object).
    public func checkMetadataMember(_ value: JSONValue, named name: String, kind: EventKind) throws(ValidationError) {
        let fields = Fields(kind: kind, object: .null, path: "", limits: limits)
        try fields.checkKey(name, in: "metadata")
        try fields.checkNested(value, path: "metadata.\(name)", depth: 2, root: "metadata")
    }
}

/// Field readers over one event object, producing errors with the event's path.
private struct Fields {
    let kind: EventKind
    let object: JSONValue
    let path: String
    let limits: EventLimits

    func error(_ field: String, _ rule: String) -> ValidationError {
        ValidationError(kind: kind, path: path + field, rule: rule)
    }

    /// The field's value; `nil` when absent or `null`.
    func value(_ field: String) -> JSONValue? {
        guard let value = object[field], value != .null else { return nil }
        return value
    }

    /// A string field; `nonEmpty` refuses `""` (names, versions and environments: an empty one says nothing).
    func string(_ field: String, required: Bool = false, nonEmpty: Bool = false, maxBytes: Int? = nil) throws(ValidationError) -> String? {
        guard let value = value(field) else {
            if required { throw error(field, "is required") }
            return nil
        }
        guard case .string(let text) = value else { throw error(field, "must be a string, got \(value.typeName)") }
        if nonEmpty && text.isEmpty { throw error(field, "must not be empty") }
        try checkText(text, at: field, maxBytes: maxBytes ?? limits.maxStringBytes)
        return text
    }

    func service() throws(ValidationError) -> String {
        let raw = try string("service", required: true, maxBytes: limits.maxIndexedBytes)!
        let trimmed = Self.trimmed(raw)
        guard !trimmed.isEmpty else { throw error("service", "must not be empty") }
        return trimmed
    }

    func number(_ field: String) throws(ValidationError) -> Double {
        guard let value = value(field) else { throw error(field, "is required") }
        guard case .number(let text) = value else { throw error(field, "must be a number, got \(value.typeName)") }
        guard let number = Double(text), number.isFinite else {
            throw error(field, "must be a finite number within ±1.8e308")
        }
        return number
    }

    func timestamp(now: Timestamp) throws(ValidationError) -> Timestamp {
        guard let text = try string("timestamp") else { return now }
        guard let timestamp = Timestamp(iso8601: text, years: Timestamp.inputYears) else {
            throw error("timestamp", "must be an ISO 8601 date-time such as 2024-05-01T12:00:00Z, got '\(Self.clipped(text))'")
        }
        guard Timestamp.storable.contains(timestamp) else {
            throw error("timestamp", "must be within 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z in UTC, got '\(Self.clipped(text))'")
        }
        return timestamp
    }

    func labels(_ field: String) throws(ValidationError) -> [(key: String, value: String)]? {
        guard let value = value(field) else { return nil }
        guard case .object(let members) = value else { throw error(field, "must be an object, got \(value.typeName)") }
        guard members.count <= limits.maxObjectKeys else {
            throw error(field, "must have at most \(limits.maxObjectKeys) keys, got \(members.count)")
        }
        var labels: [(key: String, value: String)] = []
        labels.reserveCapacity(members.count)
        for member in members {
            try checkKey(member.key, in: field)
            guard case .string(let text) = member.value else {
                throw error("\(field).\(Self.clipped(member.key))", "must be a string, got \(member.value.typeName)")
            }
            try checkText(text, at: "\(field).\(Self.clipped(member.key))", maxBytes: limits.maxStringBytes)
            labels.append((member.key, text))
        }
        return labels
    }

    func metadata(_ field: String) throws(ValidationError) -> JSONValue? {
        guard let value = value(field) else { return nil }
        guard case .object = value else { throw error(field, "must be an object, got \(value.typeName)") }
        try checkNested(value, path: field, depth: 1, root: field)
        return value
    }

    /// `path` is made only for an error: most values pass, and a path per value costs more than the checks.
    fileprivate func checkNested(_ value: JSONValue, path: @autoclosure () -> String, depth: Int, root: String) throws(ValidationError) {
        switch value {
        case .object(let members):
            guard depth <= limits.maxObjectDepth else { throw error(root, "must be at most \(limits.maxObjectDepth) levels deep") }
            guard members.count <= limits.maxObjectKeys else {
                throw error(path(), "must have at most \(limits.maxObjectKeys) keys, got \(members.count)")
            }
            for member in members {
                try checkKey(member.key, in: path())
                try checkNested(member.value, path: "\(path()).\(Self.clipped(member.key))", depth: depth + 1, root: root)
            }
        case .array(let elements):
            guard depth <= limits.maxObjectDepth else { throw error(root, "must be at most \(limits.maxObjectDepth) levels deep") }
            for (index, element) in elements.enumerated() {
                try checkNested(element, path: "\(path())[\(index)]", depth: depth + 1, root: root)
            }
        case .string(let text):
            try checkText(text, at: path(), maxBytes: limits.maxStringBytes)
        case .number(let text):
            // Both sinks store the number's text as sent; PostgreSQL's jsonb holds it as an exact decimal, which has
            // an exponent range of its own: within a double's range, every number fits both.
            guard text.utf8.count <= limits.maxStringBytes, let number = Double(text), number.isFinite, number != 0 || Self.isZeroMantissa(text)
            else {
                throw error(path(), "must be a number within the range of a 64-bit float (±1e-308 to ±1.8e308, or 0), got '\(Self.clipped(text))'")
            }
        default:
            break
        }
    }

    fileprivate func checkKey(_ key: String, in path: @autoclosure () -> String) throws(ValidationError) {
        guard key.utf8.count <= limits.maxStringBytes else {
            throw error(path(), "keys must be at most \(limits.maxStringBytes) bytes, got \(key.utf8.count)")
        }
        guard !Self.containsNUL(key) else { throw error(path(), "keys must not contain U+0000 (NUL)") }
    }

    /// A string's size bound, and no NUL: PostgreSQL can store NUL in neither `text` nor `jsonb`, and SQLite's text
    /// functions stop at it, so no sink could keep the 202's promise.
    fileprivate func checkText(_ text: String, at path: @autoclosure () -> String, maxBytes: Int) throws(ValidationError) {
        guard text.utf8.count <= maxBytes else { throw error(path(), "must be at most \(maxBytes) bytes, got \(text.utf8.count)") }
        guard !Self.containsNUL(text) else { throw error(path(), "must not contain U+0000 (NUL)") }
    }

    static func containsNUL(_ text: String) -> Bool {
        text.utf8.withContiguousStorageIfAvailable { bytes in
            guard let start = bytes.baseAddress else { return false }
            return memchr(start, 0, bytes.count) != nil
        } ?? text.utf8.contains(0)
    }

    /// Whether a number's digits before its exponent are all zero (`0.000e5`): a true zero, not an underflow.
    static func isZeroMantissa(_ text: String) -> Bool {
        text.utf8.prefix { $0 != UInt8(ascii: "e") && $0 != UInt8(ascii: "E") }.allSatisfy { !(UInt8(ascii: "1")...UInt8(ascii: "9")).contains($0) }
    }

    static func trimmed(_ text: String) -> String {
        // Most names start and end with a visible ASCII character: nothing to trim, no Unicode properties to look up.
        if let first = text.utf8.first, let last = text.utf8.last, (0x21...0x7E).contains(first), (0x21...0x7E).contains(last) { return text }
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(scalars[first...last])
    }

    static func clipped(_ text: String) -> String {
        text.count > 64 ? String(text.prefix(64)) + "…" : text
    }
}
