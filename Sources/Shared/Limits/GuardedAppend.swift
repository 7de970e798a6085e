/// Appends a request's chunk entries in one Lua script, guarded by its organization's `RateLimit` and by its
/// `Idempotency-Key`, atomically: the gateway's one round trip for a request of a limited organization or with a key.
///
/// - **Rate limit**: the budget of each measure is one GCRA timestamp (the "theoretical arrival time") in a hash of the
///   organization's, in the stream's slot (`RedisKeys.rateState`), read from Redis's own clock so that every gateway
///   shares it: a request of cost `n` at time `now` is admitted when `max(tat, now) + n × interval − now ≤ burst ×
///   interval` (interval = 1 s ÷ rate), and moves `tat` there. Both measures are checked before either is charged; the
///   hash expires a minute after both budgets are full again. Over the limit, nothing is written.
/// - **Idempotency key**: a request whose key was seen within its time to live is not appended again: the script
///   answers the first request's 202 body (same body digest) or a conflict (another body). The record (the digest and
///   the 202 body) is written in the same script as the entries, so no crash leaves one without the other.
public struct GuardedAppend: RedisScriptCommand {
    /// KEYS[1] the stream, KEYS[2] the rate budget hash, KEYS[3] the organization's usage hash of the day, KEYS[4] (when
    /// ARGV[8] is set) the idempotency record. ARGV[1] the time in ms (empty: Redis's clock); ARGV[2..5] events per
    /// second, events burst, bytes per second, bytes burst (a rate of 0: unlimited); ARGV[6], ARGV[7] the request's
    /// events and bytes; ARGV[8] the body's digest (empty: no key), ARGV[9] the record's time to live in seconds,
    /// ARGV[10] the 202 body to record; ARGV[11] the usage field a refusal counts its events in, ARGV[12] the usage
    /// hash's time to live; ARGV[13] the number of entries, then per entry its number of fields and the fields. Answers `{0, retry ms (-1: larger than the burst),
    /// measure (1 events, 2 bytes)}`, `{1, events left, events reset ms, bytes left, bytes reset ms, entry ids…}` (-1
    /// for an unlimited measure), `{2, recorded 202 body}` (a retry) or `{3}` (the key with another body).
    public static let script = RedisScript(
        """
        \(recordFunctions)
        if ARGV[8] ~= '' then
            local seen = claim(KEYS[4], ARGV[8], ARGV[10], ARGV[9])
            if seen then return seen end
        end
        \(clock)
        local measures = {{tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[6])}, {tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[7])}}
        local function refuse(retry, measure)
            if ARGV[8] ~= '' then redis.call('DEL', KEYS[4]) end
            redis.call('HINCRBY', KEYS[3], ARGV[11], tonumber(ARGV[6]))
            redis.call('EXPIRE', KEYS[3], tonumber(ARGV[12]))
            return {0, retry, measure}
        end
        local after, answer, keep = {}, {1}, 0
        local state
        for m = 1, 2 do
            local rate, burst, cost = measures[m][1], measures[m][2], measures[m][3]
            if rate > 0 then
                state = state or redis.call('HMGET', KEYS[2], 'events', 'bytes')
                local interval = 1000 / rate
                local tolerance = burst * interval
                if cost > burst then return refuse(-1, m) end
                local tat = math.max(tonumber(state[m]) or 0, now)
                local arrival = tat + cost * interval
                if arrival - now > tolerance then return refuse(math.ceil(arrival - now - tolerance), m) end
                after[m] = arrival
                answer[#answer + 1] = math.floor((tolerance - (arrival - now)) / interval)
                answer[#answer + 1] = math.ceil(arrival - now)
                keep = math.max(keep, math.ceil(arrival - now))
            else
                answer[#answer + 1] = -1
                answer[#answer + 1] = -1
            end
        end
        if after[1] then redis.call('HSET', KEYS[2], 'events', string.format('%.17g', after[1])) end
        if after[2] then redis.call('HSET', KEYS[2], 'bytes', string.format('%.17g', after[2])) end
        if state then redis.call('PEXPIRE', KEYS[2], keep + 60000) end
        local index = 14
        for _ = 1, tonumber(ARGV[13]) do
            local fields = tonumber(ARGV[index])
            answer[#answer + 1] = redis.call('XADD', KEYS[1], '*', unpack(ARGV, index + 1, index + 2 * fields))
            index = index + 1 + 2 * fields
        end
        return answer
        """
    )

    /// The Lua both append scripts record idempotency keys with. `claim(key, digest, answer, ttl)` records `digest`
    /// and the 202 body `answer` under `key` for `ttl` seconds unless a record is there (one `SET NX GET EX`: the
    /// string `<digest>\\n<answer>`), and answers nil when it recorded, `{2, first answer}` for a retry (the same
    /// digest) and `{3}` for a key used with another request. A record of an earlier version (a hash of `digest` and
    /// `answer`) is read as well. A request refused afterwards deletes the record it made.
    static let recordFunctions = """
        local function claim(key, digest, answer, ttl)
            local seen = redis.pcall('SET', key, digest .. '\\n' .. answer, 'NX', 'GET', 'EX', ttl)
            if type(seen) == 'table' and seen.err then
                local old = redis.call('HMGET', key, 'digest', 'answer')
                if old[1] == digest then return {2, old[2]} end
                return {3}
            end
            if not seen then return nil end
            local split = string.find(seen, '\\n', 1, true)
            if split and string.sub(seen, 1, split - 1) == digest then return {2, string.sub(seen, split + 1)} end
            return {3}
        end
        """

