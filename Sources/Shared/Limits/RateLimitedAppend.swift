/// Admits a request under its organization's `RateLimit` and appends its chunk entries, atomically, in one Lua
/// script: the gateway's one round trip for a limited organization. Over the limit, nothing is written.
///
/// The budget of each measure is one GCRA timestamp (the "theoretical arrival time") in a hash of the organization's,
/// in the stream's slot (`RedisKeys.rateState`), read from Redis's own clock so that every gateway shares it: a
/// request of cost `n` at time `now` is admitted when `max(tat, now) + n × interval − now ≤ burst × interval`
/// (interval = 1 s ÷ rate), and moves `tat` there. Both measures are checked before either is charged. The hash
/// expires once both budgets are full again.
public struct RateLimitedAppend: RedisCommand {
    /// KEYS[1] the stream, KEYS[2] the budget hash. ARGV[1] the time in ms (empty: Redis's clock); ARGV[2..5] events
    /// per second, events burst, bytes per second, bytes burst (a rate of 0: unlimited); ARGV[6], ARGV[7] the
    /// request's events and bytes; ARGV[8] the number of entries, then per entry its number of fields and the
    /// fields. Answers `{0, retry ms (-1: larger than the burst), measure (1 events, 2 bytes)}` or `{1, events left,
    /// events reset ms, bytes left, bytes reset ms, entry ids…}` (-1 for an unlimited measure).
    public static let script = RedisScript(
        """
        local now
        if ARGV[1] ~= '' then
            now = tonumber(ARGV[1])
        else
            local time = redis.call('TIME')
            now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
        end
        local state = redis.call('HMGET', KEYS[2], 'events', 'bytes')
        local measures = {{tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[6])}, {tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[7])}}
        local after, answer, keep = {}, {1}, 0
        for m = 1, 2 do
            local rate, burst, cost = measures[m][1], measures[m][2], measures[m][3]
            if rate > 0 then
                local interval = 1000 / rate
                local tolerance = burst * interval
                if cost > burst then return {0, -1, m} end
                local tat = math.max(tonumber(state[m]) or 0, now)
                local arrival = tat + cost * interval
                if arrival - now > tolerance then return {0, math.ceil(arrival - now - tolerance), m} end
                after[m] = arrival
                answer[#answer + 1] = math.floor((tolerance - (arrival - now)) / interval)
                answer[#answer + 1] = math.ceil(arrival - now)
                keep = math.max(keep, math.ceil(arrival - now))
            else
                answer[#answer + 1] = -1
                answer[#answer + 1] = -1
            end
        end
        if after[1] then redis.call('HSET', KEYS[2], 'events', string.format('%.3f', after[1])) end
        if after[2] then redis.call('HSET', KEYS[2], 'bytes', string.format('%.3f', after[2])) end
        redis.call('PEXPIRE', KEYS[2], keep + 1000)
        local index = 9
        for _ = 1, tonumber(ARGV[8]) do
            local fields = tonumber(ARGV[index])
            answer[#answer + 1] = redis.call('XADD', KEYS[1], '*', unpack(ARGV, index + 1, index + 2 * fields))
            index = index + 1 + 2 * fields
        end
        return answer
        """
    )

    /// What the script decided.
    public enum Decision: Sendable, Equatable {
        /// Appended: the entries' ids, and each limited measure's budget after it.
        case admitted(ids: [String], budgets: [RateBudget])
        /// Refused; nothing written.
        case limited(RateRefusal)
    }

    public let stream: String
    public let limit: RateLimit
    public let events: Int
    public let bytes: Int
    public var arguments: [[UInt8]]

    /// Appends `chunks` to `stream` if a request of `events` events and `bytes` bytes fits `limit`, whose budget is
    /// kept in `state`. `sendSource` sends the script's source (`EVAL`) rather than its digest (`EVALSHA`), for a
    /// server that does not know it yet; `now` (milliseconds) replaces Redis's clock, for tests.
    public init(
        _ chunks: [StreamChunk], to stream: String, state: String, limit: RateLimit, events: Int, bytes: Int, sendSource: Bool = false,
        now: Int64? = nil
    ) {
        self.stream = stream
        self.limit = limit
        self.events = events
        self.bytes = bytes
        var arguments: [[UInt8]] =
            sendSource ? [Array("EVAL".utf8), Array(Self.script.source.utf8)] : [Array("EVALSHA".utf8), Array(Self.script.sha1.utf8)]
        arguments += [Array("2".utf8), Array(stream.utf8), Array(state.utf8), now.map { Array(String($0).utf8) } ?? []]
        for value in [limit.eventsPerSecond, limit.eventsBurst, limit.bytesPerSecond, limit.bytesBurst, events, bytes, chunks.count] {
            arguments.append(Array(String(value).utf8))
        }
        for chunk in chunks {
            let fields = chunk.fields
            arguments.append(Array(String(fields.count).utf8))
            for field in fields { arguments += [field.name, field.value] }
        }
        self.arguments = arguments
    }

    public var routingKey: [UInt8]? { Array(stream.utf8) }

    public func response(from reply: RedisReply) throws(RedisError) -> Decision {
        let values = try reply.expectArray("rate-limited append")
        guard let admitted = values.first?.integer else { throw .unexpected("rate-limited append", reply) }
        if admitted == 0 {
            guard values.count == 3, let retry = values[1].integer, let measure = values[2].integer else { throw .unexpected("rate-limited append", reply) }
            return .limited(
                RateRefusal(
                    measure: measure == 1 ? "events" : "bytes", retryAfterMilliseconds: retry < 0 ? nil : Int(retry),
                    cost: measure == 1 ? events : bytes))
        }
        guard values.count >= 5 else { throw .unexpected("rate-limited append", reply) }
        var budgets: [RateBudget] = []
        for (offset, measure, rate, burst) in [(1, "events", limit.eventsPerSecond, limit.eventsBurst), (3, "bytes", limit.bytesPerSecond, limit.bytesBurst)] {
            guard rate > 0, let remaining = values[offset].integer, let reset = values[offset + 1].integer else { continue }
            budgets.append(
                RateBudget(
                    measure: measure, quota: burst, windowSeconds: max(1, (burst + rate - 1) / rate), remaining: Int(max(0, remaining)),
                    resetSeconds: Int((max(0, reset) + 999) / 1_000)))
        }
        var ids: [String] = []
        for value in values.dropFirst(5) { ids.append(try value.expectString("XADD")) }
        return .admitted(ids: ids, budgets: budgets)
    }
}
