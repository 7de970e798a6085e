import Shared

/// A lease one worker at a time holds (retention, the overflow decision): a hash with field `holder` and an expiry,
/// so the worker's Redis user needs no `SET` or `DEL`, which could clobber a stream.
///
/// Takes or renews the lease for `holder` for `milliseconds`: true when `holder` holds it.
struct TakeLease: RedisScriptCommand {
    /// KEYS[1] the lease; ARGV[1] the holder, ARGV[2] its life in ms.
    static let script = RedisScript(
        """
        local holder = redis.call('HGET', KEYS[1], 'holder')
        if holder and holder ~= ARGV[1] then return 0 end
        redis.call('HSET', KEYS[1], 'holder', ARGV[1])
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        return 1
        """
    )

    var arguments: [[UInt8]]

    init(_ lease: String, holder: String, milliseconds: Int) {
        arguments = Self.invocation(keys: [lease], arguments: [Array(holder.utf8), Array(String(milliseconds).utf8)])
    }

    func response(from reply: RedisReply) throws(RedisError) -> Bool { try reply.expectInteger("lease") == 1 }
}

/// Gives a lease up if `holder` still holds it (the hash goes with its last field): true when it did.
struct ReleaseLease: RedisScriptCommand {
    /// KEYS[1] the lease; ARGV[1] the holder.
    static let script = RedisScript(
        """
        if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then return redis.call('HDEL', KEYS[1], 'holder') end
        return 0
        """
    )

    var arguments: [[UInt8]]

    init(_ lease: String, holder: String) { arguments = Self.invocation(keys: [lease], arguments: [Array(holder.utf8)]) }

    func response(from reply: RedisReply) throws(RedisError) -> Bool { try reply.expectInteger("lease release") == 1 }
}
