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
public struct GuardedAppendGroup: RedisScriptCommand {
    /// KEYS[1] the stream, KEYS[2] the rate budget hash, KEYS[3] the usage hash of the day, then the idempotency record
    /// of each request with a key, in order. ARGV[1] the time in ms (empty: Redis's clock); ARGV[2..5] events per
    /// second, events burst, bytes per second, bytes burst (0: unlimited); ARGV[6] the usage field refusals count in,
    /// ARGV[7] the usage hash's time to live; ARGV[8..10] the entries' `kind`, `org`, `received_at`; ARGV[11] the plain
    /// requests' lines, joined by newlines; ARGV[12] the packed requests' zstd frames, one after the other; ARGV[13..16]
    /// the events of the plain and of the packed requests, and every request's events and bytes; ARGV[17] each request
    /// as `<events> <bytes> <format 2 or 3> <length in ARGV[11] or ARGV[12]> <1 with a key, else 0>;`; then for each
    /// request with a key its body digest, record time to live and 202 body.
    ///
    /// When no request has a key and all of them fit the budget together, they are admitted at once (GCRA admits a
    /// sequence whole exactly when its total fits) and the two arguments appended as they came, with no work per
    /// request. Otherwise the requests are taken one by one; a kind whose requests were not all admitted has the
    /// admitted ones' parts cut out of its argument.
    ///
    /// Answers `{plain entry id or '', packed entry id or '', now, events budget before, bytes budget before, result…}`,
    /// the budgets as the hash held them (the gateway replays GCRA from them for each admitted request's budget), then
    /// `-1` when all were admitted at once, else per request `1` (admitted), `0, retry ms (-1: never), measure`
    /// (refused), `2, recorded body` (a retry) or `3` (a conflict).
    public static let script = RedisScript(
        """
        \(GuardedAppend.recordFunctions)
        \(GuardedAppend.clock)
        local rateEvents, burstEvents, rateBytes, burstBytes = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
        local intervalEvents, intervalBytes = 0, 0
        local state = {false, false}
        local tatEvents, tatBytes = 0, 0
        if rateEvents > 0 or rateBytes > 0 then
            state = redis.call('HMGET', KEYS[2], 'events', 'bytes')
            tatEvents, tatBytes = tonumber(state[1]) or 0, tonumber(state[2]) or 0
            if rateEvents > 0 then intervalEvents = 1000 / rateEvents end
            if rateBytes > 0 then intervalBytes = 1000 / rateBytes end
        end
        local results = {'', '', now, state[1] or '', state[2] or ''}
        -- A request (or all of them) of `events` and `bytes` against the budgets: the arrivals it would move them to, or
        -- nil, the retry in ms and the measure.
        local function check(events, bytes)
            local arrivalEvents, arrivalBytes = tatEvents, tatBytes
            if rateEvents > 0 then
                arrivalEvents = math.max(tatEvents, now) + events * intervalEvents
                if events > burstEvents then return nil, -1, 1 end
                if arrivalEvents - now > burstEvents * intervalEvents then
                    return nil, math.ceil(arrivalEvents - now - burstEvents * intervalEvents), 1
                end
            end
            if rateBytes > 0 then
                arrivalBytes = math.max(tatBytes, now) + bytes * intervalBytes
                if bytes > burstBytes then return nil, -1, 2 end
                if arrivalBytes - now > burstBytes * intervalBytes then
                    return nil, math.ceil(arrivalBytes - now - burstBytes * intervalBytes), 2
                end
            end
            return arrivalEvents, arrivalBytes
        end
        -- Per format (1 plain, 2 packed): the admitted parts' bounds, their events, whether any was not admitted.
        local starts, ends, counts, cut = {{}, {}}, {{}, {}}, {0, 0}, {false, false}
        local refused = 0
        local whole = false
        if not string.find(ARGV[17], ' 1;', 1, true) then
            local arrivalEvents, arrivalBytes = check(tonumber(ARGV[15]), tonumber(ARGV[16]))
            if arrivalEvents then
                whole = true
                tatEvents, tatBytes = arrivalEvents, arrivalBytes
                counts = {tonumber(ARGV[13]), tonumber(ARGV[14])}
                results[6] = -1
            end
        end
        if not whole then
            local offset, record, secret = {1, 1}, 4, 18
            for events, bytes, format, length, keyed in string.gmatch(ARGV[17], '(%d+) (%d+) (%d) (%d+) (%d);') do
                events, bytes, format = tonumber(events), tonumber(bytes), format == '3' and 2 or 1
                local first = offset[format]
                local last = first + tonumber(length) - 1
                offset[format] = last + (format == 1 and 2 or 1)
                local seen, recorded
                if keyed == '1' then
                    seen = claim(KEYS[record], ARGV[secret], ARGV[secret + 2], ARGV[secret + 1])
                    recorded = seen == nil
                    record, secret = record + 1, secret + 3
                end
                if seen then
                    cut[format] = true
                    for _, value in ipairs(seen) do results[#results + 1] = value end
                else
                    local arrivalEvents, arrivalBytes, measure = check(events, bytes)
                    if arrivalEvents then
                        tatEvents, tatBytes = arrivalEvents, arrivalBytes
                        local n = #starts[format] + 1
                        starts[format][n] = first
                        ends[format][n] = last
                        counts[format] = counts[format] + events
                        results[#results + 1] = 1
                    else
                        refused = refused + events
                        if recorded then redis.call('DEL', KEYS[record - 1]) end
                        cut[format] = true
                        -- Refused: `check` answered nil, the retry and the measure.
                        results[#results + 1] = 0
                        results[#results + 1] = arrivalBytes
                        results[#results + 1] = measure
                    end
                end
            end
        end
        if (rateEvents > 0 or rateBytes > 0) and counts[1] + counts[2] > 0 then
            redis.call('HSET', KEYS[2], 'events', string.format('%.17g', tatEvents), 'bytes', string.format('%.17g', tatBytes))
            redis.call('PEXPIRE', KEYS[2], math.ceil(math.max(tatEvents, tatBytes) - now) + 60000)
        end
        if refused > 0 then
            redis.call('HINCRBY', KEYS[3], ARGV[6], refused)
            redis.call('EXPIRE', KEYS[3], tonumber(ARGV[7]))
        end
        for format = 1, 2 do
            if counts[format] > 0 then
                local lines = ARGV[10 + format]
                if cut[format] then
                    local kept = {}
                    for i = 1, #starts[format] do kept[i] = string.sub(lines, starts[format][i], ends[format][i]) end
                    lines = table.concat(kept, format == 1 and '\\n' or '')
                end
                results[format] = redis.call('XADD', KEYS[1], '*', 'v', format == 1 and '2' or '3', 'kind', ARGV[8], 'org', ARGV[9],
                    'received_at', ARGV[10], 'count', counts[format], 'events', lines)
            end
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
    /// frame (nil: none). `now` (ms) replaces Redis's
    /// clock, for tests. Refusals count their events in `usage`, field `usageField`.
    public init(
        _ requests: [Request], to stream: String, state: String, usage: String, usageField: String, limit: RateLimit, compressAbove: Int? = nil,
        now: Int64? = nil
    ) {
        precondition(!requests.isEmpty, "a group holds at least one request")
        self.stream = stream
        self.limit = limit
        self.requests = requests
        let first = requests[0].chunk
        let records = requests.compactMap(\.idempotency?.record)
        var arguments: [[UInt8]] = [Array("EVALSHA".utf8), Array(Self.script.sha1.utf8)]
        arguments.reserveCapacity(22 + records.count + 3 * records.count)
        arguments += [Array(String(3 + records.count).utf8), Array(stream.utf8), Array(state.utf8), Array(usage.utf8)]
        for record in records { arguments.append(Array(record.utf8)) }
        arguments.append(now.map { Array(String($0).utf8) } ?? [])
        for value in [limit.eventsPerSecond, limit.eventsBurst, limit.bytesPerSecond, limit.bytesBurst] { arguments.append(Array(String(value).utf8)) }
        arguments += [
            Array(usageField.utf8), Array(String(Usage.ttlSeconds).utf8), Array(first.kind.rawValue.utf8), Array(first.org.utf8),
            Array(first.receivedAtText.utf8),
        ]
        // The plain requests' lines joined, the packed ones' frames one after the other, and each one's part.
        var (plain, packed): ([UInt8], [UInt8]) = ([], [])
        var (plainEvents, packedEvents, totalBytes) = (0, 0, 0)
        var table: [UInt8] = []
        table.reserveCapacity(24 * requests.count)
        var segment: [UInt8] = []
        for request in requests {
            let length: Int
            let isPacked = compressAbove.map { request.chunk.lines.count >= $0 } ?? false
            if isPacked {
                segment.removeAll(keepingCapacity: true)
                request.chunk.appendLines(relativeTo: first.receivedAt, to: &segment)
                let frame = StreamEntryCodec.packLines(segment)
                packed += frame
                length = frame.count
                packedEvents += request.chunk.count
            } else {
                if plainEvents > 0 { plain.append(UInt8(ascii: "\n")) }
                let start = plain.count
                request.chunk.appendLines(relativeTo: first.receivedAt, to: &plain)
                length = plain.count - start
                plainEvents += request.chunk.count
            }
            totalBytes += request.bytes
            // `<events> <bytes> <format> <length> <keyed>;`, written without building a string per request.
            func put(_ number: Int) {
                table += String(number).utf8
                table.append(UInt8(ascii: " "))
            }
            put(request.chunk.count)
            put(request.bytes)
            put(isPacked ? 3 : 2)
            put(length)
            table.append(UInt8(ascii: request.idempotency == nil ? "0" : "1"))
            table.append(UInt8(ascii: ";"))
        }
        arguments += [
            plain, packed, Array(String(plainEvents).utf8), Array(String(packedEvents).utf8), Array(String(plainEvents + packedEvents).utf8),
            Array(String(totalBytes).utf8), table,
        ]
        for idempotency in requests.compactMap(\.idempotency) {
            arguments += [Array(idempotency.digest.utf8), Array(String(idempotency.ttlSeconds).utf8), Array(idempotency.answer.utf8)]
        }
        self.arguments = arguments
    }

    public var routingKey: [UInt8]? { Array(stream.utf8) }

    /// Each request's decision, in order: admitted requests' budgets replayed from the budgets the script started from,
    /// by the same arithmetic (IEEE doubles, in the same order), so each is what a call of its own would answer.
    public func response(from reply: RedisReply) throws(RedisError) -> [GuardedAppend.Decision] {
        let values = try reply.expectArray("guarded append group")
        guard values.count >= 6, let now = values[2].integer.map(Double.init) else { throw .unexpected("guarded append group", reply) }
        let whole = values.count == 6 && values[5].integer == -1
        let ids = values[0..<2].compactMap { $0.string.flatMap { $0.isEmpty ? nil : $0 } }
        var tat = [values[3].string.flatMap(Double.init) ?? 0, values[4].string.flatMap(Double.init) ?? 0]
        let measures = [("events", limit.eventsPerSecond, limit.eventsBurst), ("bytes", limit.bytesPerSecond, limit.bytesBurst)]
        var decisions: [GuardedAppend.Decision] = []
        decisions.reserveCapacity(requests.count)
        var index = 5
        func next() throws(RedisError) -> RedisReply {
            guard index < values.count else { throw .unexpected("guarded append group", reply) }
            defer { index += 1 }
            return values[index]
        }
        for request in requests {
            switch whole ? 1 : try next().integer {
            case 1:
                var budgets: [RateBudget] = []
                for (m, (measure, rate, burst)) in measures.enumerated() where rate > 0 {
                    // The script admitted it: its arrival time moves as the script moved it (no check is repeated).
                    let gcra = GCRA(rate: rate, burst: burst)
                    let arrival = max(tat[m], now) + Double(m == 0 ? request.chunk.count : request.bytes) * gcra.interval
                    tat[m] = arrival
                    budgets.append(gcra.budget(measure, arrival: arrival, now: now))
                }
                decisions.append(.admitted(ids: ids, budgets: budgets))
            case 0:
                guard let retry = try next().integer, let measure = try next().integer else { throw .unexpected("guarded append group", reply) }
                decisions.append(
                    .limited(
                        RateRefusal(
                            measure: measure == 1 ? "events" : "bytes", retryAfterMilliseconds: retry < 0 ? nil : Int(retry),
                            cost: measure == 1 ? request.chunk.count : request.bytes)))
            case 2:
                guard let answer = try next().string else { throw .unexpected("guarded append group", reply) }
                decisions.append(.replayed(answer: answer))
            case 3:
                decisions.append(.conflict)
            default:
                throw .unexpected("guarded append group", reply)
            }
        }
        guard whole || index == values.count else { throw .unexpected("guarded append group", reply) }
        return decisions
    }
}
