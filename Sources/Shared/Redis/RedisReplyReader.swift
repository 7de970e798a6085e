import CHiredis

/// RESP bytes in, `RedisReply` values out: hiredis's `redisReader` decoding into a flat buffer
/// (`CHiredisFlatReply`: nodes and string bytes in two buffers reused from reply to reply).
///
/// Not thread-safe: one reader belongs to one connection and is used from one thread at a time.
final class RedisReplyReader {
    private let reader: UnsafeMutablePointer<redisReader>
    private let flat: UnsafeMutablePointer<CHiredisFlatReply>

    init() {
        flat = .allocate(capacity: 1)
        flat.initialize(to: CHiredisFlatReply())
        reader = CHiredis_flatReaderCreate(flat)
    }

    deinit {
        redisReaderFree(reader)
        CHiredis_flatRelease(flat)
        flat.deallocate()
    }

    /// Hands received bytes to the decoder.
    func feed(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        _ = redisReaderFeed(reader, base.assumingMemoryBound(to: CChar.self), bytes.count)
    }

    /// The next whole reply, or `nil` until more bytes arrive.
    func next() throws(RedisError) -> RedisReply? {
        var raw: UnsafeMutableRawPointer?
        guard redisReaderGetReply(reader, &raw) == REDIS_OK, flat.pointee.failed == 0 else {
            throw RedisError(code: .protocolError, message: "Redis sent an unreadable reply")
        }
        guard raw != nil else { return nil }
        defer { CHiredis_flatReset(flat) }
        return Self.reply(from: flat.pointee)
    }

    /// Builds the Swift value of the reply decoded into `flat`. Every string's bytes are copied once, into one
    /// array that bulk replies share as slices: a reply of any size costs a few allocations, not one per string.
    private static func reply(from flat: CHiredisFlatReply) -> RedisReply {
        let bytes = flat.used > 0 ? [UInt8](UnsafeRawBufferPointer(start: flat.bytes, count: flat.used)) : []
        var next = 0
        return node(flat.nodes, &next, bytes)
    }

    private static func node(_ nodes: UnsafeMutablePointer<CHiredisNode>, _ next: inout Int, _ bytes: [UInt8]) -> RedisReply {
        let node = nodes[next]
        next += 1
        let text = { bytes[node.offset..<node.offset + node.length] }
        switch node.type {
        case REDIS_REPLY_STRING:
            return .bulk(text())
        case REDIS_REPLY_STATUS:
            return .status(String(decoding: text(), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(RedisError(serverReply: String(decoding: text(), as: UTF8.self)))
        case REDIS_REPLY_INTEGER:
            return .integer(node.value)
        case REDIS_REPLY_ARRAY:
            var elements: [RedisReply] = []
            elements.reserveCapacity(Int(node.value))
            for _ in 0..<max(Int(node.value), 0) {
                elements.append(Self.node(nodes, &next, bytes))
            }
            return .array(elements)
        default:
            return .null
        }
    }
}
