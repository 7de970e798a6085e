/// The requests of one organization and kind that a gateway read in one event-loop tick, each guarded by the
/// organization's `RateLimit` and its own `Idempotency-Key`, admitted by one script call: the coalesced form of
/// `GuardedAppend`, for requests that fit one chunk.
///
/// The script takes the requests in arrival order, as `GuardedAppend` would one call each: a retry (same key, same
/// body) is answered from its record and a key reused with another body is refused, both writing nothing; then both
/// measures of the limit are checked against the budgets the requests before it left (GCRA, Redis's clock), and the
/// request is refused with nothing written, or admitted: its budgets move, its key's record is written. The lines of
/// every admitted request then go out as one entry (two when some were compressed and some not: a version-2 entry of
/// plain lines and a version-3 one of zstd frames), so the stream holds one entry per tick as for unlimited
/// organizations. One call, one result per request; a failed call fails them all with nothing written.
public struct GuardedAppendGroup: RedisCommand {
    /// KEYS[1] the stream, KEYS[2] the rate budget hash, KEYS[3] the usage hash of the day, then the idempotency record
    /// of each request with a key, in order. ARGV[1] the time in ms (empty: Redis's clock); ARGV[2..5] events per
    /// second, events burst, bytes per second, bytes burst (0: unlimited); ARGV[6] the usage field refusals count in,
    /// ARGV[7] the usage hash's time to live; ARGV[8..10] the entries' `kind`, `org`, `received_at`; ARGV[11] the number
    /// of requests, then 7 per request: events, bytes, body digest (empty: no key), record time to live, 202 body,
    /// lines format (`2` plain, `3` a zstd frame), lines. Answers `{plain entry id or '', packed entry id or '',
    /// result…}`, a result per request as `GuardedAppend`'s without ids: `{1, events left, events reset ms, bytes left,
    /// bytes reset ms}`, `{0, retry ms, measure}`, `{2, recorded body}` or `{3}`.
    public static let script = RedisScript(
        """
        local now
        if ARGV[1] ~= '' then
            now = tonumber(ARGV[1])
        else
            local time = redis.call('TIME')
            now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
        end
        local rate = {tonumber(ARGV[2]), tonumber(ARGV[4])}
        local burst = {tonumber(ARGV[3]), tonumber(ARGV[5])}
        local tat = {0, 0}
        if rate[1] > 0 or rate[2] > 0 then
            local state = redis.call('HMGET', KEYS[2], 'events', 'bytes')
            tat = {tonumber(state[1]) or 0, tonumber(state[2]) or 0}
        end
        local results = {'', ''}
        local plain, plainCount, packed, packedCount = {}, 0, {}, 0
        local refused, charged, keep = 0, false, 0
        local record = 4
        for r = 1, tonumber(ARGV[11]) do
            local base = 12 + (r - 1) * 7
            local events, bytes, digest = tonumber(ARGV[base]), tonumber(ARGV[base + 1]), ARGV[base + 2]
            local result
            if digest ~= '' then
                local seen = redis.call('HMGET', KEYS[record], 'digest', 'answer')
                if seen[1] then
                    if seen[1] == digest then result = {2, seen[2]} else result = {3} end
                end
            end
            if not result then
                local costs, after = {events, bytes}, {}
                result = {1}
                for m = 1, 2 do
                    if rate[m] > 0 then
                        local interval = 1000 / rate[m]
                        local tolerance = burst[m] * interval
                        local arrival = math.max(tat[m], now) + costs[m] * interval
                        if costs[m] > burst[m] then
                            result = {0, -1, m}
                            break
                        elseif arrival - now > tolerance then
                            result = {0, math.ceil(arrival - now - tolerance), m}
                            break
                        end
                        after[m] = arrival
                        result[#result + 1] = math.floor((tolerance - (arrival - now)) / interval)
                        result[#result + 1] = math.ceil(arrival - now)
                    else
                        result[#result + 1] = -1
                        result[#result + 1] = -1
                    end
                end
                if result[1] == 0 then
                    refused = refused + events
                else
                    for m = 1, 2 do
                        if after[m] then
                            tat[m] = after[m]
                            charged = true
                            keep = math.max(keep, math.ceil(after[m] - now))
                        end
                    end
                    if ARGV[base + 5] == '3' then
                        packed[#packed + 1] = ARGV[base + 6]
                        packedCount = packedCount + events
                    else
                        plain[#plain + 1] = ARGV[base + 6]
                        plainCount = plainCount + events
                    end
                    if digest ~= '' then
                        redis.call('HSET', KEYS[record], 'digest', digest, 'answer', ARGV[base + 4])
                        redis.call('EXPIRE', KEYS[record], tonumber(ARGV[base + 3]))
                    end
                end
            end
            if digest ~= '' then record = record + 1 end
            results[#results + 1] = result
        end
        if charged then
            redis.call('HSET', KEYS[2], 'events', string.format('%.3f', tat[1]), 'bytes', string.format('%.3f', tat[2]))
            redis.call('PEXPIRE', KEYS[2], keep + 60000)
        end
        if refused > 0 then
            redis.call('HINCRBY', KEYS[3], ARGV[6], refused)
            redis.call('EXPIRE', KEYS[3], tonumber(ARGV[7]))
        end
        if plainCount > 0 then
            results[1] = redis.call('XADD', KEYS[1], '*', 'v', '2', 'kind', ARGV[8], 'org', ARGV[9], 'received_at', ARGV[10],
                'count', plainCount, 'events', table.concat(plain, '\\n'))
        end
        if packedCount > 0 then
            results[2] = redis.call('XADD', KEYS[1], '*', 'v', '3', 'kind', ARGV[8], 'org', ARGV[9], 'received_at', ARGV[10],
                'count', packedCount, 'events', table.concat(packed))
        end
        return results
        """
    )

