import NIOCore
import NIOEmbedded
import NIOPosix
import Shared
import Synchronization
import Testing

@testable import Gateway

/// Requests of one tick share an entry per organization and kind; each is answered from its entry's `XADD`.
@Suite("Coalescing requests of one event-loop tick")
struct TickCoalescerTests {
    func chunk(_ org: String, _ kind: EventKind = .logs, events: Int = 1, message: String = "m") throws -> StreamChunk {
        let body: String =
            switch kind {
            case .logs: #"{"service":"api","level":"info","message":"\#(message)"}"#
            case .metrics: #"{"service":"api","name":"n","value":1,"unit":"u"}"#
            case .deployments: #"{"service":"api","version":"v1","environment":"prod"}"#
            }
        let event = try EventValidator().event(kind, body: Array(body.utf8))
        let queued = (0..<events).map { _ in QueuedEvent(id: EventID.make(milliseconds: 1), org: org, receivedAt: .now, event: event) }
        return StreamEntryCodec.chunks(queued)[0]
    }

    /// Appends handed to Redis, each answered when the test says.
    final class Appends: Sendable {
        let made = Mutex<[(chunk: StreamChunk, promise: EventLoopPromise<Void>)]>([])

        func append(_ chunk: StreamChunk, _ eventLoop: any EventLoop) -> EventLoopFuture<Void> {
            let promise = eventLoop.makePromise(of: Void.self)
            made.withLock { $0.append((chunk, promise)) }
            return promise.futureResult
        }

        var chunks: [StreamChunk] { made.withLock { $0.map(\.chunk) } }
    }

    @Test func requestsOfOneTickShareAnEntryPerOrganizationAndKindAndShareItsFate() throws {
        let loop = EmbeddedEventLoop()
        let coalescer = TickCoalescer()
        let appends = Appends()
        let requests = [
            try chunk("a"), try chunk("a", events: 3), try chunk("b"), try chunk("a", .metrics), try chunk("a"),
        ]
        var answers: [Result<Void, any Error>?] = Array(repeating: nil, count: requests.count)
        for (index, request) in requests.enumerated() {
            coalescer.add(request, on: loop, append: appends.append).whenComplete { answers[index] = $0 }
        }
        #expect(appends.chunks.isEmpty, "nothing is appended before the tick's reads are done")
        loop.run()
        let byKey = Dictionary(uniqueKeysWithValues: appends.chunks.map { ("\($0.org)/\($0.kind.rawValue)", $0.count) })
        #expect(byKey == ["a/logs": 5, "b/logs": 1, "a/metrics": 1])
        #expect(answers.allSatisfy { $0 == nil }, "no answer before Redis's")

        let made = appends.made.withLock { $0 }
        for (chunk, promise) in made {
            if chunk.org == "a" && chunk.kind == .logs { promise.fail(PublishError(reason: "OOM")) } else { promise.succeed() }
        }
        loop.run()
        for index in [0, 1, 4] {
            guard case .failure = answers[index] else {
                Issue.record("request \(index) shared the failed XADD: \(String(describing: answers[index]))")
                continue
            }
        }
        for index in [2, 3] {
            guard case .success = answers[index] else {
                Issue.record("request \(index) had an XADD of its own: \(String(describing: answers[index]))")
                continue
            }
        }

        // The next tick starts afresh.
        coalescer.add(try chunk("a"), on: loop, append: appends.append).whenComplete { _ in }
        loop.run()
        #expect(appends.chunks.count == 4 && appends.chunks[3].count == 1)
    }

    @Test func anEntryNeverGrowsPastTheChunkBoundAndNoRequestIsSplit() throws {
        let loop = EmbeddedEventLoop()
        let coalescer = TickCoalescer(maxBytes: 1_000)
        let appends = Appends()
        let message = String(repeating: "x", count: 100)
        let requests = try (0..<20).map { _ in try chunk("a", events: 3, message: message) }
        for request in requests { coalescer.add(request, on: loop, append: appends.append).whenComplete { _ in } }
        loop.run()
        #expect(appends.chunks.count > 1)
        #expect(appends.chunks.allSatisfy { $0.lines.count <= 1_000 && $0.count % 3 == 0 })
        #expect(appends.chunks.reduce(0) { $0 + $1.count } == 60)
        let events = try appends.chunks.flatMap { try StreamEntryCodec.decodeEvents($0.fields.map { (ArraySlice($0.name), ArraySlice($0.value)) }) }
        #expect(
            events.map(\.id) == requests.flatMap { try! StreamEntryCodec.decodeEvents($0.fields.map { (ArraySlice($0.name), ArraySlice($0.value)) }) }.map(\.id)
        )
        for (_, promise) in appends.made.withLock({ $0 }) { promise.succeed() }
        loop.run()
    }

    /// Guarded groups handed to Redis, each answered when the test says.
    final class Groups: Sendable {
        let made = Mutex<[(requests: [GuardedAppendGroup.Request], limit: RateLimit, promise: EventLoopPromise<[PublishDecision]>)]>([])

        func append(_ requests: [GuardedAppendGroup.Request], _ limit: RateLimit, _ eventLoop: any EventLoop) -> EventLoopFuture<[PublishDecision]> {
            let promise = eventLoop.makePromise(of: [PublishDecision].self)
            made.withLock { $0.append((requests, limit, promise)) }
            return promise.futureResult
        }
    }

    @Test func guardedRequestsShareOneCallPerOrganizationKindAndLimitAndGetTheirOwnDecision() throws {
        let loop = EmbeddedEventLoop()
        let coalescer = TickCoalescer()
        let groups = Groups()
        let (tight, loose) = (RateLimit(eventsPerSecond: 10), RateLimit(eventsPerSecond: 1_000))
        let requests: [(chunk: StreamChunk, limit: RateLimit)] = [
            (try chunk("a"), tight), (try chunk("a", events: 2), tight), (try chunk("b"), tight), (try chunk("a"), loose), (try chunk("a"), tight),
        ]
        var answers: [Result<PublishDecision, any Error>?] = Array(repeating: nil, count: requests.count)
        for (index, request) in requests.enumerated() {
            coalescer.add(
                guarded: GuardedAppendGroup.Request(chunk: request.chunk, bytes: 10 * (index + 1), idempotency: nil), limit: request.limit, on: loop,
                append: groups.append
            ).whenComplete { answers[index] = $0 }
        }
        #expect(groups.made.withLock { $0.isEmpty }, "nothing is sent before the tick's reads are done")
        loop.run()
        let made = groups.made.withLock { $0 }
        #expect(made.count == 3)
        let tightA = try #require(made.first { $0.requests[0].chunk.org == "a" && $0.limit == tight })
        #expect(tightA.requests.map(\.bytes) == [10, 20, 50], "in arrival order")
        for group in made {
            if group.requests[0].chunk.org == "b" {
                group.promise.fail(PublishError(reason: "OOM"))
            } else {
                let refused = PublishDecision.limited(RateRefusal(measure: "events", retryAfterMilliseconds: 100, cost: 1))
                group.promise.succeed(group.requests.indices.map { $0 == 1 ? refused : .queued })
            }
        }
        loop.run()
        #expect(try answers[0]?.get() == .queued)
        #expect(try answers[1]?.get() == .limited(RateRefusal(measure: "events", retryAfterMilliseconds: 100, cost: 1)), "its own decision")
        #expect(try answers[4]?.get() == .queued)
        #expect(try answers[3]?.get() == .queued)
        guard case .failure = answers[2] else {
            Issue.record("the failed call did not fail its request")
            return
        }
    }
}
