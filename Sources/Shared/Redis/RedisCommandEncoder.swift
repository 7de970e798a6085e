import CHiredis

/// Turns argument vectors into RESP bytes: `*<argc>\r\n` then `$<len>\r\n<bytes>\r\n` per argument,
/// binary-safe. Written in Swift because hiredis's `redisFormatCommandArgv` formats lengths with
/// `sprintf`, which took a fifth of the client's CPU in the XADD benchmark; `hiredisEncoding` keeps
/// hiredis's encoder as the reference the tests compare against.
public enum RedisCommandEncoder {
    /// An argument vector from text arguments.
    public static func arguments(_ words: String...) -> [[UInt8]] {
        words.map { Array($0.utf8) }
    }

    /// Appends the RESP encoding of one command (`arguments[0]` is its name) to `buffer`.
    public static func append(_ arguments: [[UInt8]], to buffer: inout [UInt8]) {
        precondition(!arguments.isEmpty, "a Redis command needs a name")
        var size = 16
        for argument in arguments { size += argument.count + 16 }
        // Grow geometrically: reserving the exact size on every call would copy a pipeline's whole buffer
        // once per command (quadratic; it was 42 % of the CPU of a 1 000-command pipeline).
        let needed = buffer.count + size
        if buffer.capacity < needed { buffer.reserveCapacity(max(needed, buffer.capacity * 2)) }
        appendHeader(arguments: arguments.count, to: &buffer)
        for argument in arguments { appendArgument(argument, to: &buffer) }
    }

    /// Appends `*<count>\r\n`, the start of a command of `count` arguments.
    static func appendHeader(arguments count: Int, to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "*"))
        appendDecimal(count, to: &buffer)
        buffer.append(13)
        buffer.append(10)
    }

    /// Appends one argument, `$<length>\r\n<bytes>\r\n`.
    static func appendArgument<Bytes: Collection<UInt8>>(_ bytes: Bytes, to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "$"))
        appendDecimal(bytes.count, to: &buffer)
        buffer.append(13)
        buffer.append(10)
        buffer.append(contentsOf: bytes)
        buffer.append(13)
        buffer.append(10)
    }

    @inline(__always)
    private static func appendDecimal(_ value: Int, to buffer: inout [UInt8]) {
        if value < 10 {
            buffer.append(UInt8(48 + value))
            return
        }
        var digits:
            (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
                (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { storage in
            while rest > 0 {
                storage[19 - count] = UInt8(48 + rest % 10)
                rest /= 10
                count += 1
            }
            buffer.append(contentsOf: storage[(20 - count)...])
        }
    }

    /// The same command encoded by hiredis's `redisFormatCommandArgv`: the reference for tests.
    public static func hiredisEncoding(_ arguments: [[UInt8]]) -> [UInt8] {
        var block = [UInt8]()
        for argument in arguments { block.append(contentsOf: argument) }
        let lengths = arguments.map(\.count)
        return block.withUnsafeBufferPointer { storage in
            let base = UnsafeRawPointer(storage.baseAddress ?? UnsafePointer(bitPattern: 1)!).assumingMemoryBound(to: CChar.self)
            var pointers: [UnsafePointer<CChar>?] = []
            var offset = 0
            for length in lengths {
                pointers.append(base + offset)
                offset += length
            }
            var target: UnsafeMutablePointer<CChar>?
            let length = pointers.withUnsafeMutableBufferPointer { argv in
                redisFormatCommandArgv(&target, Int32(arguments.count), argv.baseAddress, lengths)
            }
            guard length > 0, let target else { return [] }
            defer { CHiredis_freeCommand(target) }
            return Array(UnsafeRawBufferPointer(start: target, count: Int(length)))
        }
    }
}