    /// One request of the group.
    public struct Request: Sendable {
        /// Its events, as a chunk of their own.
        public var chunk: StreamChunk
        /// Its body's bytes, the cost in the bytes measure.
        public var bytes: Int
        /// Its key, if it has one.
        public var idempotency: GuardedAppend.Idempotency?

        public init(chunk: StreamChunk, bytes: Int, idempotency: GuardedAppend.Idempotency?) {
            self.chunk = chunk
            self.bytes = bytes
            self.idempotency = idempotency
        }
    }

    public let stream: String
    public let limit: RateLimit
    public let requests: [Request]
    public var arguments: [[UInt8]]

    /// Admits `requests` (one organization and kind, in arrival order) under `limit`, whose budget is kept in `state`,
    /// and appends those admitted to `stream`. A request whose lines are `compressAbove` bytes or more goes as a zstd
    /// frame (nil: none). `sendSource` sends the script's source rather than its digest; `now` (ms) replaces Redis's
    /// clock, for tests. Refusals count their events in `usage`, field `usageField`.
    public init(
        _ requests: [Request], to stream: String, state: String, usage: String, usageField: String, limit: RateLimit, compressAbove: Int? = nil,
        sendSource: Bool = false, now: Int64? = nil
    ) {
        precondition(!requests.isEmpty, "a group holds at least one request")
        self.stream = stream
        self.limit = limit
        self.requests = requests
        let first = requests[0].chunk
        let records = requests.compactMap(\.idempotency?.record)
        var arguments: [[UInt8]] =
            sendSource ? [Array("EVAL".utf8), Array(Self.script.source.utf8)] : [Array("EVALSHA".utf8), Array(Self.script.sha1.utf8)]
        arguments.reserveCapacity(16 + records.count + 7 * requests.count)
        arguments += [Array(String(3 + records.count).utf8), Array(stream.utf8), Array(state.utf8), Array(usage.utf8)]
        for record in records { arguments.append(Array(record.utf8)) }
        arguments.append(now.map { Array(String($0).utf8) } ?? [])
        for value in [limit.eventsPerSecond, limit.eventsBurst, limit.bytesPerSecond, limit.bytesBurst] { arguments.append(Array(String(value).utf8)) }
        arguments += [
            Array(usageField.utf8), Array(String(Usage.ttlSeconds).utf8), Array(first.kind.rawValue.utf8), Array(first.org.utf8),
            Array(first.receivedAtText.utf8), Array(String(requests.count).utf8),
        ]
        for request in requests {
            var lines: [UInt8] = []
            request.chunk.appendLines(relativeTo: first.receivedAt, to: &lines)
            let packed = compressAbove.map { lines.count >= $0 } ?? false
            arguments += [
                Array(String(request.chunk.count).utf8), Array(String(request.bytes).utf8), Array((request.idempotency?.digest ?? "").utf8),
                Array(String(request.idempotency?.ttlSeconds ?? 0).utf8), Array((request.idempotency?.answer ?? "").utf8),
                packed ? [UInt8(ascii: "3")] : [UInt8(ascii: "2")], packed ? StreamEntryCodec.packLines(lines) : lines,
            ]
        }
        self.arguments = arguments
    }

    public var routingKey: [UInt8]? { Array(stream.utf8) }

    /// Each request's decision, in order.
    public func response(from reply: RedisReply) throws(RedisError) -> [GuardedAppend.Decision] {
        let values = try reply.expectArray("guarded append group")
        guard values.count == 2 + requests.count else { throw .unexpected("guarded append group", reply) }
        let ids = values[0..<2].compactMap { $0.string.flatMap { $0.isEmpty ? nil : $0 } }
        var decisions: [GuardedAppend.Decision] = []
        decisions.reserveCapacity(requests.count)
        for (request, value) in zip(requests, values.dropFirst(2)) {
            guard let result = value.array else { throw .unexpected("guarded append group", reply) }
            decisions.append(
                try GuardedAppend.decision(result, limit: limit, events: request.chunk.count, bytes: request.bytes, ids: ids, reply: reply))
        }
        return decisions
    }
}
