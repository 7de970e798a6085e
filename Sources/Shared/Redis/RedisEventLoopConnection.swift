import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A Redis client transport whose one connection lives on a NIO event loop: commands are written from the
/// loop and replies read by it, in the same `epoll` as the HTTP connections, so a command costs no wake-up
/// of a thread of its own. Commands written in one loop tick go out in one flush (auto-pipelining).
///
/// Every command fails within the command timeout when Redis is unreachable or stalled, with a retryable
/// `RedisError`; after a failure the next command reconnects, no sooner than the backoff allows. Not for
/// blocking commands: they would hold up the pipeline.
///
/// `@unchecked Sendable`: `state` is touched only on `eventLoop`; `connected` is an atomic.
final class RedisEventLoopConnection: RedisTransport, @unchecked Sendable {
    let configuration: RedisConfiguration
    private let eventLoop: any EventLoop
    private let name: String
    private let logger: Logger
    private let connected = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)

    // On `eventLoop` only.
    private var channel: (any Channel)?
    private var handler: RedisPipelineHandler?
    private var connecting: EventLoopFuture<Void>?
    private var nextAttempt = NIODeadline.uptimeNanoseconds(0)
    private var reconnectDelay: Int
    private var reportedDown = false

    init(configuration: RedisConfiguration, eventLoop: any EventLoop, name: String, logger: Logger) {
        self.configuration = configuration
        self.eventLoop = eventLoop
        self.name = name
        self.logger = logger
        self.reconnectDelay = configuration.reconnectDelayMilliseconds
    }

    var isConnected: Bool { connected.load(ordering: .relaxed) }

    func start() {
        eventLoop.execute { _ = self.connect(deadline: NIODeadline.now() + .milliseconds(Int64(self.configuration.connectTimeoutMilliseconds))) }
    }

    func shutdown() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        eventLoop.execute {
            self.handler?.failAll(RedisError(code: .shutdown, message: "Redis client is shut down"))
            self.channel?.close(promise: nil)
            self.channel = nil
            self.handler = nil
        }
    }

    func execute(_ payload: [UInt8], replies: Int, blockingMilliseconds: Int) async throws(RedisError) -> [RedisReply] {
        let promise = eventLoop.makePromise(of: [RedisReply].self)
        enqueue(payload, replies: replies, blockingMilliseconds: blockingMilliseconds, promise: promise)
        do {
            return try await promise.futureResult.get()
        } catch let error as RedisError {
            throw error
        } catch {
            throw RedisError(code: .connectionClosed, message: "Redis connection failed: \(error)")
        }
    }

    /// Sends pre-encoded commands and completes `promise` (of this connection's loop) with their replies. From the
    /// connection's own loop this costs no hop.
    func enqueue(_ payload: [UInt8], replies: Int, blockingMilliseconds: Int, promise: EventLoopPromise<[RedisReply]>) {
        let deadline = NIODeadline.now() + .milliseconds(Int64(configuration.commandTimeoutMilliseconds + blockingMilliseconds))
        if eventLoop.inEventLoop {
            submit(payload, replies: replies, deadline: deadline, promise: promise)
        } else {
            eventLoop.execute { self.submit(payload, replies: replies, deadline: deadline, promise: promise) }
        }
    }

    // MARK: On the event loop

    private func submit(_ payload: [UInt8], replies: Int, deadline: NIODeadline, promise: EventLoopPromise<[RedisReply]>) {
        if stopped.load(ordering: .relaxed) {
            return promise.fail(RedisError(code: .shutdown, message: "Redis client is shut down"))
        }
        // A link that keeps dropping right after it is made must not retry this command past its deadline.
        guard deadline > .now() else {
            return promise.fail(RedisError(code: .timeout, message: "Redis did not answer in time"))
        }
        if let handler, let channel, channel.isActive {
            return handler.send(payload, replies: replies, deadline: deadline, promise: promise)
        }
        if connecting == nil {
            guard nextAttempt <= .now() else {
                return promise.fail(RedisError(code: .unavailable, message: "Redis is unreachable; reconnecting"))
            }
            _ = connect(deadline: min(NIODeadline.now() + .milliseconds(Int64(configuration.connectTimeoutMilliseconds)), deadline))
        }
        connecting!.whenComplete { result in
            switch result {
            case .success: self.submit(payload, replies: replies, deadline: deadline, promise: promise)
            case .failure(let error): promise.fail(error)
            }
        }
    }

    /// Connects and queues the handshake (AUTH, SELECT); completes when the link is usable.
    private func connect(deadline: NIODeadline) -> EventLoopFuture<Void> {
        if let connecting { return connecting }
        let timeout = TimeAmount.milliseconds(Int64(max(deadline.millisecondsFromNow, 1)))
        let handler = RedisPipelineHandler(onClose: { [weak self] handler, error in self?.lost(handler, error) })
        let future = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RedisReplyDecoder()))
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(host: configuration.host, port: configuration.port)
            .flatMap { channel -> EventLoopFuture<Void> in
                self.channel = channel
                self.handler = handler
                return self.handshake(handler, deadline: deadline).flatMapErrorThrowing { error in
                    channel.close(promise: nil)
                    throw error
                }
            }
            .flatMapErrorThrowing { error -> Void in
                let failure =
                    (error as? RedisError)
                    ?? RedisError(code: .connectionFailed, message: "Redis at \(self.configuration.host):\(self.configuration.port) is unreachable")
                self.channel = nil
                self.handler = nil
                self.nextAttempt = NIODeadline.now() + .milliseconds(Int64(self.reconnectDelay))
                self.reconnectDelay = min(self.reconnectDelay * 2, self.configuration.maxReconnectDelayMilliseconds)
                if !self.reportedDown {
                    self.logger.warning(
                        "redis.connect.failed",
                        metadata: ["redis.client": "\(self.name)", "redis.url": "\(self.configuration.redactedURL)", "redis.error": "\(failure.message)"])
                    self.reportedDown = true
                }
                throw failure
            }
            .map {
                self.reconnectDelay = self.configuration.reconnectDelayMilliseconds
                self.connected.store(true, ordering: .relaxed)
                if self.reportedDown {
                    self.logger.info("redis.reconnected", metadata: ["redis.client": "\(self.name)", "redis.url": "\(self.configuration.redactedURL)"])
                    self.reportedDown = false
                }
            }
        connecting = future
        future.whenComplete { _ in self.connecting = nil }
        return future
    }

    private func handshake(_ handler: RedisPipelineHandler, deadline: NIODeadline) -> EventLoopFuture<Void> {
        let replies = configuration.handshake.map { step, arguments -> EventLoopFuture<Void> in
            var payload: [UInt8] = []
            RedisCommandEncoder.append(arguments, to: &payload)
            let promise = eventLoop.makePromise(of: [RedisReply].self)
            handler.send(payload, replies: 1, deadline: deadline, promise: promise)
            return promise.futureResult.flatMapThrowing { replies in
                if case .error(let error) = replies[0] {
                    // The server's text names no secret, but keep only its code to be sure.
                    throw RedisError(code: .connectionFailed, message: "Redis \(step) failed: \(error.serverPrefix ?? "ERR")", serverPrefix: error.serverPrefix)
                }
            }
        }
        return EventLoopFuture.andAllSucceed(replies, on: eventLoop)
    }

    /// The link of `lostHandler` broke: later commands reconnect.
    private func lost(_ lostHandler: RedisPipelineHandler, _ error: RedisError) {
        guard handler === lostHandler else { return }  // an older link, already replaced
        channel = nil
        handler = nil
        connected.store(false, ordering: .relaxed)
        guard !stopped.load(ordering: .relaxed) else { return }
        logger.warning("redis.connection.lost", metadata: ["redis.client": "\(name)", "redis.error": "\(error.message)"])
        nextAttempt = .now()
        reconnectDelay = configuration.reconnectDelayMilliseconds
    }
}

