/// One stream entry: its id and its field/value pairs in order.
public struct StreamEntry: Sendable, Equatable {
    /// The entry id, such as `1700000000000-0`.
    public var id: String
    /// Field/value pairs in the order they were added; `nil` when the entry was deleted while pending.
    /// Slices of the reply's bytes: reading an entry allocates nothing per field.
    public var fields: [(name: ArraySlice<UInt8>, value: ArraySlice<UInt8>)]?

    /// Makes an entry.
    public init(id: String, fields: [(name: ArraySlice<UInt8>, value: ArraySlice<UInt8>)]?) {
        self.id = id
        self.fields = fields
    }

    public static func == (lhs: StreamEntry, rhs: StreamEntry) -> Bool {
        guard lhs.id == rhs.id else { return false }
        switch (lhs.fields, rhs.fields) {
        case (nil, nil): return true
        case (let left?, let right?):
            return left.count == right.count && zip(left, right).allSatisfy { $0.name == $1.name && $0.value == $1.value }
        default: return false
        }
    }

    /// The value of the first field called `name`.
    public func value(_ name: String) -> [UInt8]? {
        (fields?.first { $0.name.elementsEqual(name.utf8) }?.value).map(Array.init)
    }

    init(reply: RedisReply, command: String) throws(RedisError) {
        let parts = try reply.expectArray(command)
        guard parts.count == 2 else { throw .unexpected(command, reply) }
        id = try parts[0].expectString(command)
        if parts[1].isNull {
            fields = nil
            return
        }
        let flat = try parts[1].expectArray(command)
        var pairs: [(name: ArraySlice<UInt8>, value: ArraySlice<UInt8>)] = []
        pairs.reserveCapacity(flat.count / 2)
        var index = 0
        while index + 1 < flat.count {
            guard let name = flat[index].slice, let value = flat[index + 1].slice else { throw .unexpected(command, reply) }
            pairs.append((name, value))
            index += 2
        }
        fields = pairs
    }

    static func list(_ reply: RedisReply, command: String) throws(RedisError) -> [StreamEntry] {
        if reply.isNull { return [] }
        var entries: [StreamEntry] = []
        for element in try reply.expectArray(command) {
            entries.append(try StreamEntry(reply: element, command: command))
        }
        return entries
    }
}

/// `XADD key [NOMKSTREAM] [MAXLEN|MINID ...] id field value ...`: appends an entry; answers its id.
public struct XADD: RedisCommand {
    public var arguments: [[UInt8]]

    /// Appends `fields` to `stream` under `id` (default `*`, a new id made by Redis); with `approximateMaxLength`,
    /// trims the stream to about that many entries (`MAXLEN ~ n`).
    public init(_ stream: String, id: String = "*", approximateMaxLength: Int? = nil, fields: [(name: [UInt8], value: [UInt8])]) {
        arguments = [Array("XADD".utf8), Array(stream.utf8)]
        arguments.reserveCapacity(6 + fields.count * 2)
        if let approximateMaxLength { arguments += [Array("MAXLEN".utf8), [UInt8(ascii: "~")], Array(String(approximateMaxLength).utf8)] }
        arguments.append(Array(id.utf8))
        for field in fields {
            arguments.append(field.name)
            arguments.append(field.value)
        }
    }

    public func response(from reply: RedisReply) throws(RedisError) -> String { try reply.expectString("XADD") }
}

/// `XREADGROUP GROUP g c [COUNT n] [BLOCK ms] STREAMS key ... id ...`: reads entries for a consumer.
public struct XREADGROUP: RedisCommand {
    /// The entries read from one stream.
    public struct StreamEntries: Sendable, Equatable {
        /// The stream's key.
        public var stream: String
        /// The entries, oldest first.
        public var entries: [StreamEntry]
    }

    public var arguments: [[UInt8]]
    public var blockingMilliseconds: Int?

