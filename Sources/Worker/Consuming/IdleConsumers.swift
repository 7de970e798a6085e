import Shared

/// Removes consumers that hold nothing and have been silent a long time, so a group does not collect one
/// consumer per worker that ever ran (default names carry the host and pid).
///
/// A consumer goes only when, in one Lua script (atomically), it has no pending entry and has been idle at
/// least `minIdleMilliseconds`; this worker's own consumer always stays. Removing a consumer without
/// pending entries loses nothing: a live one is made again by its next `XREADGROUP`.
struct IdleConsumers: Sendable {
    let redis: RedisClient
    let group: String
    /// This worker's consumer: never removed.
    let keep: String
    let minIdleMilliseconds: Int

    /// Removes `stream`'s idle empty consumers; answers how many went.
    @discardableResult
    func remove(from stream: String) async throws(RedisError) -> Int {
        try await redis.send(RemoveIdleConsumers(of: stream, group: group, idleMilliseconds: minIdleMilliseconds, keep: keep))
    }
}

/// Removes the consumers of `group` on a stream that hold nothing and have been idle `idleMilliseconds`, all but
/// `keep`, in one script; answers how many went.
struct RemoveIdleConsumers: RedisScriptCommand {
    /// KEYS[1] the stream; ARGV[1] the group, ARGV[2] the idle time in ms, ARGV[3] the consumer to keep.
    static let script = RedisScript(
        """
        local removed = 0
        for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
            local name, pending, idle
            for i = 1, #consumer, 2 do
                if consumer[i] == 'name' then name = consumer[i + 1]
                elseif consumer[i] == 'pending' then pending = consumer[i + 1]
                elseif consumer[i] == 'idle' then idle = consumer[i + 1] end
            end
            if name ~= ARGV[3] and pending == 0 and idle >= tonumber(ARGV[2]) then
                redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
                removed = removed + 1
            end
        end
        return removed
        """
    )

    var arguments: [[UInt8]]

    init(of stream: String, group: String, idleMilliseconds: Int, keep: String) {
        arguments = Self.invocation(keys: [stream], arguments: [group, String(idleMilliseconds), keep].map { Array($0.utf8) })
    }

    func response(from reply: RedisReply) throws(RedisError) -> Int { try reply.expectInteger("idle consumer removal") }
}
