import Foundation
import NIOCore
import NIOPosix
import Shared
import TestSupport
import Testing

/// The rate-limit script on the real Redis and on the cluster, on a clock the test sets.
@Suite("Rate-limited appends (GCRA in Redis)")
struct GuardedAppendTests {
    enum Target: String, CaseIterable, CustomTestStringConvertible {
        case server, cluster
        var testDescription: String { rawValue }
    }

    struct Setup {
        let redis: RedisClient
        let keys: RedisKeys
        let org = "tenant-\(UUID().uuidString.prefix(6))"

        init(_ target: Target, name: String = #function) throws {
            // A generous timeout: the first commands connect (and on a cluster read its topology) while every suite runs.
            redis = target == .cluster ? try TestRedis.clusterClient(commandTimeout: 15_000) : try TestRedis.client(commandTimeout: 15_000)
            keys = RedisKeys(prefix: TestRedis.prefix(name), clustered: target == .cluster)
        }

        var stream: String { keys.stream(.logs, partition: keys.partition(of: org)) }

        /// Asks to append `events` events of `bytes` bytes at `now` ms under `limit` (by the script's source: a cluster's
        /// masters may not know it yet).
        func append(
            _ events: Int, bytes: Int = 100, at now: Int64, limit: RateLimit, idempotency: GuardedAppend.Idempotency? = nil
        ) async throws -> GuardedAppend.Decision {
            let queued = (0..<events).map { index in
                QueuedEvent(
                    id: UUID().uuidString.lowercased(), org: org, receivedAt: .now,
                    event: .log(LogEvent(service: "api", level: .info, message: "m\(index)", timestamp: .now)))
            }
            let command = GuardedAppend(
                StreamEntryCodec.chunks(queued), to: stream, state: keys.rateState(org: org), usage: usage, usageField: "rate_limited:logs", limit: limit,
                events: events, bytes: bytes, idempotency: idempotency, now: now)
            return try await redis.send(command)
        }

        func record(_ key: String) -> String { keys.idempotency(org: org, key: key) }

        var usage: String { keys.usage(org: org, day: "2026-12-02") }

        func cleanUp() async {
            for key in ["k1", "k2"] { _ = try? await redis.send(DEL([record(key)])) }
            _ = try? await redis.send(DEL([usage]))
            _ = try? await redis.send(DEL([stream]))
            _ = try? await redis.send(DEL([keys.rateState(org: org)]))
            redis.shutdown()
        }
    }

    /// GCRA in Swift (`GCRA`: the coalesced group's replay, the in-memory publisher, `/usage`) against the script's Lua,
    /// on the same clock: 80 random requests, each decided by both, with the same decision, retry delay and budget.
    @Test func gcraInSwiftDecidesAsTheScriptDoes() async throws {
        let setup = try Setup(.server)
        defer { Task { await setup.cleanUp() } }
        let limit = RateLimit(eventsPerSecond: 7, eventsBurst: 9)
        let gcra = GCRA(rate: 7, burst: 9)
        var generator = SystemRandomNumberGenerator()
        var now: Int64 = 5_000_000
        var tat = 0.0
        for step in 0..<80 {
            now += Int64.random(in: 0...400, using: &generator)
            let cost = Int.random(in: 1...10, using: &generator)
            let script = try await setup.append(cost, at: now, limit: limit)
            switch gcra.take(cost, tat: tat, now: Double(now)) {
            case .admitted(let arrival):
                tat = arrival
                guard case .admitted(_, let budgets) = script else {
                    Issue.record("step \(step): Swift admitted \(cost), the script answered \(script)")
                    return
                }
                #expect(budgets == [gcra.budget("events", arrival: arrival, now: Double(now))], "step \(step)")
            case .refused(let retryAfter):
                #expect(script == .limited(RateRefusal(measure: "events", retryAfterMilliseconds: retryAfter, cost: cost)), "step \(step)")
            }
        }
    }

