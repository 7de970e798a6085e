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
/// their own, and the counters (tagged by organization) go up by what it answered right after, in a command of their
/// own. They stay exact under retried acknowledgements; a failure between the two (a worker that dies, Redis
/// unreachable just then: the retried acknowledgement answers 0) leaves that batch uncounted, never counted twice.
struct Acknowledgement {
    /// What one entry adds to one counter field (`stored:logs`, `rejected:service_quota_exceeded`).
    struct Count: Hashable {
        var field: String
        var amount: Int
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

    /// KEYS: the streams and counter hashes. ARGV: the group name, then per group the KEYS index of its stream, the
    /// KEYS index of its counters (0: none), the number of counts, each count's field and amount, the number of ids,
    /// and the ids. Answers the entries newly acknowledged per group, in order.
    static let script = RedisScript(
        """
        local answers = {}
        local i = 2
        while i <= #ARGV do
            local stream, counts, fields = KEYS[tonumber(ARGV[i])], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
            local n = tonumber(ARGV[i + 3 + 2 * fields])
            local first = i + 4 + 2 * fields
            local acknowledged = 0
            for from = first, first + n - 1, 1000 do
                acknowledged = acknowledged + redis.call('XACK', stream, ARGV[1], unpack(ARGV, from, math.min(from + 999, first + n - 1)))
            end
            if counts > 0 and acknowledged > 0 then
                for f = 0, fields - 1 do
                    redis.call('HINCRBY', KEYS[counts], ARGV[i + 3 + 2 * f], acknowledged * tonumber(ARGV[i + 4 + 2 * f]))
                end
            end
            answers[#answers + 1] = acknowledged
            i = first + n
        end
        return answers
        """
    )

    /// Acknowledges every entry and counts it; answers the entries newly acknowledged per group.
    func send(on redis: RedisClient, keys: RedisKeys) async throws(RedisError) -> [(group: Group, acknowledged: Int)] {
        guard keys.clustered else { return try await send(Array(ids), on: redis, keys: keys, counting: true) }
        var answers: [(group: Group, acknowledged: Int)] = []
        for partition in Set(ids.keys.map(\.partition)).sorted() {
            answers += try await send(ids.filter { $0.key.partition == partition }, on: redis, keys: keys, counting: false)
        }
        var increments: [HINCRBY] = []
        for (group, acknowledged) in answers where acknowledged > 0 {
            guard let org = group.org else { continue }
            for count in group.counts { increments.append(HINCRBY(keys.counts(org: org), field: count.field, by: acknowledged * count.amount)) }
        }
        // Not retried: the acknowledgement is done, and counting it again could count it twice.
        for result in try await redis.pipeline(increments) { _ = try result.get() }
        return answers
    }

    /// One script for `groups`, whose streams share a slot; with `counting`, the counters go up in it too.
    private func send(
        _ groups: [(key: Group, value: [String])], on redis: RedisClient, keys: RedisKeys, counting: Bool
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
            let stream = index(keys.stream(group.kind, partition: group.partition))
            let counts = counting ? group.org.map { index(keys.counts(org: $0)) } ?? 0 : 0
            arguments += [Array(String(stream).utf8), Array(String(counts).utf8), Array(String(group.counts.count).utf8)]
            for count in group.counts { arguments += [Array(count.field.utf8), Array(String(count.amount).utf8)] }
            arguments.append(Array(String(entryIDs.count).utf8))
            arguments += entryIDs.map { Array($0.utf8) }
        }
        let answers = try await redis.run(Self.script, keys: scriptKeys, arguments: arguments).array ?? []
        return zip(groups, answers).map { ($0.0.key, Int($0.1.integer ?? 0)) }
    }
}