    /// Reads up to `count` entries per stream; `ids` of `>` read new entries, `0` re-reads this consumer's pending ones.
    /// With `block`, the server may wait that many milliseconds for new entries.
    public init(group: String, consumer: String, count: Int? = nil, block: Int? = nil, streams: [(key: String, id: String)]) {
        arguments = [Array("XREADGROUP".utf8), Array("GROUP".utf8), Array(group.utf8), Array(consumer.utf8)]
        if let count {
            arguments.append("COUNT")
            arguments.append(count)
        }
        if let block {
            arguments.append("BLOCK")
            arguments.append(block)
        }
        blockingMilliseconds = block
        arguments.append("STREAMS")
        for stream in streams { arguments.append(stream.key) }
        for stream in streams { arguments.append(stream.id) }
    }

    public func response(from reply: RedisReply) throws(RedisError) -> [StreamEntries] {
        if reply.isNull { return [] }
        var result: [StreamEntries] = []
        for element in try reply.expectArray("XREADGROUP") {
            let parts = try element.expectArray("XREADGROUP")
            guard parts.count == 2 else { throw .unexpected("XREADGROUP", reply) }
            result.append(
                StreamEntries(
                    stream: try parts[0].expectString("XREADGROUP"),
                    entries: try StreamEntry.list(parts[1], command: "XREADGROUP")
                )
            )
        }
        return result
    }
}

/// `XACK key group id ...`: acknowledges entries; answers how many were pending.
public struct XACK: RedisCommand {
    public var arguments: [[UInt8]]

    /// Acknowledges `ids` for `group` on `stream`.
    public init(_ stream: String, group: String, ids: [String]) {
        arguments = [Array("XACK".utf8), Array(stream.utf8), Array(group.utf8)] + ids.map { Array($0.utf8) }
    }

    public func response(from reply: RedisReply) throws(RedisError) -> Int { try reply.expectInteger("XACK") }
}

/// `XAUTOCLAIM key group consumer min-idle start [COUNT n]`: takes over entries idle too long.
public struct XAUTOCLAIM: RedisCommand {
    /// What one call claimed.
    public struct Claimed: Sendable, Equatable {
        /// Where the next call should start; `0-0` once the whole pending list was scanned.
        public var nextStart: String
        /// The entries now owned by the calling consumer.
        public var entries: [StreamEntry]
        /// Ids that were pending but whose entries no longer exist (Redis 7); removed from the pending list.
        public var deletedIds: [String]
    }

    public var arguments: [[UInt8]]

    /// Claims up to `count` entries of `group` idle at least `minIdleMilliseconds`, scanning from `start`.
    public init(_ stream: String, group: String, consumer: String, minIdleMilliseconds: Int, start: String = "0-0", count: Int = 100) {
        arguments = [Array("XAUTOCLAIM".utf8), Array(stream.utf8), Array(group.utf8), Array(consumer.utf8)]
        arguments.append(minIdleMilliseconds)
        arguments.append(start)
        arguments.append("COUNT")
        arguments.append(count)
    }

    public func response(from reply: RedisReply) throws(RedisError) -> Claimed {
        let parts = try reply.expectArray("XAUTOCLAIM")
        guard parts.count >= 2 else { throw .unexpected("XAUTOCLAIM", reply) }
        var deleted: [String] = []
        if parts.count > 2 {
            for id in try parts[2].expectArray("XAUTOCLAIM") { deleted.append(try id.expectString("XAUTOCLAIM")) }
        }
        return Claimed(
            nextStart: try parts[0].expectString("XAUTOCLAIM"),
            entries: try StreamEntry.list(parts[1], command: "XAUTOCLAIM"),
            deletedIds: deleted
        )
    }
}

/// `XPENDING key group`: the summary of a group's pending entries.
public struct XPENDING: RedisCommand {
    /// The summary form's answer.
    public struct Summary: Sendable, Equatable {
        /// How many entries are delivered and not yet acknowledged.
        public var count: Int
        /// The smallest pending id.
        public var smallestId: String?
        /// The greatest pending id.
        public var greatestId: String?
        /// Pending count per consumer name.
        public var consumers: [String: Int]
    }

