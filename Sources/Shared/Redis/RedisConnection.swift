import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One connection to Redis living on a NIO event loop: commands are written from the loop and replies read by it,
/// in the same `epoll` as the HTTP connections of that loop, so a command wakes no other thread. Commands written in
/// one loop tick go out in one flush (auto-pipelining). Its states and their changes are
/// `RedisConnectionStateMachine`'s; this type does the I/O they call for.
///
/// Every command fails within the command timeout (plus its blocking time) when Redis is unreachable or stalled,
/// with a retryable `RedisError`; the next command after a failure reconnects, no sooner than the backoff allows.
/// A blocking command (`XREADGROUP … BLOCK`) holds up every command behind it: give it a connection of its own.
///
/// `@unchecked Sendable`: everything that changes is touched only on `eventLoop` (`enqueue` and `shutdown` hop to
/// it), except `connected`, an atomic.
final class RedisConnection: @unchecked Sendable {
    /// A command waiting for the connection to be ready.
    private struct Held {
        let payload: [UInt8]
        let replies: Int
        let deadline: NIODeadline
        let promise: EventLoopPromise<[RedisReply]>
    }

    let configuration: RedisConfiguration
    let eventLoop: any EventLoop
    private let name: String
    private let logger: Logger
    private let connected = Atomic<Bool>(false)

    // On `eventLoop` only.
    private var machine: RedisConnectionStateMachine
    private var channel: (any Channel)?
    private var handler: RedisChannelHandler?
    private var held = CircularBuffer<Held>()
    /// Checks the held commands' deadlines while there are any.
    private var heldTimer: Scheduled<Void>?
    /// Which connection attempt is current: a late answer to an abandoned one is closed unused.
    private var attempt = 0
    /// Whether the current attempt has its TCP connection and waits for the TLS handshake.
    private var handshaking = false

    init(configuration: RedisConfiguration, eventLoop: any EventLoop, name: String, logger: Logger) {
        self.configuration = configuration
        self.eventLoop = eventLoop
        self.name = name
        self.logger = logger
        machine = RedisConnectionStateMachine(
            reconnectDelayMilliseconds: configuration.reconnectDelayMilliseconds,
            maxReconnectDelayMilliseconds: configuration.maxReconnectDelayMilliseconds)
    }

    /// Whether the connection is ready right now.
    var isConnected: Bool { connected.load(ordering: .relaxed) }

    /// Connects ahead of the first command (its failure is only logged).
    func start() {
        eventLoop.execute {
            guard case .connectAndHold = self.machine.command(now: .now()) else { return }
            self.connect(deadline: .now() + .milliseconds(Int64(self.configuration.connectTimeoutMilliseconds)))
        }
    }

    /// Fails every command in flight or held, closes the link, and fails every later command with `shutdown`.
    func shutdown() {
        eventLoop.execute {
            guard self.machine.shutdown() else { return }
            let error = RedisError(code: .shutdown, message: "Redis client is shut down")
            self.failHeld(error)
            self.handler?.failAll(error)
            self.channel?.close(promise: nil)
            self.channel = nil
            self.handler = nil
            self.connected.store(false, ordering: .relaxed)
        }
    }

    /// Sends pre-encoded commands and completes `promise` (of this connection's loop) with their replies. From the
    /// connection's own loop this costs no hop.
    func enqueue(_ payload: [UInt8], replies: Int, blockingMilliseconds: Int, promise: EventLoopPromise<[RedisReply]>) {
        enqueue(
            payload, replies: replies, deadline: .now() + .milliseconds(Int64(configuration.commandTimeoutMilliseconds + blockingMilliseconds)),
            promise: promise)
    }

    /// Sends pre-encoded commands that must be answered by `deadline`.
    func enqueue(_ payload: [UInt8], replies: Int, deadline: NIODeadline, promise: EventLoopPromise<[RedisReply]>) {
        let command = Held(payload: payload, replies: replies, deadline: deadline, promise: promise)
        if eventLoop.inEventLoop {
            submit(command)
        } else {
            eventLoop.execute { self.submit(command) }
        }
    }

    // MARK: On the event loop

    private func submit(_ command: Held) {
        switch machine.command(now: .now()) {
        case .write:
            handler!.send(command.payload, replies: command.replies, deadline: command.deadline, promise: command.promise)
        case .hold:
            hold(command)
        case .connectAndHold:
            hold(command)
            connect(deadline: min(.now() + .milliseconds(Int64(configuration.connectTimeoutMilliseconds)), command.deadline))
        case .fail(let error):
            command.promise.fail(error)
        }
    }

