import Testing

@testable import Shared

@Suite("UTF-8 validation of decoded strings")
struct UTF8TextTests {
    func validated(_ bytes: [UInt8]) -> String? { bytes.withUnsafeBufferPointer(UTF8Text.validated) }

    @Test func validTextComesBackAsItWas() {
        for text in ["", "a", "abcdefg", "abcdefgh", "abcdefghi", "é", "plain then é", "日本語のテキスト", "😀 emoji after eight", "\u{2028}"] {
            #expect(validated(Array(text.utf8)) == text)
        }
    }

    @Test func invalidBytesAreRefusedWherever() {
        let invalid: [[UInt8]] = [
            [0x80], [0xC3], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xFF], [0xE6, 0x97],
        ]
        for bytes in invalid {
            for prefix in [[], Array("1234567".utf8), Array("12345678".utf8)] {
                #expect(validated(prefix + bytes) == nil, "\(prefix + bytes)")
                #expect(validated(prefix + bytes + Array("tail".utf8)) == nil, "\(prefix + bytes)")
            }
        }
    }
}
