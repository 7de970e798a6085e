import Foundation
import Shared

/// How OTLP values become the JSON of `metadata` and the strings of `labels`.
enum OTLPValues {
    /// An `AnyValue` as JSON: strings, booleans and arrays as themselves, integers and finite doubles as numbers, a
    /// key-value list as an object (a repeated key keeps its last value), bytes as base64 text, a non-finite double as
    /// the text `NaN`, `Infinity` or `-Infinity` (as the protobuf JSON mapping writes them), an empty value as `null`.
    static func json(_ value: OTLPAnyValue) -> JSONValue {
        switch value.value {
        case .stringValue(let text): .string(text)
        case .boolValue(let flag): .bool(flag)
        case .intValue(let number): .number(String(number))
        case .doubleValue(let number): number.isFinite ? .number(numberText(number)) : .string(nonFiniteText(number))
        case .arrayValue(let array): .array(array.values.map(json))
        case .kvlistValue(let list): object(list.values)
        case .bytesValue(let bytes): .string(bytes.base64EncodedString())
        case nil: .null
        }
    }

    /// Attributes as a JSON object, in the order sent; a repeated key keeps its last value.
    static func object(_ attributes: [OTLPKeyValue]) -> JSONValue {
        .object(unique(attributes).map { (key: $0.key, value: json($0.value)) })
    }

    /// Attributes as label strings: a string as itself, any other value as its compact JSON.
    static func labels(_ attributes: [OTLPKeyValue]) -> [(key: String, value: String)] {
        unique(attributes).map { attribute in
            if case .stringValue(let text) = attribute.value.value { return (attribute.key, text) }
            return (attribute.key, json(attribute.value).jsonText)
        }
    }

    /// The attributes with each key once, at its first place, with its last value.
    static func unique(_ attributes: [OTLPKeyValue]) -> [OTLPKeyValue] {
        guard attributes.count > 1 else { return attributes }
        var seen: [String: Int] = [:]
        var result: [OTLPKeyValue] = []
        result.reserveCapacity(attributes.count)
        for attribute in attributes {
            if let index = seen[attribute.key] {
                result[index] = attribute
            } else {
                seen[attribute.key] = result.count
                result.append(attribute)
            }
        }
        return result
    }

    /// The resource's `service.name`, or why there is none.
    static func serviceName(_ resource: [OTLPKeyValue]) -> Result<String, Rejection> {
        guard let attribute = resource.last(where: { $0.key == "service.name" }) else {
            return .failure(Rejection("resource has no service.name attribute"))
        }
        guard case .stringValue(let name) = attribute.value.value else {
            return .failure(Rejection("resource attribute service.name must be a string"))
        }
        return .success(name)
    }

    /// A double as JSON text: integral values without a fraction (`3`, not `3.0`).
    static func numberText(_ number: Double) -> String {
        if number == number.rounded(), abs(number) < 1e15 { return String(Int64(number)) }
        return String(number)
    }

    static func nonFiniteText(_ number: Double) -> String {
        number.isNaN ? "NaN" : number > 0 ? "Infinity" : "-Infinity"
    }

    /// A trace id (16 bytes) or span id (8) as lowercase hex; `nil` when empty or all zero (OTLP's "no id").
    ///
    /// OTLP/JSON writes ids as hex text where the protobuf JSON mapping would write base64, so a JSON body decodes them
    /// as base64: hex digits are all base64 digits, and for a 32- or 16-digit id the decoding is exact and undone by
    /// encoding the bytes again, which gives back the text sent.
    static func hexID(_ bytes: Data, length: Int, encoding: OTLPEncoding, field: String) -> Result<String?, Rejection> {
        if bytes.isEmpty { return .success(nil) }
        var hex = [UInt8](repeating: 0, count: length * 2)
        switch encoding {
        case .protobuf:
            guard bytes.count == length else {
                return .failure(Rejection("\(field) must be \(length) bytes, got \(bytes.count)"))
            }
            for (index, byte) in bytes.enumerated() {
                hex[index * 2] = hexDigits[Int(byte >> 4)]
                hex[index * 2 + 1] = hexDigits[Int(byte & 0x0F)]
            }
        case .json:
            // The text sent, back from its base64 decoding: 3 bytes are 4 digits.
            guard bytes.count * 4 == length * 6 else { return .failure(Rejection("\(field) must be \(length * 2) hexadecimal digits")) }
            let text = bytes.base64EncodedData()
            guard text.count == length * 2 else { return .failure(Rejection("\(field) must be \(length * 2) hexadecimal digits")) }
            for (index, digit) in text.enumerated() {
                guard let value = hexValue(digit) else { return .failure(Rejection("\(field) must be \(length * 2) hexadecimal digits")) }
                hex[index] = hexDigits[Int(value)]
            }
        }
        if hex.allSatisfy({ $0 == UInt8(ascii: "0") }) { return .success(nil) }
        return .success(String(decoding: hex, as: UTF8.self))
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Nanoseconds since the Unix epoch as a timestamp (milliseconds); 0 is OTLP's "unknown".
    static func timestamp(unixNano: UInt64) -> Timestamp? {
        unixNano == 0 ? nil : Timestamp(milliseconds: Int64(unixNano / 1_000_000))
    }
}

/// Why one record or data point was refused.
struct Rejection: Error {
    var reason: String
    init(_ reason: String) { self.reason = reason }
    init(_ error: ValidationError) { reason = error.path.isEmpty ? error.rule : "\(error.path) \(error.rule)" }
}