    @Test(arguments: Target.allCases)
    func eventsAreAdmittedUpToTheBurstThenAtTheRate(target: Target) async throws {
        let setup = try Setup(target)
        defer { Task { await setup.cleanUp() } }
        let limit = RateLimit(eventsPerSecond: 10, eventsBurst: 20)
        let start: Int64 = 1_000_000
        guard case .admitted(let ids, let budgets) = try await setup.append(15, at: start, limit: limit) else {
            Issue.record("15 of a burst of 20 refused")
            return
        }
        #expect(ids.count == 1 && budgets == [RateBudget(measure: "events", quota: 20, windowSeconds: 2, remaining: 5, resetSeconds: 2)])
        #expect(try await setup.append(5, at: start, limit: limit).isAdmitted, "the rest of the burst")
        #expect(
            try await setup.append(1, at: start, limit: limit) == .limited(RateRefusal(measure: "events", retryAfterMilliseconds: 100, cost: 1)),
            "one interval (100 ms at 10 a second) until the next")
        #expect(try await setup.append(1, at: start + 99, limit: limit).isAdmitted == false)
        #expect(try await setup.append(1, at: start + 100, limit: limit).isAdmitted)
        #expect(try await setup.append(3, at: start + 350, limit: limit) == .limited(RateRefusal(measure: "events", retryAfterMilliseconds: 50, cost: 3)))
        #expect(try await setup.append(3, at: start + 400, limit: limit).isAdmitted)
        #expect(try await setup.redis.send(XLEN(setup.stream)) == 4, "only admitted requests were appended")
        // A request larger than the burst could never be admitted.
        #expect(try await setup.append(21, at: start + 60_000, limit: limit) == .limited(RateRefusal(measure: "events", retryAfterMilliseconds: nil, cost: 21)))
        #expect(try await setup.redis.send(HGET(setup.usage, field: "rate_limited:logs")) == "26", "every refused event counted in the day's usage")
        // After a quiet spell the whole burst is back.
        #expect(try await setup.append(20, at: start + 60_000, limit: limit).isAdmitted)
    }

    @Test(arguments: Target.allCases)
    func bytesAreLimitedAndARefusalChargesNothing(target: Target) async throws {
        let setup = try Setup(target)
        defer { Task { await setup.cleanUp() } }
        let limit = RateLimit(eventsPerSecond: 100, eventsBurst: 100, bytesPerSecond: 1_000, bytesBurst: 2_000)
        let start: Int64 = 5_000_000
        guard case .admitted(_, let budgets) = try await setup.append(1, bytes: 1_500, at: start, limit: limit) else {
            Issue.record("1 500 of a burst of 2 000 bytes refused")
            return
        }
        #expect(budgets.map(\.measure) == ["events", "bytes"] && budgets[1].remaining == 500 && budgets[0].remaining == 99)
        #expect(
            try await setup.append(1, bytes: 1_000, at: start, limit: limit)
                == .limited(RateRefusal(measure: "bytes", retryAfterMilliseconds: 500, cost: 1_000)))
        // The refused request charged no events: 99 are still there.
        #expect(try await setup.append(99, bytes: 1, at: start, limit: limit).isAdmitted)
        #expect(
            try await setup.append(1, bytes: 2_001, at: start + 10_000, limit: limit)
                == .limited(RateRefusal(measure: "bytes", retryAfterMilliseconds: nil, cost: 2_001)))
    }

    @Test func theBudgetExpiresOnceFullAndUsesRedisClockByDefault() async throws {
        let setup = try Setup(.server)
        defer { Task { await setup.cleanUp() } }
        let limit = RateLimit(eventsPerSecond: 1_000, eventsBurst: 1_000)
        let queued = [QueuedEvent(id: "x", org: setup.org, receivedAt: .now, event: .log(LogEvent(service: "a", level: .info, message: "m", timestamp: .now)))]
        var command = GuardedAppend(
            StreamEntryCodec.chunks(queued), to: setup.stream, state: setup.keys.rateState(org: setup.org), usage: setup.usage, usageField: "x",
            limit: limit, events: 1, bytes: 1)
        #expect(try await setup.redis.send(command.carryingSource).isAdmitted)
        let ttl = try await setup.redis.send(RawCommand("PTTL", setup.keys.rateState(org: setup.org))).integer ?? -2
        #expect((50_000...60_002).contains(ttl), "kept until the budget is full again, plus a minute: \(ttl) ms")
        command = GuardedAppend(
            StreamEntryCodec.chunks(queued), to: setup.stream, state: setup.keys.rateState(org: setup.org), usage: setup.usage, usageField: "x",
            limit: limit, events: 1, bytes: 1)
        #expect(try await setup.redis.send(command).isAdmitted, "by its digest once the server knows it")
    }

    @Test(arguments: Target.allCases)
    func anIdempotencyKeyIsRecordedWithTheAppendAndRetriesGetTheFirstAnswer(target: Target) async throws {
        let setup = try Setup(target)
        defer { Task { await setup.cleanUp() } }
        let first = GuardedAppend.Idempotency(record: setup.record("k1"), digest: "d1", answer: #"{"accepted":3}"#, ttlSeconds: 60)
        let appended = ContinuousClock.now
        #expect(try await setup.append(3, at: 1, limit: .none, idempotency: first).isAdmitted)
        #expect(try await setup.redis.send(RawCommand("GET", setup.record("k1"))).string == "d1\n" + #"{"accepted":3}"#, "one string: digest, newline, answer")
        let ttl = try await setup.redis.send(RawCommand("TTL", setup.record("k1"))).integer ?? 0
        // 60 s less the time passed since the append (seconds on a loaded machine: 54 was seen with the suites running).
        let passed = Int((ContinuousClock.now - appended).components.seconds)
        #expect(Int64(59 - passed)...60 ~= ttl, "TTL \(ttl) s, \(passed) s after the append")
        // The same request again: the first answer, nothing appended.
        var retry = first
        retry.answer = #"{"accepted":99}"#
        #expect(try await setup.append(3, at: 2, limit: .none, idempotency: retry) == .replayed(answer: #"{"accepted":3}"#))
        // The same key with another request: a conflict, nothing appended.
        var other = first
        other.digest = "d2"
        #expect(try await setup.append(3, at: 3, limit: .none, idempotency: other) == .conflict)
        #expect(try await setup.redis.send(XLEN(setup.stream)) == 1)
        // A request refused by its rate limit records nothing: its retry is judged afresh.
        let limit = RateLimit(eventsPerSecond: 1, eventsBurst: 2)
        let limited = GuardedAppend.Idempotency(record: setup.record("k2"), digest: "d3", answer: "x", ttlSeconds: 60)
        #expect(
            try await setup.append(3, at: 4, limit: limit, idempotency: limited)
                == .limited(RateRefusal(measure: "events", retryAfterMilliseconds: nil, cost: 3)))
        #expect(try await setup.redis.send(RawCommand("EXISTS", setup.record("k2"))) == .integer(0))
        #expect(try await setup.append(2, at: 5, limit: limit, idempotency: limited).isAdmitted)
        #expect(try await setup.append(2, at: 6, limit: limit, idempotency: limited) == .replayed(answer: "x"), "a retry costs no budget")
    }

    @Test(arguments: Target.allCases)
    func recordsOfTheVersionBeforeAHashAreHonoured(target: Target) async throws {
        let setup = try Setup(target)
        defer { Task { await setup.cleanUp() } }
        _ = try await setup.redis.send(RawCommand("HSET", setup.record("k1"), "digest", "d1", "answer", "first"))
        let retry = GuardedAppend.Idempotency(record: setup.record("k1"), digest: "d1", answer: "second", ttlSeconds: 60)
        #expect(try await setup.append(1, at: 1, limit: .none, idempotency: retry) == .replayed(answer: "first"))
        var other = retry
        other.digest = "d2"
        #expect(try await setup.append(1, at: 2, limit: .none, idempotency: other) == .conflict)
        // The coalesced script reads it the same way.
        let queued = [QueuedEvent(id: "x", org: setup.org, receivedAt: .now, event: .log(LogEvent(service: "a", level: .info, message: "m", timestamp: .now)))]
        let decisions = try await setup.redis.send(
            GuardedAppendGroup(
                [
                    .init(chunk: StreamEntryCodec.chunks(queued)[0], bytes: 1, idempotency: retry),
                    .init(chunk: StreamEntryCodec.chunks(queued)[0], bytes: 1, idempotency: other),
                ], to: setup.stream, state: setup.keys.rateState(org: setup.org), usage: setup.usage, usageField: "x", limit: .none))
        #expect(decisions == [.replayed(answer: "first"), .conflict])
        #expect(try await setup.redis.send(XLEN(setup.stream)) == 0)
    }
}

