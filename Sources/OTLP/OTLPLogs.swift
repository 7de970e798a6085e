import Shared

/// OTLP log records as `logs` events:
///
/// | OTLP | event |
/// |---|---|
/// | resource attribute `service.name` | `service` (none: the record is refused) |
/// | `severity_number` 1–8 (TRACE, DEBUG), 9–12, 13–16, 17–20, 21–24 | `debug`, `info`, `warn`, `error`, `fatal` |
/// | `severity_number` 0 | from `severity_text`, else `info` |
/// | `body` | `message`: a string as itself, any other value as compact JSON, none as `""` |
/// | `time_unix_nano`, else `observed_time_unix_nano`, else receipt | `timestamp` |
/// | `trace_id`, `span_id` | `traceId`, `spanId` in lowercase hex |
/// | attributes, resource attributes (but `service.name`), scope, `severity_text`, `event_name` | `metadata` |
public struct OTLPLogs: Sendable {
    /// The rules every event meets.
    public var validator: EventValidator

    public init(validator: EventValidator) { self.validator = validator }

    /// The request's records as events; `now` stands for a record with neither time.
    public func events(_ request: OTLPExportLogsServiceRequest, encoding: OTLPEncoding, now: Timestamp) -> OTLPBatch {
        var batch = OTLPBatch(noun: "log records")
        batch.events.reserveCapacity(Self.recordCount(request))
        for (r, resourceLogs) in request.resourceLogs.enumerated() {
            let resource = resourceLogs.resource.attributes
            // The resource's and the scope's metadata are shared by their records: checked once.
            let service = OTLPValues.serviceName(resource).flatMap { name in
                Result { () throws(Rejection) in (name, try member("resource", Self.resource(resource))) }
            }
            for (s, scopeLogs) in resourceLogs.scopeLogs.enumerated() {
                let scope = Result { () throws(Rejection) in try member("scope", Self.scope(scopeLogs.scope)) }
                let path = { (l: Int) in "resourceLogs[\(r)].scopeLogs[\(s)].logRecords[\(l)]" }
                // Unwrapped once for all the scope's records (not copied out of their `Result` per record).
                let shared: (name: String, resource: JSONValue?, scope: JSONValue?)
                switch (service, scope) {
                case (.success(let service), .success(let scope)): shared = (service.0, service.1, scope)
                case (.failure(let rejection), _), (_, .failure(let rejection)):
                    for l in scopeLogs.logRecords.indices { batch.reject(path(l), rejection) }
                    continue
                }
                // Through the buffer: each record is borrowed, not copied.
                scopeLogs.logRecords.withUnsafeBufferPointer { records in
                    for l in records.indices {
                        do throws(Rejection) {
                            batch.events.append(
                                try event(records[l], service: shared.name, resource: shared.resource, scope: shared.scope, encoding: encoding, now: now))
                        } catch {
                            batch.reject(path(l), error)
                        }
                    }
                }
            }
        }
        return batch
    }

    /// `value` checked as the metadata member `name`.
    private func member(_ name: String, _ value: JSONValue?) throws(Rejection) -> JSONValue? {
        guard let value else { return nil }
        do {
            try validator.checkMetadataMember(value, named: name, kind: .logs)
        } catch {
            throw Rejection(error)
        }
        return value
    }

    /// How many log records a request holds.
    public static func recordCount(_ request: OTLPExportLogsServiceRequest) -> Int {
        request.resourceLogs.reduce(0) { total, resource in resource.scopeLogs.reduce(total) { $0 + $1.logRecords.count } }
    }

    private func event(
        _ record: borrowing OTLPLogRecord, service: String, resource: JSONValue?, scope: JSONValue?, encoding: OTLPEncoding, now: Timestamp
    ) throws(Rejection) -> IngestEvent {
        guard let level = Self.level(number: record.severityNumber.rawValue, text: record.severityText) else {
            throw Rejection("severity_number must be 0 to 24, got \(record.severityNumber.rawValue)")
        }
        let message: String
        switch record.body.value {
        case .stringValue(let text): message = text
        case nil: message = ""
        default: message = OTLPValues.json(record.body).jsonText
        }
        let timestamp =
            OTLPValues.timestamp(unixNano: record.timeUnixNano) ?? OTLPValues.timestamp(unixNano: record.observedTimeUnixNano) ?? now
        let traceId = try OTLPValues.hexID(record.traceID, length: 16, encoding: encoding, field: "trace_id").get()
        let spanId = try OTLPValues.hexID(record.spanID, length: 8, encoding: encoding, field: "span_id").get()
        var metadata: [(key: String, value: JSONValue)] = []
        metadata.reserveCapacity(5)
        if !record.attributes.isEmpty { metadata.append(("attributes", try member("attributes", OTLPValues.object(record.attributes))!)) }
        if let resource { metadata.append(("resource", resource)) }
        if let scope { metadata.append(("scope", scope)) }
        if !record.severityText.isEmpty { metadata.append(("severityText", try member("severityText", .string(record.severityText))!)) }
        if !record.eventName.isEmpty { metadata.append(("eventName", try member("eventName", .string(record.eventName))!)) }
        guard metadata.count <= validator.limits.maxObjectKeys else {
            throw Rejection("metadata must have at most \(validator.limits.maxObjectKeys) keys, got \(metadata.count)")
        }
        let event = LogEvent(
            service: service, level: level, message: message, timestamp: timestamp, traceId: traceId, spanId: spanId,
            metadata: metadata.isEmpty ? nil : .object(metadata))
        do {
            return try validator.checked(.log(event), path: "", metadataChecked: true)
        } catch {
            throw Rejection(error)
        }
    }

    /// The resource's attributes but `service.name` (the events' `service`), when there are any.
    static func resource(_ attributes: [OTLPKeyValue]) -> JSONValue? {
        let others = attributes.filter { $0.key != "service.name" }
        return others.isEmpty ? nil : OTLPValues.object(others)
    }

    /// The scope's name, version and attributes, when it has any.
    static func scope(_ scope: OTLPInstrumentationScope) -> JSONValue? {
        var members: [(key: String, value: JSONValue)] = []
        if !scope.name.isEmpty { members.append(("name", .string(scope.name))) }
        if !scope.version.isEmpty { members.append(("version", .string(scope.version))) }
        if !scope.attributes.isEmpty { members.append(("attributes", OTLPValues.object(scope.attributes))) }
        return members.isEmpty ? nil : .object(members)
    }

    /// The level of a severity: the number's range (TRACE has no level of its own and counts as `debug`), or for 0
    /// (unspecified) the text's first word (`trace`, `debug`, `info`, `notice`, `warn`, `warning`, `error`, `err`,
    /// `fatal`, `critical`, `crit`, `alert`, `emerg`, `emergency`, `panic`, any case), else `info`. `nil` past 24.
    public static func level(number: Int, text: String) -> LogLevel? {
        switch number {
        case 1...8: return .debug
        case 9...12: return .info
        case 13...16: return .warn
        case 17...20: return .error
        case 21...24: return .fatal
        case 0: break
        default: return nil
        }
        let word = text.prefix { $0.isLetter }.lowercased()
        switch word {
        case "trace", "debug": return .debug
        case "warn", "warning": return .warn
        case "error", "err": return .error
        case "fatal", "critical", "crit", "alert", "emerg", "emergency", "panic": return .fatal
        default: return .info
        }
    }
}
