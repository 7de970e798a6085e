import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Decodes RESP replies with hiredis's reader, however the bytes are split across reads.
final class RedisReplyDecoder: ByteToMessageDecoder {
    typealias InboundOut = RedisReply
    private let reader = RedisReplyReader()

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        buffer.withUnsafeReadableBytes { reader.feed($0) }
        buffer.moveReaderIndex(to: buffer.writerIndex)
        while let reply = try reader.next() {
            context.fireChannelRead(NIOAny(reply))
        }
        return .needMoreData
    }

    func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}

/// One Redis connection's commands in flight: writes each as it is sent, flushes once per event-loop tick (every
/// command sent in one tick shares a `write` system call), and matches replies to commands in order. When the
/// oldest command is past its deadline (a stalled server), or the link breaks, every command in flight fails and
/// the channel is closed: replies still to come could no longer be matched.
///
/// Event-loop confined: `send` is called on the channel's loop.
final class RedisChannelHandler: ChannelInboundHandler {
    typealias InboundIn = RedisReply

    private struct Pending {
        var replies: [RedisReply]
        let count: Int
        let deadline: NIODeadline
        let promise: EventLoopPromise<[RedisReply]>
    }

    /// How often the deadline of the oldest command is checked while commands wait.
    static let deadlineCheckInterval = TimeAmount.milliseconds(50)

    private var pending = CircularBuffer<Pending>()
    private var context: ChannelHandlerContext?
    private var flushScheduled = false
    private var timer: Scheduled<Void>?
    private var failed = false
    private let onClose: (RedisChannelHandler, RedisError) -> Void
    /// The server, for messages.
    private let address: RedisAddress
    /// Whether the link is TLS.
    private let tls: Bool
    /// Whether any reply came: a server that closes a new plain link before its first reply may be a TLS port.
    private var answered = false

    /// `onClose` learns when the link is gone, and why.
    init(address: RedisAddress, tls: Bool, onClose: @escaping (RedisChannelHandler, RedisError) -> Void) {
        self.address = address
        self.tls = tls
        self.onClose = onClose
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    /// Commands waiting for their replies.
    var inFlight: Int { pending.count }

    /// Writes pre-encoded commands expecting `replies` replies; `promise` gets them, or the error that ended the link.
    func send(_ payload: [UInt8], replies: Int, deadline: NIODeadline, promise: EventLoopPromise<[RedisReply]>) {
        guard let context, !failed else {
            return promise.fail(RedisError(code: .connectionClosed, message: "Redis connection is closed"))
        }
        pending.append(Pending(replies: [], count: replies, deadline: deadline, promise: promise))
        var buffer = context.channel.allocator.buffer(capacity: payload.count)
        buffer.writeBytes(payload)
        context.write(NIOAny(buffer), promise: nil)
        if !flushScheduled {
            flushScheduled = true
            context.eventLoop.assumeIsolated().execute {
                self.flushScheduled = false
                self.context?.flush()
            }
        }
        if timer == nil { armTimer(context) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let reply = unwrapInboundIn(data)
        answered = true
        guard !pending.isEmpty else {
            return fail(RedisError(code: .protocolError, message: "Redis sent a reply nobody asked for"), context: context)
        }
        pending[pending.startIndex].replies.append(reply)
        if pending[pending.startIndex].replies.count == pending[pending.startIndex].count {
            let done = pending.removeFirst()
            done.promise.succeed(done.replies)
        }
    }

    /// Said of a plain link that a server dropped with commands waiting and no reply ever: it may be a TLS port.
    private var plainPortHint: String {
        answered || tls || pending.isEmpty ? "" : " before its first reply (a TLS port? use rediss://)"
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(RedisError(code: .connectionClosed, message: "Redis at \(address) closed the connection\(plainPortHint)"), context: context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? RedisError { return fail(error, context: context) }
        let reason: String
        if tls && !(error is IOError) {
            reason = "TLS: \(TLSFailure.reason(error, serverName: nil))"
        } else {
            reason = "connection failed\(plainPortHint): \((error as? IOError).map { String(cString: strerror($0.errnoCode)) } ?? "\(error)")"
        }
        fail(RedisError(code: .connectionClosed, message: "Redis at \(address): \(reason)"), context: context)
    }

    /// While commands wait: when the oldest is past its deadline, everything in flight fails.
    private func armTimer(_ context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: Self.deadlineCheckInterval) {
            self.timer = nil
            guard let first = self.pending.first else { return }
            if first.deadline <= .now() {
                self.fail(RedisError(code: .timeout, message: "Redis did not answer in time"), context: context)
            } else {
                self.armTimer(context)
            }
        }
    }

    /// Fails every command in flight with `error` and closes the link.
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
