import Foundation
import SwiftProtobuf

/// The two encodings of OTLP/HTTP: binary protobuf (`application/x-protobuf`) and the protocol's JSON mapping
/// (`application/json`). An answer is written in the encoding of its request.
public enum OTLPEncoding: Sendable, Equatable {
    case protobuf
    case json

    /// The encoding a `Content-Type` names (parameters such as `charset` aside), or `nil` for any other media type.
    public init?(contentType: String?) {
        guard var mediaType = contentType?.utf8[...] else { return nil }
        // Read on every request: bytes compared in place (Foundation's trimming and lowercasing cost 1.6 % of the
        // gateway's CPU on OTLP batches).
        if let semicolon = mediaType.firstIndex(of: UInt8(ascii: ";")) { mediaType = mediaType[..<semicolon] }
        let blank: (UInt8) -> Bool = { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        while let first = mediaType.first, blank(first) { mediaType = mediaType.dropFirst() }
        while let last = mediaType.last, blank(last) { mediaType = mediaType.dropLast() }
        func named(_ name: StaticString) -> Bool {
            let bytes = UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
            // ASCII letters lowercased by setting bit 5; the names are lowercase letters and `-`, `/`.
            return mediaType.count == bytes.count
                && zip(mediaType, bytes).allSatisfy { byte, expected in
                    byte == expected || (expected >= UInt8(ascii: "a") && expected <= UInt8(ascii: "z") && byte | 0x20 == expected)
                }
        }
        if named("application/x-protobuf") || named("application/protobuf") {
            self = .protobuf
        } else if named("application/json") {
            self = .json
        } else {
            return nil
        }
    }

    /// The `Content-Type` of answers in this encoding.
    public var contentType: String {
        switch self {
        case .protobuf: "application/x-protobuf"
        case .json: "application/json"
        }
    }

    /// How the messages are named in errors.
    var name: String {
        switch self {
        case .protobuf: "protobuf"
        case .json: "JSON"
        }
    }
}

/// A body that is not the message it should be: the whole request is answered 400.
public struct OTLPBodyError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

extension OTLPEncoding {
    /// Fields this gateway does not read are skipped in both encodings; nesting deeper than 64 messages (an
    /// `AnyValue` inside a list inside a value… 20 levels down) is refused before it can exhaust a stack.
    static let depthLimit = 64

    /// Decodes a logs export request.
    public func decode(_ type: OTLPExportLogsServiceRequest.Type, from bytes: UnsafeRawBufferPointer) throws(OTLPBodyError)
        -> OTLPExportLogsServiceRequest
    {
        try decoded(type, from: bytes)
    }

    /// Decodes a metrics export request.
    public func decode(_ type: OTLPExportMetricsServiceRequest.Type, from bytes: UnsafeRawBufferPointer) throws(OTLPBodyError)
        -> OTLPExportMetricsServiceRequest
    {
        try decoded(type, from: bytes)
    }

    /// Protobuf through `OTLPBinaryDecoder` (specialized here for each request type); JSON logs through
    /// `OTLPJSONLogs` where it can, else (and metrics) through swift-protobuf's JSON decoder.
    private func decoded<Request: SwiftProtobuf.Message>(_ type: Request.Type, from bytes: UnsafeRawBufferPointer) throws(OTLPBodyError)
        -> Request
    {
        do {
            switch self {
            case .protobuf:
                return try OTLPBinaryDecoder.decode(type, from: bytes, depthLimit: Self.depthLimit)
            case .json:
                if Request.self == OTLPExportLogsServiceRequest.self, let request = OTLPJSONLogs.decode(bytes) as? Request { return request }
                var options = JSONDecodingOptions()
                options.messageDepthLimit = Self.depthLimit
                options.ignoreUnknownFields = true
                return try Request(jsonUTF8Bytes: Array(bytes), options: options)
            }
        } catch {
            let what = String(describing: Request.protoMessageName.split(separator: ".").last ?? "message")
            throw OTLPBodyError(message: "Request body is not a valid OTLP \(what) in \(name): \(Self.describe(error))")
        }
    }

    /// Encodes an answer.
    public func encode(_ message: some SwiftProtobuf.Message) -> [UInt8] {
        switch self {
        case .protobuf: (try? message.serializedBytes()) ?? []
        case .json: (try? message.jsonUTF8Bytes()) ?? Array("{}".utf8)
        }
    }

    /// The body of an error answer: a `google.rpc.Status` with the gRPC code matching the HTTP status, as OTLP/HTTP
    /// asks, in this encoding (`{"code":3,"message":"…"}` in JSON).
    public func status(httpStatus: Int, message: String) -> [UInt8] {
        var status = RPCStatus()
        status.code = Self.grpcCode(httpStatus: httpStatus)
        status.message = message
        return encode(status)
    }

    /// The gRPC code closest to an HTTP status.
    static func grpcCode(httpStatus: Int) -> Int32 {
        switch httpStatus {
        case 400, 413, 415: 3  // INVALID_ARGUMENT
        case 401: 16  // UNAUTHENTICATED
        case 403: 7  // PERMISSION_DENIED
        case 404: 5  // NOT_FOUND
        case 422: 9  // FAILED_PRECONDITION
        case 429: 8  // RESOURCE_EXHAUSTED
        case 503: 14  // UNAVAILABLE
        default: 13  // INTERNAL
        }
    }

    /// swift-protobuf's errors are enum cases (`truncated`, `malformedProtobuf`…): said in words where known.
    static func describe(_ error: any Error) -> String {
        let name = String(describing: error)
        let words: [String: String] = [
            "truncated": "it ends in the middle of a value",
            "malformedProtobuf": "bytes that are not protobuf (a bad tag, wire type or length)",
            "messageDepthLimit": "messages nested more than \(depthLimit) deep",
            "invalidUTF8": "a string that is not UTF-8",
            "failure": "a field of the wrong type",
            "malformedNumber": "a number that is not one, or out of its field's range",
            "numberRange": "a number out of its field's range",
            "malformedString": "a string that is not valid (bytes must be base64 text; ids hexadecimal)",
            "malformedBool": "a boolean that is not true or false",
            "unrecognizedEnumValue": "an enum name that does not exist",
            "trailingGarbage": "text after the JSON value",
            "conflictingOneOf": "two fields of one oneof",
            "illegalNull": "null where a value is needed",
            "leadingZero": "a number with a leading zero",
            "schemaMismatch": "a field of the wrong type",
        ]
        if let words = words[name] { return words }
        return name.count > 200 ? String(name.prefix(200)) + "…" : name
    }
}