    /// The Lua both append scripts read the time with: `now`, in milliseconds, from ARGV[1] when a test sets it, else
    /// from Redis's clock (`TIME`), which every gateway shares.
    static let clock = """
        local now
        if ARGV[1] ~= '' then
            now = tonumber(ARGV[1])
        else
            local time = redis.call('TIME')
            now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
        end
        """

    /// A request's `Idempotency-Key`, as the script records it.
    public struct Idempotency: Sendable, Equatable {
        /// The record's key (`RedisKeys.idempotency`).
        public var record: String
        /// The digest of what the request asks (route and body): a retry must match it.
        public var digest: String
        /// The 202 body to answer retries with.
        public var answer: String
        /// How long the record is kept, in seconds.
        public var ttlSeconds: Int

        public init(record: String, digest: String, answer: String, ttlSeconds: Int) {
            self.record = record
            self.digest = digest
            self.answer = answer
            self.ttlSeconds = ttlSeconds
        }
    }

    /// What the script decided.
    public enum Decision: Sendable, Equatable {
        /// Appended: the entries' ids, and each limited measure's budget after it.
        case admitted(ids: [String], budgets: [RateBudget])
        /// Refused; nothing written.
        case limited(RateRefusal)
        /// A retry of a request already appended under the same idempotency key: its 202 body; nothing written.
        case replayed(answer: String)
        /// The idempotency key was used with another request; nothing written.
        case conflict

        /// Whether the request was appended.
        public var isAdmitted: Bool {
            if case .admitted = self { return true }
            return false
        }
    }

    public let stream: String
    public let limit: RateLimit
    public let events: Int
    public let bytes: Int
    public var arguments: [[UInt8]]

    /// Appends `chunks` to `stream` if a request of `events` events and `bytes` bytes fits `limit`, whose budget is
    /// kept in `state`, and if `idempotency`'s key was not used before. `now` (milliseconds) replaces
    /// Redis's clock, for tests.
    ///
    /// A refusal counts the request's events in `usage` (the organization's usage hash of the day), field
    /// `usageField`. Chunks whose lines reach `packAbove` bytes are packed (version 3).
    public init(
        _ chunks: [StreamChunk], to stream: String, state: String, usage: String, usageField: String, limit: RateLimit, events: Int, bytes: Int,
        idempotency: Idempotency? = nil, packAbove: Int? = nil, now: Int64? = nil
    ) {
        self.stream = stream
        self.limit = limit
        self.events = events
        self.bytes = bytes
        var arguments: [[UInt8]] = [Array("EVALSHA".utf8), Array(Self.script.sha1.utf8)]
        arguments += [Array((idempotency == nil ? "3" : "4").utf8), Array(stream.utf8), Array(state.utf8), Array(usage.utf8)]
        if let idempotency { arguments.append(Array(idempotency.record.utf8)) }
        arguments.append(now.map { Array(String($0).utf8) } ?? [])
        for value in [limit.eventsPerSecond, limit.eventsBurst, limit.bytesPerSecond, limit.bytesBurst, events, bytes] {
            arguments.append(Array(String(value).utf8))
        }
        arguments += [
            Array((idempotency?.digest ?? "").utf8), Array(String(idempotency?.ttlSeconds ?? 0).utf8), Array((idempotency?.answer ?? "").utf8),
            Array(usageField.utf8), Array(String(Usage.ttlSeconds).utf8), Array(String(chunks.count).utf8),
        ]
        for chunk in chunks {
            let fields = chunk.fields(packAbove: packAbove)
            arguments.append(Array(String(fields.count).utf8))
            for field in fields { arguments += [field.name, field.value] }
        }
        self.arguments = arguments
    }

    public var routingKey: [UInt8]? { Array(stream.utf8) }

    public func response(from reply: RedisReply) throws(RedisError) -> Decision {
        let values = try reply.expectArray("guarded append")
        guard let admitted = values.first?.integer else { throw .unexpected("guarded append", reply) }
        if admitted == 2 {
            guard values.count == 2, let answer = values[1].string else { throw .unexpected("guarded append", reply) }
            return .replayed(answer: answer)
        }
        if admitted == 3 { return .conflict }
        if admitted == 0 {
            guard values.count == 3, let retry = values[1].integer, let measure = values[2].integer else { throw .unexpected("guarded append", reply) }
            return .limited(
                RateRefusal(
                    measure: measure == 1 ? "events" : "bytes", retryAfterMilliseconds: retry < 0 ? nil : Int(retry),
                    cost: measure == 1 ? events : bytes))
        }
        guard admitted == 1, values.count >= 5 else { throw .unexpected("guarded append", reply) }
        var budgets: [RateBudget] = []
        for (offset, measure, rate, burst) in [(1, "events", limit.eventsPerSecond, limit.eventsBurst), (3, "bytes", limit.bytesPerSecond, limit.bytesBurst)] {
            guard rate > 0, let remaining = values[offset].integer, let reset = values[offset + 1].integer else { continue }
            budgets.append(RateBudget(measure: measure, rate: rate, burst: burst, remaining: remaining, resetMilliseconds: reset))
        }
        var ids: [String] = []
        for value in values.dropFirst(5) { ids.append(try value.expectString("XADD")) }
        return .admitted(ids: ids, budgets: budgets)
    }
}
