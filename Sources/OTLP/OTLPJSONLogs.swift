import Foundation
import Shared

/// A fast path for OTLP/JSON log exports: the body read with the gateway's own JSON parser and the export request
/// built from it directly, for the shapes exporters send.
///
/// swift-protobuf's JSON decoder is generic, from another module and unspecialized, and cost OTLP/JSON a third of the
/// JSON batch's events/s. This path takes a body only when it can build the very message swift-protobuf would: every
/// key is one of the fields the gateway reads, by its JSON (lowerCamelCase) name, or a key no message here declares
/// (skipped, as `ignoreUnknownFields` does); every value has its field's JSON type (integers as plain digits, quoted
/// or not; `intValue` may be negative; no `null`, no enum names, no `bytesValue`); ids are hexadecimal of the right
/// length. Anything else (a field by its proto name, a duplicate key, a value of another form, JSON it refuses)
/// answers `nil`, and the body goes to swift-protobuf's decoder, which decodes it or says why not as before. A test
/// compares both decoders on a corpus.
enum OTLPJSONLogs {
    /// The request, or `nil` when swift-protobuf should decide.
    static func decode(_ bytes: UnsafeRawBufferPointer) -> OTLPExportLogsServiceRequest? {
        guard let value = try? JSONParser.parse(bytes: bytes), case .object(let members) = value else { return nil }
        var request = OTLPExportLogsServiceRequest()
        for (key, value) in members {
            switch key {
            case "resourceLogs":
                guard case .array(let items) = value else { return nil }
                request.resourceLogs.reserveCapacity(items.count)
                for item in items {
                    guard let resourceLogs = resourceLogs(item) else { return nil }
                    request.resourceLogs.append(resourceLogs)
                }
            case "resource_logs": return nil
            default: continue
            }
        }
        return request
    }

    private static func resourceLogs(_ value: JSONValue) -> OTLPResourceLogs? {
        guard case .object(let members) = value else { return nil }
        var resourceLogs = OTLPResourceLogs()
        for (key, value) in members {
            switch key {
            case "resource":
                guard case .object(let fields) = value else { return nil }
                var resource = OTLPResource()
                for (key, value) in fields {
                    switch key {
                    case "attributes":
                        guard let attributes = keyValues(value, depth: 0) else { return nil }
                        resource.attributes = attributes
                    default: continue
                    }
                }
                resourceLogs.resource = resource
            case "scopeLogs":
                guard case .array(let items) = value else { return nil }
                resourceLogs.scopeLogs.reserveCapacity(items.count)
                for item in items {
                    guard let scopeLogs = scopeLogs(item) else { return nil }
                    resourceLogs.scopeLogs.append(scopeLogs)
                }
            case "scope_logs": return nil
            default: continue
            }
        }
        return resourceLogs
    }

    private static func scopeLogs(_ value: JSONValue) -> OTLPScopeLogs? {
        guard case .object(let members) = value else { return nil }
        var scopeLogs = OTLPScopeLogs()
        for (key, value) in members {
            switch key {
            case "scope":
                guard case .object(let fields) = value else { return nil }
                var scope = OTLPInstrumentationScope()
                for (key, value) in fields {
                    switch key {
                    case "name":
                        guard case .string(let name) = value else { return nil }
                        scope.name = name
                    case "version":
                        guard case .string(let version) = value else { return nil }
                        scope.version = version
                    case "attributes":
                        guard let attributes = keyValues(value, depth: 0) else { return nil }
                        scope.attributes = attributes
                    default: continue
                    }
                }
                scopeLogs.scope = scope
            case "logRecords":
                guard case .array(let items) = value else { return nil }
                scopeLogs.logRecords.reserveCapacity(items.count)
                for item in items {
                    guard let record = logRecord(item) else { return nil }
                    scopeLogs.logRecords.append(record)
                }
            case "log_records": return nil
            default: continue
            }
        }
        return scopeLogs
    }

    private static func logRecord(_ value: JSONValue) -> OTLPLogRecord? {
        guard case .object(let members) = value else { return nil }
        var record = OTLPLogRecord()
        for (key, value) in members {
            switch key {
            case "timeUnixNano":
                guard let nanoseconds = unsigned(value, max: UInt64.max) else { return nil }
                record.timeUnixNano = nanoseconds
            case "observedTimeUnixNano":
                guard let nanoseconds = unsigned(value, max: UInt64.max) else { return nil }
                record.observedTimeUnixNano = nanoseconds
            case "severityNumber":
                // An enum by its number (a name goes to swift-protobuf); proto3 keeps numbers it does not know.
                guard case .number = value, let number = unsigned(value, max: UInt64(Int32.max)),
                    let severity = OTLPSeverityNumber(rawValue: Int(number))
                else { return nil }
                record.severityNumber = severity
            case "severityText":
                guard case .string(let text) = value else { return nil }
                record.severityText = text
            case "body":
                guard let body = anyValue(value, depth: 0) else { return nil }
                record.body = body
            case "attributes":
                guard let attributes = keyValues(value, depth: 0) else { return nil }
                record.attributes = attributes
            case "flags":
                guard let flags = unsigned(value, max: UInt64(UInt32.max)) else { return nil }
                record.flags = UInt32(flags)
            case "traceId":
                guard let id = id(value, digits: 32) else { return nil }
                record.traceID = id
            case "spanId":
                guard let id = id(value, digits: 16) else { return nil }
                record.spanID = id
            case "eventName":
                guard case .string(let name) = value else { return nil }
                record.eventName = name
            case "time_unix_nano", "observed_time_unix_nano", "severity_number", "severity_text", "trace_id", "span_id", "event_name":
                return nil
            default: continue
            }
        }
        return record
    }