/// The coalesced script decides each request of a group exactly as one call per request would, in order, and appends
/// the admitted ones' events as one entry (two when some are packed).
@Suite("Rate-limited appends coalesced (one script call per tick)")
struct GuardedAppendGroupTests {
    typealias Target = GuardedAppendTests.Target

    /// A request: its events, bytes and key.
    struct Ask {
        var events: Int
        var bytes: Int
        var key: String?
        var digest = "d"
        var receivedAt: Timestamp = .now
    }

    func queued(_ ask: Ask, org: String, tag: String) -> [QueuedEvent] {
        (0..<ask.events).map { index in
            QueuedEvent(
                id: UUID().uuidString.lowercased(), org: org, receivedAt: ask.receivedAt,
                event: .log(LogEvent(service: "api", level: .info, message: "\(tag) \(index) " + String(repeating: "x", count: 40), timestamp: .now)))
        }
    }

    @Test(arguments: Target.allCases)
    func aGroupDecidesEachRequestAsOneCallEachWouldInOrder(target: Target) async throws {
        let grouped = try GuardedAppendTests.Setup(target)
        let single = try GuardedAppendTests.Setup(target)
        defer {
            Task {
                for setup in [grouped, single] {
                    for key in ["a", "b", "c"] { _ = try? await setup.redis.send(DEL([setup.record(key)])) }
                    await setup.cleanUp()
                }
            }
        }
        let limit = RateLimit(eventsPerSecond: 10, eventsBurst: 12, bytesPerSecond: 1_000, bytesBurst: 3_000)
        let earlier = Timestamp(milliseconds: Timestamp.now.milliseconds - 5)
        // Admitted, admitted with a key, the same key again (a retry), the key with another body (a conflict), over the
        // bytes burst, larger than the events burst, admitted with the last of the budget, over the events budget.
        let asks = [
            Ask(events: 3, bytes: 500), Ask(events: 2, bytes: 400, key: "a", receivedAt: earlier), Ask(events: 2, bytes: 400, key: "a"),
            Ask(events: 2, bytes: 400, key: "a", digest: "other"), Ask(events: 1, bytes: 2_500), Ask(events: 13, bytes: 10),
            Ask(events: 7, bytes: 100, key: "b"), Ask(events: 1, bytes: 10, key: "c"),
        ]
        let now: Int64 = 7_000_000
        var expected: [GuardedAppend.Decision] = []
        for (index, ask) in asks.enumerated() {
            let idempotency = ask.key.map {
                GuardedAppend.Idempotency(record: single.record($0), digest: ask.digest, answer: "answer \(index)", ttlSeconds: 60)
            }
            let events = queued(ask, org: single.org, tag: "r\(index)")
            expected.append(
                try await single.redis.send(
                    GuardedAppend(
                        StreamEntryCodec.chunks(events), to: single.stream, state: single.keys.rateState(org: single.org), usage: single.usage,
                        usageField: "rate_limited:logs", limit: limit, events: ask.events, bytes: ask.bytes, idempotency: idempotency,
                        now: now)))
        }
        var sent: [[QueuedEvent]] = []
        let requests = asks.enumerated().map { index, ask in
            let events = queued(ask, org: grouped.org, tag: "r\(index)")
            sent.append(events)
            return GuardedAppendGroup.Request(
                chunk: StreamEntryCodec.chunks(events)[0], bytes: ask.bytes,
                idempotency: ask.key.map {
                    GuardedAppend.Idempotency(record: grouped.record($0), digest: ask.digest, answer: "answer \(index)", ttlSeconds: 60)
                })
        }
        let decisions = try await grouped.redis.send(
            GuardedAppendGroup(
                requests, to: grouped.stream, state: grouped.keys.rateState(org: grouped.org), usage: grouped.usage, usageField: "rate_limited:logs",
                limit: limit, now: now))
        #expect(decisions.map(\.withoutIDs) == expected.map(\.withoutIDs))
        #expect(decisions.map(\.isAdmitted) == [true, true, false, false, false, false, true, false], "\(decisions)")
        // The same state after: budgets, records, usage.
        for (a, b) in [(grouped, single)] {
            let budgetsA = try await a.redis.send(HMGET(a.keys.rateState(org: a.org), fields: ["events", "bytes"]))
            let budgetsB = try await b.redis.send(HMGET(b.keys.rateState(org: b.org), fields: ["events", "bytes"]))
            #expect(budgetsA == budgetsB)
            #expect(try await a.redis.send(HGET(a.usage, field: "rate_limited:logs")) == "15")
            #expect(try await b.redis.send(HGET(b.usage, field: "rate_limited:logs")) == "15")
            for key in ["a", "b", "c"] {
                #expect(try await a.redis.send(RawCommand("GET", a.record(key))) == b.redis.send(RawCommand("GET", b.record(key))))
            }
        }
        // One entry holding the admitted requests' events in order, each with its arrival time.
        let entries = try await grouped.redis.send(XRANGE(grouped.stream))
        #expect(entries.count == 1)
        let stored = try StreamEntryCodec.decodeEvents(entries[0].fields ?? [])
        #expect(stored == sent[0] + sent[1] + sent[6])
    }

