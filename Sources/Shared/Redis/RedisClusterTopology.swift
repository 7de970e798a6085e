/// Which master serves each hash slot of a Redis Cluster, as `CLUSTER SLOTS` tells it.
struct RedisClusterTopology: Sendable, Equatable {
    /// A range of slots and the master serving it.
    struct Range: Sendable, Equatable {
        var slots: ClosedRange<Int>
        var master: RedisAddress
        var replicas: [RedisAddress]
    }

    var ranges: [Range]

    /// Reads a `CLUSTER SLOTS` reply from the node at `asked`: an endpoint the node does not know (empty, or `?`)
    /// is the address it was asked at.
    init(slotsReply reply: RedisReply, asked: RedisAddress) throws(RedisError) {
        guard let entries = reply.array else { throw .unexpected("CLUSTER SLOTS", reply) }
        ranges = []
        for entry in entries {
            guard let fields = entry.array, fields.count >= 3, let first = fields[0].integer, let last = fields[1].integer,
                first >= 0, last >= first, last < RedisHashSlot.count
            else { throw .unexpected("CLUSTER SLOTS", reply) }
            var nodes: [RedisAddress] = []
            for node in fields[2...] {
                guard let parts = node.array, parts.count >= 2, let host = parts[0].string, let port = parts[1].integer else {
                    throw .unexpected("CLUSTER SLOTS", reply)
                }
                nodes.append(RedisAddress(host: host.isEmpty || host == "?" ? asked.host : host, port: Int(port)))
            }
            ranges.append(Range(slots: Int(first)...Int(last), master: nodes[0], replicas: Array(nodes.dropFirst())))
        }
    }

    /// Every master, in the order of their first slot.
    var masters: [RedisAddress] {
        var seen: Set<RedisAddress> = []
        return ranges.sorted { $0.slots.lowerBound < $1.slots.lowerBound }.map(\.master).filter { seen.insert($0).inserted }
    }

    /// Whether every slot is served.
    var coversAllSlots: Bool {
        ranges.reduce(0) { $0 + $1.slots.count } == RedisHashSlot.count
    }
}

/// Where a cluster's error reply sends a command: `MOVED <slot> <host>:<port>` (the slot lives there now) or
/// `ASK <slot> <host>:<port>` (this once, during a migration, after `ASKING`).
struct RedisRedirect: Sendable, Equatable {
    var slot: Int
    var address: RedisAddress
    /// `ASK` rather than `MOVED`.
    var asking: Bool

    /// The redirect an error reply stands for, if it is one.
    init?(_ error: RedisError) {
        guard error.code == .server, error.serverPrefix == "MOVED" || error.serverPrefix == "ASK" else { return nil }
        let words = error.message.split(separator: " ")
        guard words.count == 3, let slot = Int(words[1]), let colon = words[2].lastIndex(of: ":"), let port = Int(words[2][words[2].index(after: colon)...])
        else { return nil }
        var host = String(words[2][..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.slot = slot
        address = RedisAddress(host: host, port: port)
        asking = error.serverPrefix == "ASK"
    }
}
