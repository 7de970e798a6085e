/// `PING`: answers `PONG`.
public struct PING: RedisCommand {
    public var arguments: [[UInt8]] { [Array("PING".utf8)] }

    /// Pings the server.
    public init() {}

    public func response(from reply: RedisReply) throws(RedisError) -> String { try reply.expectString("PING") }
}

/// `GET key`: the value, or `nil`.
public struct GET: RedisCommand {
    public var arguments: [[UInt8]]

    /// Reads `key`.
    public init(_ key: String) { arguments = RedisCommandEncoder.arguments("GET", key) }

    public func response(from reply: RedisReply) throws(RedisError) -> [UInt8]? { reply.isNull ? nil : reply.bytes }
}

/// `SET key value [PX ms] [NX]`: answers whether the value was set (false when NX found the key).
public struct SET: RedisCommand {
    public var arguments: [[UInt8]]

    /// Sets `key` to `value`, expiring after `expireMilliseconds`, only if absent when `onlyIfAbsent`.
    public init(_ key: String, value: [UInt8], expireMilliseconds: Int? = nil, onlyIfAbsent: Bool = false) {
        arguments = [Array("SET".utf8), Array(key.utf8), value]
        if let expireMilliseconds {
            arguments.append("PX")
            arguments.append(expireMilliseconds)
        }
        if onlyIfAbsent { arguments.append("NX") }
    }

    /// Sets `key` to a text value.
    public init(_ key: String, value: String, expireMilliseconds: Int? = nil, onlyIfAbsent: Bool = false) {
        self.init(key, value: Array(value.utf8), expireMilliseconds: expireMilliseconds, onlyIfAbsent: onlyIfAbsent)
    }

    public func response(from reply: RedisReply) throws(RedisError) -> Bool { !reply.isNull }
}

/// `DEL key ...`: answers how many keys existed.
public struct DEL: RedisCommand {
    public var arguments: [[UInt8]]

    /// Deletes `keys`.
    public init(_ keys: [String]) { arguments = [Array("DEL".utf8)] + keys.map { Array($0.utf8) } }

    public func response(from reply: RedisReply) throws(RedisError) -> Int { try reply.expectInteger("DEL") }
}

/// `SADD key member ...`: answers how many members were new.
public struct SADD: RedisCommand {
    public var arguments: [[UInt8]]

    /// Adds `members` to the set `key`.
    public init(_ key: String, members: [String]) {
        arguments = [Array("SADD".utf8), Array(key.utf8)] + members.map { Array($0.utf8) }
    }

    public func response(from reply: RedisReply) throws(RedisError) -> Int { try reply.expectInteger("SADD") }
}

/// `SREM key member ...`: answers how many members were removed.
public struct SREM: RedisCommand {
    public var arguments: [[UInt8]]

    /// Removes `members` from the set `key`.
    public init(_ key: String, members: [String]) {
        arguments = [Array("SREM".utf8), Array(key.utf8)] + members.map { Array($0.utf8) }
    }

    public func response(from reply: RedisReply) throws(RedisError) -> Int { try reply.expectInteger("SREM") }
}

/// `SISMEMBER key member`.
public struct SISMEMBER: RedisCommand {
    public var arguments: [[UInt8]]

    /// Whether `member` is in the set `key`.
    public init(_ key: String, member: String) { arguments = RedisCommandEncoder.arguments("SISMEMBER", key, member) }

    public func response(from reply: RedisReply) throws(RedisError) -> Bool { try reply.expectInteger("SISMEMBER") == 1 }
}

/// `SCARD key`: the set's size.
public struct SCARD: RedisCommand {
    public var arguments: [[UInt8]]

    /// The size of the set `key`.
    public init(_ key: String) { arguments = RedisCommandEncoder.arguments("SCARD", key) }

    public func response(from reply: RedisReply) throws(RedisError) -> Int { try reply.expectInteger("SCARD") }
}

/// `SMEMBERS key`: the set's members, in no order.
public struct SMEMBERS: RedisCommand {
    public var arguments: [[UInt8]]

    /// The members of the set `key`.
    public init(_ key: String) { arguments = RedisCommandEncoder.arguments("SMEMBERS", key) }

    public func response(from reply: RedisReply) throws(RedisError) -> [String] {
        var members: [String] = []
        for member in try reply.expectArray("SMEMBERS") { members.append(try member.expectString("SMEMBERS")) }
        return members
    }
}

/// `HGET key field`: the value, or `nil`.
public struct HGET: RedisCommand {
    public var arguments: [[UInt8]]

