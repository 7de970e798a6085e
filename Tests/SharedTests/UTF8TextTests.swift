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

    /// Every 1- and 2-byte sequence, every 3-byte sequence with a lead of E0–F4 and edge continuations, and runs of up to three
    /// pieces: the check says
    /// what the standard library's validating decoder says.
    @Test("agrees with the standard library's validating decoder")
    func utf8() {
        func agree(_ bytes: [UInt8]) -> Bool {
            (validated(bytes) != nil) == (String(validating: bytes, as: UTF8.self) != nil)
        }
        var disagreements: [[UInt8]] = []
        for a in 0...255 {
            if !agree([UInt8(a)]) { disagreements.append([UInt8(a)]) }
            for b in 0...255 {
                if !agree([UInt8(a), UInt8(b)]) { disagreements.append([UInt8(a), UInt8(b)]) }
                if a >= 0xE0, a <= 0xF4 {
                    for c in [0x00, 0x7F, 0x80, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF] where !agree([UInt8(a), UInt8(b), UInt8(c), 0x80]) {
                        disagreements.append([UInt8(a), UInt8(b), UInt8(c), 0x80])
                    }
                }
            }
        }
        // Every run of up to three pieces, valid and not, across the eight-byte ASCII steps.
        let pieces: [[UInt8]] = [Array("plain ascii text".utf8), Array("é日本🙂".utf8), [0x80], [0xF4, 0x90, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xC0, 0xAF]]
        for first in pieces {
            for second in [[]] + pieces {
                for third in [[]] + pieces where !agree(first + second + third) { disagreements.append(first + second + third) }
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(5))")
    }
}
