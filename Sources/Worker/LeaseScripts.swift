import Shared

/// A lease one worker at a time holds (retention, the overflow decision): a hash with field `holder` and an expiry,
/// so the worker's Redis user needs no `SET` or `DEL`, which could clobber a stream.
enum LeaseScripts {
    /// KEYS[1] the lease; ARGV[1] the holder, ARGV[2] its life in ms. Takes or renews the lease; 1 when held. A hash
    /// (field `holder`), so the worker's Redis user needs no `SET` or `DEL`, which could clobber a stream.
    static let acquire = RedisScript(
        """
        local holder = redis.call('HGET', KEYS[1], 'holder')
        if holder and holder ~= ARGV[1] then return 0 end
        redis.call('HSET', KEYS[1], 'holder', ARGV[1])
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        return 1
        """
    )

    /// KEYS[1] the lease; ARGV[1] the holder. Gives the lease up if it is still this holder's (the hash goes with its
    /// last field).
    static let release = RedisScript(
        """
        if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then return redis.call('HDEL', KEYS[1], 'holder') end
        return 0
        """
    )
}
