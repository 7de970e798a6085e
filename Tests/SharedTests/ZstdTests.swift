import NIOCore
import Shared
import Testing

@Suite("zstd bodies")
struct ZstdTests {
    @Test(arguments: [0, 1, 100, 70_000, 1_000_000])
    func roundTripsWithinTheCap(size: Int) throws {
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        let packed = Zstd.compress(bytes)
        let unpacked = try Zstd.decompress(ByteBuffer(bytes: packed), maxSize: size)
        #expect(Array(unpacked.readableBytesView) == bytes)
    }

    @Test func framesBackToBackAreOneBody() throws {
        let packed = Zstd.compress(Array("first ".utf8)) + Zstd.compress(Array("second".utf8))
        #expect(String(buffer: try Zstd.decompress(ByteBuffer(bytes: packed), maxSize: 100)) == "first second")
    }

    @Test func aBombStopsAtTheCap() {
        let bomb = Zstd.compress([UInt8](repeating: 0, count: 50_000_000), level: 19)
        #expect(bomb.count < 10_000)
        #expect(throws: Zstd.Failure.tooLarge) { try Zstd.decompress(ByteBuffer(bytes: bomb), maxSize: 10 << 20) }
        #expect(throws: Zstd.Failure.tooLarge) { try Zstd.decompress(ByteBuffer(bytes: Zstd.compress(Array("12345".utf8))), maxSize: 4) }
    }

    @Test func aFrameCutShortOrNotZstdIsInvalid() {
        let packed = Zstd.compress(Array(String(repeating: "log line ", count: 1_000).utf8))
        for cut in [1, 3, packed.count / 2, packed.count - 1] {
            #expect(throws: Zstd.Failure.self) { try Zstd.decompress(ByteBuffer(bytes: packed.prefix(cut)), maxSize: 1 << 20) }
        }
        #expect(throws: Zstd.Failure.self) { try Zstd.decompress(ByteBuffer(string: "not zstd at all"), maxSize: 1 << 20) }
        #expect(throws: Zstd.Failure.self) { try Zstd.decompress(ByteBuffer(), maxSize: 1 << 20) }
    }

    /// A frame that asks for a window far larger than the cap is refused before any allocation of that size.
    @Test func aFrameAskingForAHugeWindowIsRefused() {
        // A frame header: magic, descriptor (no content size, no checksum, not single-segment), window descriptor
        // 0xF8 (exponent 31: a 2 GiB window), then an empty last raw block.
        let header: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 0xF8, 0x01, 0x00, 0x00]
        #expect(throws: Zstd.Failure.self) { try Zstd.decompress(ByteBuffer(bytes: header), maxSize: 1 << 20) }
    }
}