/// Decodes RESP replies with hiredis.
private final class RedisReplyDecoder: ByteToMessageDecoder {
    typealias InboundOut = RedisReply
    private let reader = RedisReplyReader()

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        buffer.withUnsafeReadableBytes { reader.feed($0) }
        buffer.moveReaderIndex(to: buffer.writerIndex)
        while let reply = try reader.next() {
            context.fireChannelRead(wrapInboundOut(reply))
        }
        return .needMoreData
    }

    func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}

/// Matches replies to commands in order; flushes once per loop tick; times the oldest command out.
///
/// `@unchecked Sendable`: used only on its channel's event loop.
private final class RedisPipelineHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = RedisReply

    private struct Pending {
        var replies: [RedisReply]
        let count: Int
        let deadline: NIODeadline
        let promise: EventLoopPromise<[RedisReply]>
    }

    private var pending = CircularBuffer<Pending>()
    private var context: ChannelHandlerContext?
    private var flushScheduled = false
    private var timer: Scheduled<Void>?
    private var failed = false
    private let onClose: (RedisPipelineHandler, RedisError) -> Void

    init(onClose: @escaping (RedisPipelineHandler, RedisError) -> Void) { self.onClose = onClose }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func send(_ payload: [UInt8], replies: Int, deadline: NIODeadline, promise: EventLoopPromise<[RedisReply]>) {
        guard let context, !failed else {
            return promise.fail(RedisError(code: .connectionClosed, message: "Redis connection is closed"))
        }
        pending.append(Pending(replies: [], count: replies, deadline: deadline, promise: promise))
        var buffer = context.channel.allocator.buffer(capacity: payload.count)
        buffer.writeBytes(payload)
        context.write(wrapOutbound(buffer), promise: nil)
        if !flushScheduled {
            flushScheduled = true
            context.eventLoop.execute {
                self.flushScheduled = false
                self.context?.flush()
            }
        }
        if timer == nil { armTimer(context) }
    }

    private func wrapOutbound(_ buffer: ByteBuffer) -> NIOAny { NIOAny(buffer) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let reply = unwrapInboundIn(data)
        guard !pending.isEmpty else {
            return fail(RedisError(code: .protocolError, message: "Redis sent a reply nobody asked for"), context: context)
        }
        pending[pending.startIndex].replies.append(reply)
        if pending[pending.startIndex].replies.count == pending[pending.startIndex].count {
            let done = pending.removeFirst()
            done.promise.succeed(done.replies)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(RedisError(code: .connectionClosed, message: "Redis closed the connection"), context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail((error as? RedisError) ?? RedisError(code: .connectionClosed, message: "Redis connection failed: \(error)"), context: context)
    }

    /// Every 50 ms while commands wait: when the oldest is past its deadline, the link is dropped (the replies
    /// still to come could no longer be matched) and every waiting command fails.
    private func armTimer(_ context: ChannelHandlerContext) {
        timer = context.eventLoop.scheduleTask(in: .milliseconds(50)) {
            self.timer = nil
            guard let first = self.pending.first else { return }
            if first.deadline <= .now() {
                self.fail(RedisError(code: .timeout, message: "Redis did not answer in time"), context: context)
            } else {
                self.armTimer(context)
            }
        }
    }

    func failAll(_ error: RedisError) {
        guard let context else { return }
        fail(error, context: context)
    }

    private func fail(_ error: RedisError, context: ChannelHandlerContext) {
        guard !failed else { return }
        failed = true
        timer?.cancel()
        timer = nil
        let waiting = pending
        pending.removeAll()
        for request in waiting { request.promise.fail(error) }
        context.close(promise: nil)
        onClose(self, error)
    }
}
