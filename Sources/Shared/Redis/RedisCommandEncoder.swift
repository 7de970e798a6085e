import CHiredis

/// Turns argument vectors into RESP bytes with hiredis's binary-safe `redisFormatCommandArgv`.
public enum RedisCommandEncoder {
    /// An argument vector from text arguments.
    public static func arguments(_ words: String...) -> [[UInt8]] {
        words.map { Array($0.utf8) }
    }

    /// Appends the RESP encoding of one command (`arguments[0]` is its name) to `buffer`.
    public static func append(_ arguments: [[UInt8]], to buffer: inout [UInt8]) {
        precondition(!arguments.isEmpty, "a Redis command needs a name")
        // Lay every argument out in one block so argv can point into it.
        var lengths = [Int](repeating: 0, count: arguments.count)
        var total = 0
        for (index, argument) in arguments.enumerated() {
            lengths[index] = argument.count
            total += argument.count
        }
        var block = [UInt8]()
        block.reserveCapacity(total)
        for argument in arguments { block.append(contentsOf: argument) }

        block.withUnsafeBufferPointer { storage in
            let base = storage.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }
            var pointers = [UnsafePointer<CChar>?](repeating: nil, count: arguments.count)
            var offset = 0
            for index in arguments.indices {
                // An empty block has no base address; hiredis reads zero bytes from any pointer then.
                pointers[index] = base.map { $0 + offset } ?? UnsafePointer<CChar>(bitPattern: 1)
                offset += lengths[index]
            }
            var target: UnsafeMutablePointer<CChar>?
            let length = pointers.withUnsafeMutableBufferPointer { argv in
                redisFormatCommandArgv(&target, Int32(arguments.count), argv.baseAddress, lengths)
            }
            guard length > 0, let target else { preconditionFailure("hiredis could not format a command") }
            buffer.append(contentsOf: UnsafeRawBufferPointer(start: target, count: Int(length)))
            CHiredis_freeCommand(target)
        }
    }
}
