import Foundation
import NIOCore
import NIOEmbedded
import Testing

@testable import Shared

/// The connection's states and its channel handler, without a Redis server.
@Suite("Redis connection: states and replies (no server)")
struct RedisConnectionStateTests {
    func machine() -> RedisConnectionStateMachine {
        RedisConnectionStateMachine(reconnectDelayMilliseconds: 100, maxReconnectDelayMilliseconds: 350)
    }

    @Test func connectsOnTheFirstCommandAndHoldsOthersUntilReady() {
        var machine = machine()
        let now = NIODeadline.now()
        #expect(machine.command(now: now) == .connectAndHold)
        #expect(machine.state == .connecting)
        #expect(machine.command(now: now) == .hold)
        #expect(machine.connected(needsHandshake: true) == .handshake)
        #expect(machine.command(now: now) == .hold)
        #expect(machine.handshakeSucceeded() == .writeHeld(reconnected: false))
        #expect(machine.state == .ready && machine.command(now: now) == .write)
    }

    @Test func failedAttemptsBackOffDoublingToTheMaximumAndFailFast() {
        var machine = machine()
        var now = NIODeadline.now()
        _ = machine.command(now: now)
        let refused = RedisError(code: .connectionFailed, message: "refused")
        #expect(machine.attemptFailed(refused, now: now) == .failHeld(refused, firstFailure: true))
        #expect(machine.state == .backingOff(until: now + .milliseconds(100)))
        // During the backoff a command fails at once: a fast 503, not a wait.
        guard case .fail(let error) = machine.command(now: now + .milliseconds(50)) else { Issue.record("not failed"); return }
        #expect(error.code == .unavailable && error.isRetryable)
        // After it, the next command tries again; each failure doubles the delay, up to the maximum, logged once.
        for expected in [200, 350, 350] {
            now = now + .milliseconds(1_000)
            #expect(machine.command(now: now) == .connectAndHold)
            #expect(machine.attemptFailed(refused, now: now) == .failHeld(refused, firstFailure: false))
            #expect(machine.state == .backingOff(until: now + .milliseconds(Int64(expected))))
        }
        // A handshake that fails is a failed attempt too; success ends the outage (logged) and resets the delay.
        now = now + .milliseconds(1_000)
        _ = machine.command(now: now)
        #expect(machine.connected(needsHandshake: true) == .handshake)
        #expect(machine.handshakeSucceeded() == .writeHeld(reconnected: true))
        #expect(machine.delayMilliseconds == 100)
    }

    @Test func aLostLinkReconnectsAtTheNextCommand() {
        var machine = machine()
        let now = NIODeadline.now()
        _ = machine.command(now: now)
        #expect(machine.connected(needsHandshake: false) == .writeHeld(reconnected: false))
        let logged = machine.linkLost()
        #expect(logged)
        #expect(machine.state == .disconnected)
        #expect(machine.command(now: now) == .connectAndHold)
        let loggedAgain = machine.linkLost()
        #expect(!loggedAgain)  // not ready: an attempt's failure is reported by attemptFailed
    }

    @Test func shutdownIsFinal() {
        var machine = machine()
        let now = NIODeadline.now()
        _ = machine.command(now: now)
        let first = machine.shutdown()
        let second = machine.shutdown()
        #expect(first && !second)
        // A connection made after the shutdown is closed; commands fail with `shutdown`.
        #expect(machine.connected(needsHandshake: false) == .close)
        guard case .fail(let error) = machine.command(now: now) else { Issue.record("not failed"); return }
        #expect(error.code == .shutdown)
        guard case .failHeld(let held, _) = machine.attemptFailed(RedisError(code: .connectionFailed, message: "x"), now: now) else { return }
        #expect(held.code == .shutdown && machine.state == .closed)
    }

    // MARK: The channel handler

    final class Lost: @unchecked Sendable {
        var errors: [RedisError] = []
    }

