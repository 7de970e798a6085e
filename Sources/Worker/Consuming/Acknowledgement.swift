import Shared

/// The entries a batch has finished with, grouped by what they count towards, acknowledged and counted in one
/// Lua script.
///
/// Each group's counters go up by what its `XACK` answers, the entries newly acknowledged (times what each entry
/// counts), not by how many were sent: an acknowledgement retried after Redis ran it but its reply was lost (or an
/// entry another consumer acknowledged first) counts nothing the second time, so the counters `operyn-admin`
/// shows are exact under retries. An entry may count towards several fields, by any amount (a chunk of events,
/// some stored and some over quota); entries that count alike share a group and one `XACK`.
///
/// In a Redis Cluster a script may only touch one slot: each partition's streams are acknowledged by a script of
/// their own, which also counts the partition's flow (in its slot), and the counters (tagged by organization) go up by
/// what it answered right after, in a command of their own. They stay exact under retried acknowledgements; a failure between the two (a worker that dies, Redis
/// unreachable just then: the retried acknowledgement answers 0) leaves that batch uncounted, never counted twice.
struct Acknowledgement {
    /// What one entry adds to one field of its organization's counters (`stored:logs`,
    /// `rejected:service_quota_exceeded`) or of its usage of a day (`accepted:logs`, `Usage`).
    struct Count: Hashable {
        /// Where the count goes.
        enum Target: Hashable {
            /// The organization's all-time counters.
            case counters
            /// The organization's usage hash of a UTC day (`YYYY-MM-DD`).
            case usage(day: String)
            /// A partition's flow hash (`RedisKeys.flow`), in the slot of the partition's streams.
            case flow(partition: Int)

            var isFlow: Bool {
                if case .flow = self { return true }
                return false
            }
        }

        var target = Target.counters
        var field: String
        var amount: Int

        init(_ target: Target = .counters, field: String, amount: Int) {
            self.target = target
            self.field = field
            self.amount = amount
        }
    }

    /// Entries of one stream that count alike towards one organization's counters (or towards nothing).
    struct Group: Hashable {
        var kind: EventKind
        var partition: Int
        /// The organization whose counters go up, `nil` for entries that count nowhere (dead letters, entries
        /// deleted while pending).
        var org: String?
        /// What each entry of the group adds.
        var counts: [Count]
    }

    private(set) var ids: [Group: [String]] = [:]

    var isEmpty: Bool { ids.isEmpty }

    /// Adds an entry of `kind` (and `partition`) that counts one towards `field` of `org`'s counters (none without a
    /// field).
    mutating func add(_ id: String, kind: EventKind, partition: Int = 0, org: String? = nil, field: String = "") {
        add(id, kind: kind, partition: partition, org: org, counts: field.isEmpty ? [] : [Count(field: field, amount: 1)])
    }

    /// Adds an entry of `kind` (and `partition`) that counts `counts` towards `org`'s counters.
    mutating func add(_ id: String, kind: EventKind, partition: Int = 0, org: String?, counts: [Count]) {
        ids[Group(kind: kind, partition: partition, org: org, counts: counts), default: []].append(id)
    }

    /// Adds the entry `id` of the stream `read` came from, counting `counts` towards `org`'s counters.
    mutating func add(_ id: String, of read: ReadEntry, org: String? = nil, counts: [Count] = []) {
        add(id, kind: read.kind, partition: read.partition, org: org, counts: counts)
    }

    /// Acknowledges every entry and counts it; answers the entries newly acknowledged per group.
    func send(on redis: RedisClient, keys: RedisKeys) async throws(RedisError) -> [(group: Group, acknowledged: Int)] {
        guard keys.clustered else { return try await send(Array(ids), on: redis, keys: keys) { _ in true } }
        var answers: [(group: Group, acknowledged: Int)] = []
        for partition in Set(ids.keys.map(\.partition)).sorted() {
            answers += try await send(ids.filter { $0.key.partition == partition }, on: redis, keys: keys) { $0.isFlow }
        }
        var increments = RedisPipeline()
        for (group, acknowledged) in answers where acknowledged > 0 {
            guard let org = group.org else { continue }
            for count in group.counts where !count.target.isFlow {
                let (key, ttl) = Self.key(of: count, org: org, keys: keys)
                increments.add(HINCRBY(key, field: count.field, by: acknowledged * count.amount))
                if ttl > 0 { increments.add(RawCommand("EXPIRE", key, String(ttl))) }
            }
        }
        // Not retried: the acknowledgement is done, and counting it again could count it twice.
        try await redis.pipeline(increments).check()
        return answers
    }

