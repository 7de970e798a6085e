import Shared

/// The entries a batch has finished with, grouped by what they count towards, acknowledged and counted in one
/// Lua script.
///
/// Each group's counter goes up by what its `XACK` answers, the entries newly acknowledged, not by how many
/// were sent: an acknowledgement retried after Redis ran it but its reply was lost (or an entry another
/// consumer acknowledged first) counts nothing the second time, so the counters `operyn-admin` shows are
/// exact under retries.
struct Acknowledgement {
    /// Entries of one stream that count towards one field of one organization's counters (or towards nothing).
    struct Group: Hashable {
        var kind: EventKind
        /// The organization whose counters go up, `nil` for entries that count nowhere (dead letters, entries
        /// deleted while pending).
        var org: String?
        /// The counter field (`stored:logs`, `rejected:service_quota_exceeded`).
        var field: String
    }

    private(set) var ids: [Group: [String]] = [:]

    var isEmpty: Bool { ids.isEmpty }

    /// Adds an entry of `kind` that counts towards `field` of `org`'s counters.
    mutating func add(_ id: String, kind: EventKind, org: String? = nil, field: String = "") {
        ids[Group(kind: kind, org: org, field: field), default: []].append(id)
    }

    /// KEYS: the streams and counter hashes. ARGV: the group name, then per group the KEYS index of its stream,
    /// the KEYS index of its counters (0: none), the field, the number of ids, and the ids. Answers the entries
    /// newly acknowledged per group, in order.
    static let script = RedisScript(
        """
        local answers = {}
        local i = 2
        while i <= #ARGV do
            local stream, counts, field, n = KEYS[tonumber(ARGV[i])], tonumber(ARGV[i + 1]), ARGV[i + 2], tonumber(ARGV[i + 3])
            local first = i + 4
            local acknowledged = 0
            for from = first, first + n - 1, 1000 do
                acknowledged = acknowledged + redis.call('XACK', stream, ARGV[1], unpack(ARGV, from, math.min(from + 999, first + n - 1)))
            end
            if counts > 0 and acknowledged > 0 then redis.call('HINCRBY', KEYS[counts], field, acknowledged) end
            answers[#answers + 1] = acknowledged
            i = first + n
        end
        return answers
        """
    )

    /// Acknowledges every entry and counts it; answers the entries newly acknowledged per group.
    func send(on redis: RedisClient, keys: RedisKeys) async throws(RedisError) -> [(group: Group, acknowledged: Int)] {
        var scriptKeys: [String] = []
        var keyIndex: [String: Int] = [:]
        func index(_ key: String) -> Int {
            if let known = keyIndex[key] { return known }
            scriptKeys.append(key)
            keyIndex[key] = scriptKeys.count
            return scriptKeys.count
        }
        let groups = Array(ids)
        var arguments: [[UInt8]] = [Array(keys.consumerGroup.utf8)]
        for (group, entryIDs) in groups {
            let stream = index(keys.stream(group.kind))
            let counts = group.org.map { index(keys.counts(org: $0)) } ?? 0
            arguments += [Array(String(stream).utf8), Array(String(counts).utf8), Array(group.field.utf8), Array(String(entryIDs.count).utf8)]
            arguments += entryIDs.map { Array($0.utf8) }
        }
        let answers = try await redis.run(Self.script, keys: scriptKeys, arguments: arguments).array ?? []
        return zip(groups, answers).map { ($0.0.key, Int($0.1.integer ?? 0)) }
    }
}