    func channel() throws -> (EmbeddedChannel, RedisChannelHandler, Lost) {
        let lost = Lost()
        let handler = RedisChannelHandler(address: RedisAddress(host: "127.0.0.1", port: 6379), tls: false) { _, error in lost.errors.append(error) }
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RedisReplyDecoder()))
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 6379)).wait()
        return (channel, handler, lost)
    }

    func send(_ handler: RedisChannelHandler, on channel: EmbeddedChannel, replies: Int = 1, timeout: Int64 = 5_000) -> EventLoopFuture<[RedisReply]> {
        let promise = channel.eventLoop.makePromise(of: [RedisReply].self)
        handler.send(Array("*1\r\n$4\r\nPING\r\n".utf8), replies: replies, deadline: .now() + .milliseconds(timeout), promise: promise)
        return promise.futureResult
    }

    @Test func commandsOfOneTickShareAFlushAndRepliesSplitAcrossReadsMatchInOrder() throws {
        let (channel, handler, _) = try channel()
        let first = send(handler, on: channel)
        let transaction = send(handler, on: channel, replies: 3)
        let third = send(handler, on: channel)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)  // not flushed yet
        channel.embeddedEventLoop.run()
        var written = 0
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { written += buffer.readableBytes }
        #expect(written == 3 * 14)
        for piece in ["+PO", "NG\r\n+OK\r", "\n+QUEUED\r\n*1\r\n$", "2\r\nab", "\r\n:7\r", "\n"] {
            try channel.writeInbound(ByteBuffer(string: piece))
        }
        #expect(try first.wait() == [.status("PONG")])
        let replies = try transaction.wait()
        #expect(replies.count == 3 && replies[2].array?.first?.string == "ab")
        #expect(try third.wait() == [.integer(7)])
        #expect(handler.inFlight == 0)
    }

    @Test func aStallFailsEveryCommandInFlightWithinTheDeadline() throws {
        let (channel, handler, lost) = try channel()
        let stalled = send(handler, on: channel, timeout: 20)
        let behind = send(handler, on: channel)
        usleep(30_000)  // past the first command's deadline on the real clock the handler reads
        channel.embeddedEventLoop.advanceTime(by: RedisChannelHandler.deadlineCheckInterval)
        #expect(throws: RedisError.self) { try stalled.wait() }
        do {
            _ = try behind.wait()
            Issue.record("a command behind a stall succeeded")
        } catch let error as RedisError {
            #expect(error.code == .timeout && error.isRetryable)
        }
        #expect(lost.errors.map(\.code) == [.timeout])
        #expect(!channel.isActive)
    }

    @Test func aCloseMidPipelineFailsWhatIsInFlight() throws {
        let (channel, handler, lost) = try channel()
        let answered = send(handler, on: channel)
        let cut = send(handler, on: channel)
        try channel.writeInbound(ByteBuffer(string: "+PONG\r\n"))
        #expect(try answered.wait() == [.status("PONG")])
        channel.pipeline.fireChannelInactive()
        do {
            _ = try cut.wait()
            Issue.record("a command cut off succeeded")
        } catch let error as RedisError {
            #expect(error.code == .connectionClosed)
        }
        #expect(lost.errors.map(\.code) == [.connectionClosed])
        // Later commands on the dead handler fail at once.
        #expect(throws: RedisError.self) { try send(handler, on: channel).wait() }
    }

    @Test func aReplyNobodyAskedForOrBytesThatAreNotRESPCloseTheLink() throws {
        let (channel, _, lost) = try channel()
        try channel.writeInbound(ByteBuffer(string: "+SURPRISE\r\n"))
        #expect(lost.errors.map(\.code) == [.protocolError])
        #expect(!channel.isActive)

        let (garbled, handler, lostGarbled) = try self.channel()
        let command = send(handler, on: garbled)
        _ = try? garbled.writeInbound(ByteBuffer(string: "?not resp\r\n"))
        #expect(throws: RedisError.self) { try command.wait() }
        #expect(lostGarbled.errors.map(\.code) == [.protocolError])
    }
}