    /// Holds `command` until the connection is ready; it fails with `timeout` at its deadline if it is not by then,
    /// whatever the connection attempt does.
    private func hold(_ command: Held) {
        held.append(command)
        guard heldTimer == nil else { return }
        heldTimer = eventLoop.assumeIsolated().scheduleTask(in: RedisChannelHandler.deadlineCheckInterval) {
            self.heldTimer = nil
            let now = NIODeadline.now()
            var waiting = CircularBuffer<Held>()
            while let command = self.held.popFirst() {
                if command.deadline <= now {
                    command.promise.fail(RedisError(code: .timeout, message: "Redis did not answer in time"))
                } else {
                    waiting.append(command)
                }
            }
            for command in waiting { self.hold(command) }
        }
    }

    /// Connects, then sends the handshake (AUTH, SELECT) when there is one; the held commands go out once ready.
    /// An attempt not finished by `deadline` counts as failed, and its connection, if it comes later, is closed.
    private func connect(deadline: NIODeadline) {
        attempt += 1
        handshaking = false
        let thisAttempt = attempt
        eventLoop.assumeIsolated().scheduleTask(deadline: deadline + .milliseconds(100)) {
            guard self.attempt == thisAttempt, self.machine.state == .connecting || self.machine.state == .handshaking else { return }
            self.attempt += 1  // abandon it
            if let channel = self.channel { channel.close(promise: nil) }
            self.channel = nil
            self.handler = nil
            let what = self.configuration.tls != nil && self.handshaking ? "the TLS handshake in time (a plain port, not TLS?)" : "in time"
            self.attemptFailed(RedisError(code: .connectionFailed, message: "Redis at \(self.address) did not answer \(what)"))
        }
        let handler = RedisChannelHandler(
            address: address, tls: configuration.tls != nil, onClose: { [weak self] handler, error in self?.lost(handler, error) })
        let boundHandler = NIOLoopBound(handler, eventLoop: eventLoop)  // the channel is made on this same loop
        let tls = configuration.tls
        let handshake = tls.map { _ in eventLoop.makePromise(of: Void.self) }
        let host = configuration.host
        ClientBootstrap(group: eventLoop)
            .connectTimeout(.milliseconds(Int64(max(deadline.millisecondsFromNow, 1))))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls, let handshake {
                        try channel.pipeline.syncOperations.addHandler(try tls.makeHandler(host: host))
                        try channel.pipeline.syncOperations.addHandler(TLSHandshakeWaiter(done: handshake))
                    }
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RedisReplyDecoder()))
                    try channel.pipeline.syncOperations.addHandler(boundHandler.value)
                }
            }
            .connect(host: configuration.host, port: configuration.port)
            .flatMapError { error in
                self.eventLoop.makeFailedFuture(
                    RedisError(code: .connectionFailed, message: "Redis at \(self.address) is unreachable: \(Self.reason(error))"))
            }
            .flatMap { channel in
                // Over TLS, ready once the handshake is done; its failure is named (wrong CA, expired, name, ...).
                guard let tls, let handshake else { return channel.eventLoop.makeSucceededFuture(channel) }
                self.eventLoop.execute { if self.attempt == thisAttempt { self.handshaking = true } }
                return handshake.futureResult.map { channel }.flatMapError { error in
                    channel.close(promise: nil)
                    let reason = TLSFailure.reason(error, serverName: tls.serverName(for: host))
                    guard TLSFailure.isVerificationFailure(error) else {
                        return channel.eventLoop.makeFailedFuture(self.tlsError(reason))
                    }
                    return TLSFailure.diagnose(
                        host: host, port: self.configuration.port, context: tls.context, serverName: tls.serverName(for: host),
                        eventLoop: channel.eventLoop, timeout: .milliseconds(Int64(max(deadline.millisecondsFromNow, 1))), fallback: reason
                    ).flatMapThrowing { throw self.tlsError($0) }
                }
            }
            .hop(to: eventLoop)
            .assumeIsolated()
            .whenComplete { result in
                guard self.attempt == thisAttempt else {
                    if case .success(let late) = result { late.close(promise: nil) }  // abandoned at its deadline
                    return
                }
                switch result {
                case .success(let channel):
                    self.connected(channel, handler, deadline: deadline)
                case .failure(let error):
                    self.attemptFailed(
                        (error as? RedisError) ?? RedisError(code: .connectionFailed, message: "Redis at \(self.address) is unreachable: \(error)"))
                }
            }
    }

    /// `host:port` of the server, for messages.
    private var address: RedisAddress { RedisAddress(host: configuration.host, port: configuration.port) }

    private func tlsError(_ reason: String) -> RedisError {
        RedisError(code: .connectionFailed, message: "Redis at \(address): TLS: \(reason)")
    }

    /// Why a TCP connection could not be made, in words (`Connection refused`, a name that does not resolve).
    private static func reason(_ error: any Error) -> String {
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)) }
        if let connect = error as? NIOConnectionError {
            if let first = connect.connectionErrors.first { return reason(first.error) }
            return connect.dnsAAAAError == nil && connect.dnsAError == nil ? "no address to connect to" : "its name does not resolve"
        }
        if error is ChannelError, case .connectTimeout = error as! ChannelError { return "no answer to the connection in time" }
        return "\(error)"
    }

    private func connected(_ channel: any Channel, _ handler: RedisChannelHandler, deadline: NIODeadline) {
        let steps = configuration.handshake
        switch machine.connected(needsHandshake: !steps.isEmpty) {
        case .close:
            channel.close(promise: nil)
            return
        case .writeHeld(let reconnected):
            self.channel = channel
            self.handler = handler
            ready(reconnected: reconnected)
        case .handshake:
            self.channel = channel
            self.handler = handler
            let replies = steps.map { step, arguments -> EventLoopFuture<Void> in
                var payload: [UInt8] = []
                RedisCommandEncoder.append(arguments, to: &payload)
                let promise = eventLoop.makePromise(of: [RedisReply].self)
                handler.send(payload, replies: 1, deadline: deadline, promise: promise)
                return promise.futureResult.flatMapThrowing { replies in
                    if case .error(let error) = replies[0] {
                        // The server's text names no secret, but keep only its code to be sure.
                        throw Self.handshakeError(step: step, error, address: self.address, username: self.configuration.username)
                    }
                }
            }
            let thisAttempt = attempt
            EventLoopFuture.andAllSucceed(replies, on: eventLoop).assumeIsolated().whenComplete { result in
                guard self.attempt == thisAttempt else { return }  // abandoned at its deadline
                switch result {
                case .success:
                    if case .writeHeld(let reconnected) = self.machine.handshakeSucceeded() { self.ready(reconnected: reconnected) }
                case .failure(let error):
                    channel.close(promise: nil)
                    self.channel = nil
                    self.handler = nil
                    self.attemptFailed((error as? RedisError) ?? RedisError(code: .connectionFailed, message: "Redis handshake failed"))
                }
            }
        }
    }

    /// The error of a refused handshake step: `AUTH` refused is an authentication failure, named as one.
    static func handshakeError(step: String, _ error: RedisError, address: RedisAddress, username: String?) -> RedisError {
        let code = error.serverPrefix ?? "ERR"
        guard step == "AUTH" else {
            return RedisError(code: .connectionFailed, message: "Redis at \(address): \(step) failed: \(code)", serverPrefix: error.serverPrefix)
        }
        let user = username.map { "user '\($0)'" } ?? "the default user"
        return RedisError(
            code: .connectionFailed,
            message: "Redis at \(address): authentication failed for \(user) (\(code): wrong password, or no such ACL user)",
            serverPrefix: error.serverPrefix)
    }

    private func ready(reconnected: Bool) {
        connected.store(true, ordering: .relaxed)
        if reconnected {
            logger.info("redis.reconnected", metadata: ["redis.client": "\(name)", "redis.url": "\(configuration.redactedURL)"])
        }
        let now = NIODeadline.now()
        while let command = held.popFirst() {
            if command.deadline <= now {
                command.promise.fail(RedisError(code: .timeout, message: "Redis did not answer in time"))
            } else {
                handler!.send(command.payload, replies: command.replies, deadline: command.deadline, promise: command.promise)
            }
        }
    }

    private func attemptFailed(_ error: RedisError) {
        guard case .failHeld(let failure, let firstFailure) = machine.attemptFailed(error, now: .now()) else { return }
        if firstFailure {
            logger.warning(
                "redis.connect.failed", metadata: ["redis.client": "\(name)", "redis.url": "\(configuration.redactedURL)", "redis.error": "\(error.message)"])
        }
        failHeld(failure)
    }

    private func failHeld(_ error: RedisError) {
        while let command = held.popFirst() { command.promise.fail(error) }
    }

    /// The link of `lostHandler` broke: the next command reconnects.
    private func lost(_ lostHandler: RedisChannelHandler, _ error: RedisError) {
        guard handler === lostHandler else { return }  // an older link, or a handshake that failed (handled there)
        channel = nil
        handler = nil
        connected.store(false, ordering: .relaxed)
        if machine.linkLost() {
            logger.warning("redis.connection.lost", metadata: ["redis.client": "\(name)", "redis.error": "\(error.message)"])
        }
    }
}
