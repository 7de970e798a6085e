import NIOCore
import Testing

@testable import Shared

/// The cluster's request logic without a server: redirects, retries, the map, deadlines.
@Suite("Redis Cluster: a request's states (no server)")
struct RedisClusterRequestTests {
    let now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let node = RedisAddress(host: "10.0.0.7", port: 7001)

    func machine(transaction: Bool = false, seconds: Int64 = 2) -> RedisClusterRequestStateMachine {
        RedisClusterRequestStateMachine(transaction: transaction, deadline: now + .seconds(seconds))
    }

    func error(_ text: String) -> RedisReply { .error(RedisError(serverReply: text)) }

    @Test func aReplyIsTheAnswerAndAnErrorReplyToo() {
        var request = machine()
        #expect(request.start() == .sendBySlot)
        #expect(request.replied([.status("OK")], now: now).action == .answer([.status("OK")]))
        let wrongType = [error("WRONGTYPE Operation against a key holding the wrong kind of value")]
        #expect(request.replied(wrongType, now: now).action == .answer(wrongType), "the caller's own error, not the cluster's")
    }

    @Test func movedIsFollowedAndLearnedAskOnlyFollowedAfterAsking() {
        var request = machine()
        let moved = request.replied([error("MOVED 3999 10.0.0.7:7001")], now: now)
        #expect(moved.action == .send(to: node, asking: false))
        #expect(moved.learn?.slot == 3999 && moved.learn?.address == node, "the slot lives there from now on")
        let ask = request.replied([error("ASK 3999 10.0.0.7:7001")], now: now)
        #expect(ask.action == .send(to: node, asking: true))
        #expect(ask.learn == nil, "a migration in progress: this once")
        #expect(request.tries == 2)
    }

    @Test func redirectsEndAfterTheLimitWithTheRedirectAsTheAnswer() {
        var request = machine()
        let moved = [error("MOVED 1 10.0.0.7:7001")]
        for _ in 0..<RedisClusterRequestStateMachine.maxRedirects { #expect(request.replied(moved, now: now).action == .send(to: node, asking: false)) }
        #expect(request.replied(moved, now: now).action == .answer(moved))
    }

    @Test func aTransactionsRedirectIsInAQueuedCommandsReply() {
        var request = machine(transaction: true)
        // MULTI, a queued command redirected, EXEC aborted.
        let replies: [RedisReply] = [.status("OK"), error("MOVED 12 10.0.0.7:7001"), error("EXECABORT Transaction discarded because of previous errors.")]
        #expect(request.replied(replies, now: now).action == .send(to: node, asking: false))
        var plain = machine()
        #expect(plain.replied(replies, now: now).action == .answer(replies), "outside a transaction only the first reply is the command's")
    }

    @Test func passingClusterStatesAreRetriedWithABackoffUntilTheDeadline() {
        var request = machine(seconds: 1)
        let busy = [error("TRYAGAIN Multiple keys request during rehashing of slot")]
        #expect(request.replied(busy, now: now).action == .retry(after: .milliseconds(20)))
        #expect(request.replied(busy, now: now).action == .retry(after: .milliseconds(40)))
        for _ in 0..<3 { _ = request.replied(busy, now: now) }
        #expect(request.replied(busy, now: now).action == .retry(after: .milliseconds(200)), "the backoff stops growing at 200 ms")
        #expect(request.replied(busy, now: now + .milliseconds(900)).action == .answer(busy), "no time left: the error reply is the answer")
        for state in ["CLUSTERDOWN The cluster is down", "LOADING Redis is loading", "MASTERDOWN Link with MASTER is down"] {
            var other = machine()
            #expect(other.replied([error(state)], now: now).action == .retry(after: .milliseconds(20)), "\(state)")
        }
    }

    @Test func aRequestNeverWrittenIsRetriedOneWrittenIsNot() {
        var request = machine()
        let unreachable = RedisError(code: .connectionFailed, message: "Redis at 10.0.0.7:7001 is unreachable: Connection refused")
        #expect(request.failed(unreachable, now: now) == .retry(after: .milliseconds(20)), "a failover may be moving its slots")
        #expect(request.failed(unreachable, now: now + .seconds(2)) == .fail(unreachable), "past the deadline: the last error")
        var written = machine()
        let lost = RedisError(code: .connectionClosed, message: "Redis at 10.0.0.7:7001 closed the connection")
        #expect(written.failed(lost, now: now) == .fail(lost), "it may have run: never sent twice")
        let timeout = RedisError(code: .timeout, message: "Redis did not answer in time")
        #expect(written.failed(timeout, now: now) == .fail(timeout))
    }

    @Test func noMasterLoadsTheMapThenRetries() {
        var request = machine()
        #expect(request.noMaster() == .refreshMap)
        #expect(request.mapRefreshed(now: now, slot: 42) == .retry(after: .milliseconds(20)))
        guard case .fail(let error) = request.mapRefreshed(now: now + .seconds(3), slot: 42) else {
            Issue.record("no failure past the deadline")
            return
        }
        #expect(error.code == .unavailable && error.message.contains("slot 42"))
    }

    @Test func triesAreBoundedWhateverTheDeadline() {
        var request = machine(seconds: 3_600)
        var retries = 0
        while case .retry = request.replied([error("CLUSTERDOWN The cluster is down")], now: now).action { retries += 1 }
        #expect(retries == RedisClusterRequestStateMachine.maxTries)
    }
}