    public var arguments: [[UInt8]]

    /// The summary of `group` on `stream`.
    public init(_ stream: String, group: String) {
        arguments = [Array("XPENDING".utf8), Array(stream.utf8), Array(group.utf8)]
    }

    public func response(from reply: RedisReply) throws(RedisError) -> Summary {
        let parts = try reply.expectArray("XPENDING")
        guard parts.count == 4 else { throw .unexpected("XPENDING", reply) }
        var consumers: [String: Int] = [:]
        for consumer in parts[3].array ?? [] {
            let pair = try consumer.expectArray("XPENDING")
            guard pair.count == 2 else { throw .unexpected("XPENDING", reply) }
            consumers[try pair[0].expectString("XPENDING")] = try pair[1].expectInteger("XPENDING")
        }
        return Summary(
            count: try parts[0].expectInteger("XPENDING"),
            smallestId: parts[1].string,
            greatestId: parts[2].string,
            consumers: consumers
        )
    }
}

/// `XPENDING key group [IDLE ms] start end count [consumer]`: pending entries one by one.
public struct XPENDINGRange: RedisCommand {
    /// One pending entry.
    public struct Pending: Sendable, Equatable {
        /// The entry id.
        public var id: String
        /// The consumer holding it.
        public var consumer: String
        /// Milliseconds since it was last delivered.
        public var idleMilliseconds: Int
        /// How many times it was delivered.
        public var deliveries: Int
    }

    public var arguments: [[UInt8]]

    /// Up to `count` pending entries between `start` and `end`, optionally only those idle `minIdle` ms or held by `consumer`.
    public init(_ stream: String, group: String, minIdleMilliseconds: Int? = nil, start: String = "-", end: String = "+", count: Int, consumer: String? = nil) {
        arguments = [Array("XPENDING".utf8), Array(stream.utf8), Array(group.utf8)]
        if let minIdleMilliseconds {
            arguments.append("IDLE")
            arguments.append(minIdleMilliseconds)
        }
        arguments.append(start)
        arguments.append(end)
        arguments.append(count)
        if let consumer { arguments.append(consumer) }
    }

    public func response(from reply: RedisReply) throws(RedisError) -> [Pending] {
        var result: [Pending] = []
        for element in try reply.expectArray("XPENDING") {
            let parts = try element.expectArray("XPENDING")
            guard parts.count == 4 else { throw .unexpected("XPENDING", reply) }
            result.append(
                Pending(
                    id: try parts[0].expectString("XPENDING"),
                    consumer: try parts[1].expectString("XPENDING"),
                    idleMilliseconds: try parts[2].expectInteger("XPENDING"),
                    deliveries: try parts[3].expectInteger("XPENDING")
                )
            )
        }
        return result
    }
}

/// `XGROUP CREATE key group id MKSTREAM`: makes a consumer group (and the stream); answers `false` when it already existed.
public struct XGROUPCREATE: RedisCommand {
    public var arguments: [[UInt8]]

    /// Creates `group` on `stream`, starting at `startId` (`$` new entries only, `0` everything).
    public init(_ stream: String, group: String, startId: String = "0") {
        arguments = RedisCommandEncoder.arguments("XGROUP", "CREATE", stream, group, startId, "MKSTREAM")
    }

    public func response(from reply: RedisReply) throws(RedisError) -> Bool { true }

    /// The group exists already: not a failure.
    public func response(forError error: RedisError) -> Bool? { error.isServerError("BUSYGROUP") ? false : nil }
}

/// `XINFO GROUPS key`: each group's fields (`name`, `consumers`, `pending`, `last-delivered-id`, `lag` ...).
public struct XINFOGROUPS: RedisCommand {
    public var arguments: [[UInt8]]

    /// The groups of `stream`.
    public init(_ stream: String) {
        arguments = RedisCommandEncoder.arguments("XINFO", "GROUPS", stream)
    }