    @Test(arguments: Target.allCases)
    func aGroupThatFitsIsAdmittedWholeAndEachRequestGetsItsOwnBudget(target: Target) async throws {
        let grouped = try GuardedAppendTests.Setup(target)
        let single = try GuardedAppendTests.Setup(target)
        defer { Task { for setup in [grouped, single] { await setup.cleanUp() } } }
        let limit = RateLimit(eventsPerSecond: 7, eventsBurst: 50, bytesPerSecond: 333, bytesBurst: 10_000)
        let asks = [Ask(events: 3, bytes: 500), Ask(events: 11, bytes: 1_200), Ask(events: 1, bytes: 7), Ask(events: 20, bytes: 3_000)]
        let now: Int64 = 9_000_123
        // A budget partly used already, at a time that is not a whole interval.
        for setup in [grouped, single] {
            _ = try await setup.redis.send(RawCommand("HSET", setup.keys.rateState(org: setup.org), "events", "\(now + 333).500", "bytes", "\(now - 10)"))
        }
        var expected: [GuardedAppend.Decision] = []
        for (index, ask) in asks.enumerated() {
            expected.append(
                try await single.redis.send(
                    GuardedAppend(
                        StreamEntryCodec.chunks(queued(ask, org: single.org, tag: "r\(index)")), to: single.stream,
                        state: single.keys.rateState(org: single.org), usage: single.usage, usageField: "rate_limited:logs", limit: limit,
                        events: ask.events, bytes: ask.bytes, now: now)))
        }
        var sent: [QueuedEvent] = []
        let requests = asks.enumerated().map { index, ask in
            let events = queued(ask, org: grouped.org, tag: "r\(index)")
            sent += events
            return GuardedAppendGroup.Request(chunk: StreamEntryCodec.chunks(events)[0], bytes: ask.bytes, idempotency: nil)
        }
        let command = GuardedAppendGroup(
            requests, to: grouped.stream, state: grouped.keys.rateState(org: grouped.org), usage: grouped.usage, usageField: "rate_limited:logs",
            limit: limit, now: now)
        let reply = try await grouped.redis.send(RawCommand(arguments: command.carryingSource.arguments))
        #expect(reply.array?.count == 6 && reply.array?.last == .integer(-1), "admitted whole, no work per request: \(reply)")
        let decisions = try command.response(from: reply)
        #expect(decisions.allSatisfy { $0.isAdmitted })
        #expect(decisions.map(\.withoutIDs) == expected.map(\.withoutIDs))
        // The budgets moved alike (by the total at once here, request by request there: the same to a nanosecond).
        let budgets = try await grouped.redis.send(HMGET(grouped.keys.rateState(org: grouped.org), fields: ["events", "bytes"]))
        let singles = try await single.redis.send(HMGET(single.keys.rateState(org: single.org), fields: ["events", "bytes"]))
        for (a, b) in zip(budgets, singles) {
            let (x, y) = (a.flatMap { Double($0) } ?? -1, b.flatMap { Double($0) } ?? -2)
            #expect(abs(x - y) < 1e-6, "\(a ?? "nil") against \(b ?? "nil")")
        }
        let entries = try await grouped.redis.send(XRANGE(grouped.stream))
        #expect(entries.count == 1)
        #expect(try StreamEntryCodec.decodeEvents(entries[0].fields ?? []) == sent)
    }