    /// Reads `field` of the hash `key`.
    public init(_ key: String, field: String) { arguments = RedisCommandEncoder.arguments("HGET", key, field) }

    public func response(from reply: RedisReply) throws(RedisError) -> String? { reply.isNull ? nil : reply.string }
}

/// `HSET key field value ...`: answers how many fields were new.
public struct HSET: RedisCommand {
    public var arguments: [[UInt8]]

    /// Sets `fields` of the hash `key`.
    public init(_ key: String, fields: [(String, String)]) {
        arguments = [Array("HSET".utf8), Array(key.utf8)]
        for (name, value) in fields {
            arguments.append(name)
            arguments.append(value)
        }
    }

    public func response(from reply: RedisReply) throws(RedisError) -> Int { try reply.expectInteger("HSET") }
}

/// `HINCRBY key field n`: answers the new value.
public struct HINCRBY: RedisCommand {
    public var arguments: [[UInt8]]

    /// Adds `increment` to `field` of the hash `key`.
    public init(_ key: String, field: String, by increment: Int) {
        arguments = RedisCommandEncoder.arguments("HINCRBY", key, field, String(increment))
    }

    public func response(from reply: RedisReply) throws(RedisError) -> Int { try reply.expectInteger("HINCRBY") }
}

/// `CONFIG GET pattern`: the matching parameters and their values.
public struct CONFIGGET: RedisCommand {
    public var arguments: [[UInt8]]

    /// Reads the parameters matching `pattern`.
    public init(_ pattern: String) { arguments = RedisCommandEncoder.arguments("CONFIG", "GET", pattern) }

    public func response(from reply: RedisReply) throws(RedisError) -> [String: String] {
        try reply.expectMap("CONFIG GET").compactMapValues(\.string)
    }
}

/// `SCRIPT LOAD source`: answers the script's SHA1 digest.
public struct SCRIPTLOAD: RedisCommand {
    public var arguments: [[UInt8]]

    /// Loads `source` into the server's script cache.
    public init(_ source: String) { arguments = RedisCommandEncoder.arguments("SCRIPT", "LOAD", source) }

    public func response(from reply: RedisReply) throws(RedisError) -> String { try reply.expectString("SCRIPT LOAD") }
}

/// `HMGET key field ...`: each field's value, `nil` where absent.
public struct HMGET: RedisCommand {
    public var arguments: [[UInt8]]

    /// The values of `fields` in the hash `key`.
    public init(_ key: String, fields: [String]) { arguments = [Array("HMGET".utf8), Array(key.utf8)] + fields.map { Array($0.utf8) } }

    public func response(from reply: RedisReply) throws(RedisError) -> [String?] {
        try reply.expectArray("HMGET").map { $0.isNull ? nil : $0.string }
    }
}

/// `HGETALL key`: every field and value of a hash (empty when the key does not exist).
public struct HGETALL: RedisCommand {
    public var arguments: [[UInt8]]

    /// Reads the whole hash `key`.
    public init(_ key: String) { arguments = RedisCommandEncoder.arguments("HGETALL", key) }

    public func response(from reply: RedisReply) throws(RedisError) -> [String: String] {
        var fields: [String: String] = [:]
        for (name, value) in try reply.expectMap("HGETALL") { fields[name] = value.string ?? "" }
        return fields
    }
}

/// `HDEL key field ...`: answers how many fields existed.
public struct HDEL: RedisCommand {
    public var arguments: [[UInt8]]

    /// Deletes `fields` of the hash `key`.
    public init(_ key: String, fields: [String]) {
        arguments = [Array("HDEL".utf8), Array(key.utf8)] + fields.map { Array($0.utf8) }
    }

    public func response(from reply: RedisReply) throws(RedisError) -> Int { try reply.expectInteger("HDEL") }
}

/// `SCAN cursor MATCH pattern COUNT n`: one page of key names and the next cursor (`0` when done).
public struct SCAN: RedisCommand {
    public var arguments: [[UInt8]]

    /// The keys matching `pattern` from `cursor` on.
    public init(cursor: String = "0", match pattern: String, count: Int = 1_000) {
        arguments = RedisCommandEncoder.arguments("SCAN", cursor, "MATCH", pattern, "COUNT", String(count))
    }

    public func response(from reply: RedisReply) throws(RedisError) -> (cursor: String, keys: [String]) {
        let parts = try reply.expectArray("SCAN")
        guard parts.count == 2 else { throw .unexpected("SCAN", reply) }
        var keys: [String] = []
        for key in try parts[1].expectArray("SCAN") { keys.append(try key.expectString("SCAN")) }
        return (try parts[0].expectString("SCAN"), keys)
    }
}