    public func response(from reply: RedisReply) throws(RedisError) -> [[String: RedisReply]] {
        var groups: [[String: RedisReply]] = []
        for group in try reply.expectArray("XINFO GROUPS") { groups.append(try group.expectMap("XINFO GROUPS")) }
        return groups
    }
}

/// `XINFO STREAM key`: the stream's fields (`length`, `last-generated-id`, `first-entry` ...).
public struct XINFOSTREAM: RedisCommand {
    public var arguments: [[UInt8]]

    /// The summary of `stream`.
    public init(_ stream: String) {
        arguments = RedisCommandEncoder.arguments("XINFO", "STREAM", stream)
    }

    public func response(from reply: RedisReply) throws(RedisError) -> [String: RedisReply] {
        try reply.expectMap("XINFO STREAM")
    }
}

/// `XLEN key`: the number of entries.
public struct XLEN: RedisCommand {
    public var arguments: [[UInt8]]

    /// The length of `stream`.
    public init(_ stream: String) { arguments = RedisCommandEncoder.arguments("XLEN", stream) }

    public func response(from reply: RedisReply) throws(RedisError) -> Int { try reply.expectInteger("XLEN") }
}

/// `XTRIM key MINID|MAXLEN [~] threshold`: removes old entries; answers how many.
public struct XTRIM: RedisCommand {
    /// What to keep.
    public enum Strategy: Sendable {
        /// Remove entries with ids below this one.
        case minId(String)
        /// Keep at most this many entries.
        case maxLength(Int)
    }

    public var arguments: [[UInt8]]

    /// Trims `stream`; `approximate` lets Redis trim whole nodes only (cheaper, may keep a few more).
    public init(_ stream: String, _ strategy: Strategy, approximate: Bool = false) {
        arguments = RedisCommandEncoder.arguments("XTRIM", stream)
        switch strategy {
        case .minId(let id):
            arguments.append("MINID")
            if approximate { arguments.append("~") }
            arguments.append(id)
        case .maxLength(let length):
            arguments.append("MAXLEN")
            if approximate { arguments.append("~") }
            arguments.append(length)
        }
    }

    public func response(from reply: RedisReply) throws(RedisError) -> Int { try reply.expectInteger("XTRIM") }
}

/// `XDEL key id ...`: deletes entries; answers how many existed.
public struct XDEL: RedisCommand {
    public var arguments: [[UInt8]]

    /// Deletes `ids` from `stream`.
    public init(_ stream: String, ids: [String]) {
        arguments = [Array("XDEL".utf8), Array(stream.utf8)] + ids.map { Array($0.utf8) }
    }

    public func response(from reply: RedisReply) throws(RedisError) -> Int { try reply.expectInteger("XDEL") }
}

/// `XRANGE key start end [COUNT n]`: entries in id order.
public struct XRANGE: RedisCommand {
    public var arguments: [[UInt8]]

    /// The entries of `stream` from `start` to `end` (`-` and `+` for the ends), at most `count`.
    public init(_ stream: String, start: String = "-", end: String = "+", count: Int? = nil) {
        arguments = RedisCommandEncoder.arguments("XRANGE", stream, start, end)
        if let count {
            arguments.append("COUNT")
            arguments.append(count)
        }
    }

    public func response(from reply: RedisReply) throws(RedisError) -> [StreamEntry] { try StreamEntry.list(reply, command: "XRANGE") }
}

/// `XINFO CONSUMERS key group`: each consumer's fields (`name`, `pending`, `idle`, `inactive` ...).
public struct XINFOCONSUMERS: RedisCommand {
    public var arguments: [[UInt8]]

    /// The consumers of `group` on `stream`.
    public init(_ stream: String, group: String) {
        arguments = RedisCommandEncoder.arguments("XINFO", "CONSUMERS", stream, group)
    }

    public func response(from reply: RedisReply) throws(RedisError) -> [[String: RedisReply]] {
        var consumers: [[String: RedisReply]] = []
        for consumer in try reply.expectArray("XINFO CONSUMERS") { consumers.append(try consumer.expectMap("XINFO CONSUMERS")) }
        return consumers
    }
}