    @Test(arguments: Target.allCases)
    func packedRequestsGoAsAVersionThreeEntryBesideThePlainOnes(target: Target) async throws {
        let setup = try GuardedAppendTests.Setup(target)
        defer { Task { await setup.cleanUp() } }
        // The fourth is refused (over the bytes burst): its frame is cut out of the packed frames, and the plain lines
        // are all appended as they came.
        let asks = [
            Ask(events: 1, bytes: 10), Ask(events: 40, bytes: 4_000), Ask(events: 2, bytes: 10), Ask(events: 50, bytes: 7_000), Ask(events: 40, bytes: 100),
        ]
        var sent: [[QueuedEvent]] = []
        let requests = asks.enumerated().map { index, ask in
            let events = queued(ask, org: setup.org, tag: "r\(index)")
            sent.append(events)
            return GuardedAppendGroup.Request(chunk: StreamEntryCodec.chunks(events)[0], bytes: ask.bytes, idempotency: nil)
        }
        let limit = RateLimit(eventsPerSecond: 1_000, bytesPerSecond: 1_000, bytesBurst: 6_000)
        let decisions = try await setup.redis.send(
            GuardedAppendGroup(
                requests, to: setup.stream, state: setup.keys.rateState(org: setup.org), usage: setup.usage, usageField: "rate_limited:logs", limit: limit,
                compressAbove: 1_000))
        #expect(decisions.map { $0.isAdmitted } == [true, true, true, false, true])
        let entries = try await setup.redis.send(XRANGE(setup.stream))
        #expect(entries.count == 2)
        let versions = entries.map { entry in entry.fields?.first { $0.name.elementsEqual("v".utf8) }.map { String(decoding: $0.value, as: UTF8.self) } }
        #expect(versions == ["2", "3"])
        #expect(try StreamEntryCodec.decodeEvents(entries[0].fields ?? []) == sent[0] + sent[2])
        #expect(try StreamEntryCodec.decodeEvents(entries[1].fields ?? []) == sent[1] + sent[4], "two frames, one after the other")
        let packed = entries[1].fields?.first { $0.name.elementsEqual("events".utf8) }?.value.count ?? 0
        let lines = requests[1].chunk.lines.count + requests[4].chunk.lines.count
        #expect(packed * 3 < lines, "\(packed) bytes packed for \(lines) of lines")
    }
}

extension GuardedAppend.Decision {
    /// The decision with its entry ids left out (one call per request answers ids, a group answers them apart).
    var withoutIDs: GuardedAppend.Decision {
        if case .admitted(_, let budgets) = self { return .admitted(ids: [], budgets: budgets) }
        return self
    }
}
