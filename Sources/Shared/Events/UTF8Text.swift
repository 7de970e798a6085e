/// Strings from bytes that must be valid UTF-8, without `String(validating:as:)`, which instantiates generic metadata
/// on every call (8 % of the gateway's CPU on batches, a few percent of the worker's). The JSON parser, the stream
/// entry codec and the OTLP protobuf decoder read their strings through it.
public enum UTF8Text {
    /// `bytes` as a string when they are valid UTF-8. ASCII needs no check; otherwise decoding repairs invalid bytes,
    /// so the repaired text differs from its input exactly when the input was invalid.
    public static func validated(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        let text = String(decoding: bytes, as: UTF8.self)
        if isASCII(bytes) { return text }
        return text.utf8.elementsEqual(bytes) ? text : nil
    }

    /// Whether every byte is below 0x80, eight at a time.
    static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let raw = UnsafeRawPointer(base)
        var index = 0
        var seen: UInt64 = 0
        while index + 8 <= bytes.count {
            seen |= raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            index += 8
        }
        while index < bytes.count {
            seen |= UInt64(bytes[index])
            index += 1
        }
        return seen & 0x8080_8080_8080_8080 == 0
    }
}
