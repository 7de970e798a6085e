import Synchronization

/// Event ids: UUID version 7 (RFC 9562), lowercase. Time-ordered, so rows keyed by them insert at the
/// end of the primary-key index instead of at random places.
public enum EventID {
    /// Random bits for ids: xoshiro256** seeded from the system generator. Ids are not secrets; one
    /// system call per id showed in profiles of the batch endpoint.
    private static let generator = Mutex(Xoshiro256(seed: SystemRandomNumberGenerator()))

    /// A new id for an event received at `milliseconds` (now by default).
    public static func make(milliseconds: Int64 = Timestamp.now.milliseconds) -> String {
        make(count: 1, milliseconds: milliseconds)[0]
    }

    /// `count` new ids, their random bits drawn from `generator` under one lock.
    public static func make(count: Int, milliseconds: Int64 = Timestamp.now.milliseconds) -> [String] {
        var random = [UInt8](repeating: 0, count: count * 10 + 8)
        generator.withLock { generator in
            random.withUnsafeMutableBytes { buffer in
                for offset in stride(from: 0, to: buffer.count - 7, by: 8) {
                    buffer.storeBytes(of: generator.next(), toByteOffset: offset, as: UInt64.self)
                }
            }
        }
        let hex: StaticString = "0123456789abcdef"
        return (0..<count).map { index in
            String(unsafeUninitializedCapacity: 36) { text in
                var bytes = [UInt8](repeating: 0, count: 16)
                for position in 0..<6 { bytes[position] = UInt8(truncatingIfNeeded: UInt64(milliseconds) >> (40 - 8 * UInt64(position))) }
                for position in 6..<16 { bytes[position] = random[index * 10 + position - 6] }
                bytes[6] = 0x70 | (bytes[6] & 0x0F)
                bytes[8] = 0x80 | (bytes[8] & 0x3F)
                var offset = 0
                for (position, byte) in bytes.enumerated() {
                    if position == 4 || position == 6 || position == 8 || position == 10 {
                        text[offset] = UInt8(ascii: "-")
                        offset += 1
                    }
                    text[offset] = hex.utf8Start[Int(byte >> 4)]
                    text[offset + 1] = hex.utf8Start[Int(byte & 0x0F)]
                    offset += 2
                }
                return 36
            }
        }
    }
}

/// xoshiro256** (Blackman and Vigna): a fast generator with 256 bits of state.
struct Xoshiro256: RandomNumberGenerator {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    init(seed: some RandomNumberGenerator) {
        var source = seed
        state = (source.next(), source.next(), source.next(), source.next())
        if state == (0, 0, 0, 0) { state.0 = 1 }
    }

    mutating func next() -> UInt64 {
        let result = rotate(state.1 &* 5, 7) &* 9
        let shifted = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= shifted
        state.3 = rotate(state.3, 45)
        return result
    }

    private func rotate(_ value: UInt64, _ count: UInt64) -> UInt64 { (value << count) | (value >> (64 - count)) }
}