    /// The hash a count goes to, and its time to live (0: none).
    private static func key(of count: Count, org: String, keys: RedisKeys) -> (String, Int) {
        switch count.target {
        case .counters: (keys.counts(org: org), 0)
        case .usage(let day): (keys.usage(org: org, day: day), Usage.ttlSeconds)
        case .flow(let partition): (keys.flow(partition: partition), 0)
        }
    }

    /// One script for `groups`, whose streams share a slot; the counts of targets `counted` picks go up in it too.
    private func send(
        _ groups: [(key: Group, value: [String])], on redis: RedisClient, keys: RedisKeys, counted: (Count.Target) -> Bool
    ) async throws(RedisError) -> [(group: Group, acknowledged: Int)] {
        var scriptKeys: [String] = []
        var keyIndex: [String: Int] = [:]
        func index(_ key: String) -> Int {
            if let known = keyIndex[key] { return known }
            scriptKeys.append(key)
            keyIndex[key] = scriptKeys.count
            return scriptKeys.count
        }
        var arguments: [[UInt8]] = [Array(keys.consumerGroup.utf8)]
        for (group, entryIDs) in groups {
            let counts = group.org.map { org in group.counts.filter { counted($0.target) }.map { ($0, Self.key(of: $0, org: org, keys: keys)) } } ?? []
            arguments += [Array(String(index(keys.stream(group.kind, partition: group.partition))).utf8), Array(String(counts.count).utf8)]
            for (count, (key, ttl)) in counts {
                arguments += [Array(String(index(key)).utf8), Array(count.field.utf8), Array(String(count.amount).utf8), Array(String(ttl).utf8)]
            }
            arguments.append(Array(String(entryIDs.count).utf8))
            arguments += entryIDs.map { Array($0.utf8) }
        }
        let answers = try await redis.send(AcknowledgeAndCount(keys: scriptKeys, arguments: arguments))
        return zip(groups, answers).map { ($0.0.key, $0.1) }
    }
}

/// Acknowledges groups of entries and counts what each `XACK` answered, in one script.
struct AcknowledgeAndCount: RedisScriptCommand {
    /// KEYS: the streams and counter hashes. ARGV: the group name, then per group the KEYS index of its stream, the
    /// number of counts, each count's KEYS index, field, amount and time to live in seconds (0: none), the number of
    /// ids, and the ids. Answers the entries newly acknowledged per group, in order.
    static let script = RedisScript(
        """
        local answers = {}
        local i = 2
        while i <= #ARGV do
            local stream, fields = KEYS[tonumber(ARGV[i])], tonumber(ARGV[i + 1])
            local n = tonumber(ARGV[i + 2 + 4 * fields])
            local first = i + 3 + 4 * fields
            local acknowledged = 0
            for from = first, first + n - 1, 1000 do
                acknowledged = acknowledged + redis.call('XACK', stream, ARGV[1], unpack(ARGV, from, math.min(from + 999, first + n - 1)))
            end
            if acknowledged > 0 then
                for f = 0, fields - 1 do
                    local key = KEYS[tonumber(ARGV[i + 2 + 4 * f])]
                    redis.call('HINCRBY', key, ARGV[i + 3 + 4 * f], acknowledged * tonumber(ARGV[i + 4 + 4 * f]))
                    local ttl = tonumber(ARGV[i + 5 + 4 * f])
                    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
                end
            end
            answers[#answers + 1] = acknowledged
            i = first + n
        end
        return answers
        """
    )

    var arguments: [[UInt8]]

    init(keys: [String], arguments: [[UInt8]]) { self.arguments = Self.invocation(keys: keys, arguments: arguments) }

    /// The entries newly acknowledged per group.
    func response(from reply: RedisReply) throws(RedisError) -> [Int] {
        var answers: [Int] = []
        for answer in try reply.expectArray("acknowledgement") { answers.append(try answer.expectInteger("acknowledgement")) }
        return answers
    }
}