    /// How deep values may nest here (an array in a list in a value…); deeper goes to swift-protobuf and its limit.
    private static let maxDepth = 8

    private static func keyValues(_ value: JSONValue, depth: Int) -> [OTLPKeyValue]? {
        guard case .array(let items) = value else { return nil }
        var keyValues: [OTLPKeyValue] = []
        keyValues.reserveCapacity(items.count)
        for item in items {
            guard case .object(let members) = item else { return nil }
            var keyValue = OTLPKeyValue()
            for (key, value) in members {
                switch key {
                case "key":
                    guard case .string(let text) = value else { return nil }
                    keyValue.key = text
                case "value":
                    guard let any = anyValue(value, depth: depth) else { return nil }
                    keyValue.value = any
                default: continue
                }
            }
            keyValues.append(keyValue)
        }
        return keyValues
    }

    private static func anyValue(_ value: JSONValue, depth: Int) -> OTLPAnyValue? {
        guard depth < maxDepth, case .object(let members) = value else { return nil }
        var any = OTLPAnyValue()
        for (key, value) in members {
            // A oneof: a second member of it goes to swift-protobuf (which refuses it).
            switch key {
            case "stringValue":
                guard any.value == nil, case .string(let text) = value else { return nil }
                any.value = .stringValue(text)
            case "boolValue":
                guard any.value == nil, case .bool(let flag) = value else { return nil }
                any.value = .boolValue(flag)
            case "intValue":
                guard any.value == nil, let number = signed(value) else { return nil }
                any.value = .intValue(number)
            case "doubleValue":
                guard any.value == nil, case .number(let text) = value, let number = Double(text), number.isFinite else { return nil }
                any.value = .doubleValue(number)
            case "arrayValue":
                guard any.value == nil, case .object(let fields) = value else { return nil }
                var array = OTLPArrayValue()
                for (key, value) in fields {
                    guard key == "values" else { continue }
                    guard case .array(let items) = value else { return nil }
                    array.values.reserveCapacity(items.count)
                    for item in items {
                        guard let element = anyValue(item, depth: depth + 1) else { return nil }
                        array.values.append(element)
                    }
                }
                any.value = .arrayValue(array)
            case "kvlistValue":
                guard any.value == nil, case .object(let fields) = value else { return nil }
                var list = OTLPKeyValueList()
                for (key, value) in fields {
                    guard key == "values" else { continue }
                    guard let values = keyValues(value, depth: depth + 1) else { return nil }
                    list.values = values
                }
                any.value = .kvlistValue(list)
            case "bytesValue", "string_value", "bool_value", "int_value", "double_value", "array_value", "kvlist_value", "bytes_value":
                return nil
            default: continue
            }
        }
        return any
    }

    /// Plain digits, as a JSON number or a string, at most `max`.
    private static func unsigned(_ value: JSONValue, max: UInt64) -> UInt64? {
        let text: String
        switch value {
        case .number(let digits), .string(let digits): text = digits
        default: return nil
        }
        guard !text.isEmpty, text.utf8.count <= 20, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            text.utf8.count == 1 || text.utf8.first != UInt8(ascii: "0"), let number = UInt64(text), number <= max
        else { return nil }
        return number
    }

    /// Plain digits, maybe after a `-`, as a JSON number or a string, within `Int64`.
    private static func signed(_ value: JSONValue) -> Int64? {
        let text: String
        switch value {
        case .number(let digits), .string(let digits): text = digits
        default: return nil
        }
        var digits = text.utf8[...]
        if digits.first == UInt8(ascii: "-") { digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.count <= 19, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            digits.count == 1 || digits.first != UInt8(ascii: "0")
        else { return nil }
        return Int64(text)
    }

    /// A trace or span id: empty, or exactly `digits` hexadecimal digits, read as swift-protobuf reads a `bytes`
    /// field (base64: every hex digit is a base64 digit; OTLPValues.hexID turns the bytes back into the digits).
    private static func id(_ value: JSONValue, digits: Int) -> Data? {
        guard case .string(let text) = value else { return nil }
        if text.isEmpty { return Data() }
        guard text.utf8.count == digits,
            text.utf8.allSatisfy({
                ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "f"))
                    || ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "F"))
            })
        else { return nil }
        return Data(base64Encoded: text)
    }
}
