import HTTPTypes
import Metrics
import NIOCore
import NIOHTTPTypes
import Shared

/// One connection's deadlines and its lingering close, fed by two handlers: `Bytes` at the head of the pipeline
/// (every read and read request, before HTTP decoding) and `Messages` after decoding (request heads and ends,
/// response ends).
///
/// - Waiting for a request: a new connection, or bytes of a following one, must deliver a whole head within the
///   header timeout; an idle keep-alive connection closes after the keep-alive timeout.
/// - Reading a body: while the server wants bytes, the client must send some within the body timeout, or gets 408.
/// - Answered before the body was read (413, 415, 401…): the rest of the body is read and dropped, within the
///   linger bounds, so a client that writes its whole body before reading still sees the answer.
///
/// Event-loop confined: both handlers and the timer run on the channel's loop.
final class ConnectionGuard {
    enum Phase: Equatable {
        /// Before a request head: `following` after a first request, `started` once its first bytes came.
        case awaitingHead(following: Bool, started: Bool)
        /// Between a head and its end.
        case readingBody
        /// The request is in; the answer is on its way.
        case responding
        /// Answered before the request ended: dropping the rest of its body.
        case lingering
    }

    let settings: ConnectionSettings
    let metrics: ConnectionMetrics
    private(set) var phase = Phase.awaitingHead(following: false, started: false)
    private var context: ChannelHandlerContext?
    /// When the current wait ends, and why; `nil` while nothing is timed (the server is working on a request).
    private var deadline: (at: NIODeadline, reason: ConnectionMetrics.Timeout)?
    /// The one timer of the connection. It fires at most `tick` after it was scheduled, never later than any
    /// deadline set since, and reschedules itself: so setting a deadline, once or twice per request, schedules
    /// nothing.
    private var timer: Scheduled<Void>?
    private let tick: TimeAmount
    private var lingered = 0

    init(settings: ConnectionSettings, metrics: ConnectionMetrics) {
        self.settings = settings
        self.metrics = metrics
        let shortest = min(
            settings.headerTimeoutMilliseconds, settings.bodyTimeoutMilliseconds, settings.keepAliveTimeoutMilliseconds,
            max(settings.lingerMilliseconds, 1))
        tick = .milliseconds(Int64(shortest))
    }

    /// The two handlers to add: `bytes` first in the pipeline, `messages` after the HTTP codec.
    func handlers() -> (bytes: Bytes, messages: Messages) { (Bytes(self), Messages(self)) }

    // MARK: Events

    fileprivate func started(_ context: ChannelHandlerContext) {
        self.context = context
        arm(settings.headerTimeoutMilliseconds, reason: .header)
    }

    fileprivate func bytesArrived(_ count: Int) {
        switch phase {
        case .awaitingHead(let following, started: false):
            phase = .awaitingHead(following: following, started: true)
            if following { arm(settings.headerTimeoutMilliseconds, reason: .header) }  // the keep-alive wait is over
        case .readingBody:
            disarm()  // re-armed at the next read request
        case .lingering:
            lingered += count
            if lingered > settings.lingerBytes { close() }
        case .awaitingHead, .responding:
            break
        }
    }

    fileprivate func readRequested() {
        if phase == .readingBody && deadline == nil { arm(settings.bodyTimeoutMilliseconds, reason: .body) }
    }

    fileprivate func requestHead() {
        disarm()
        phase = .readingBody
    }

    fileprivate func requestEnd() {
        disarm()
        if phase == .lingering {
            awaitNextRequest()  // the early answer is out and the body is drained: the connection goes on
        } else {
            phase = .responding
        }
    }

    fileprivate func responseEnd() {
        switch phase {
        case .readingBody:
            // Answered before the request was read to its end.
            phase = .lingering
            lingered = 0
            arm(settings.lingerMilliseconds, reason: .linger)
            context?.read()
        default:
            awaitNextRequest()
        }
    }

    fileprivate func stopped() {
        disarm()
        timer?.cancel()
        timer = nil
        context = nil
    }

    var isLingering: Bool { phase == .lingering }

    /// Whether some bytes of a request head have come (a timeout then answers 408 rather than just closing).
    private var hasPartialHead: Bool {
        if case .awaitingHead(_, started: true) = phase { return true }
        return false
    }

    // MARK: Timer

    private func awaitNextRequest() {
        phase = .awaitingHead(following: true, started: false)
        arm(settings.keepAliveTimeoutMilliseconds, reason: .keepAlive)
    }

    private func arm(_ milliseconds: Int, reason: ConnectionMetrics.Timeout) {
        deadline = (.now() + .milliseconds(Int64(milliseconds)), reason)
        if timer == nil, let context { schedule(in: tick, on: context.eventLoop) }
    }

    private func disarm() { deadline = nil }

    private func schedule(in delay: TimeAmount, on eventLoop: any EventLoop) {
        timer = eventLoop.scheduleTask(in: delay) { [self] in
            timer = nil
            guard let deadline, let context else { return }
            let now = NIODeadline.now()
            if now >= deadline.at {
                expired(deadline.reason)
            } else {
                schedule(in: min(tick, deadline.at - now), on: context.eventLoop)
            }
        }
    }

    private func expired(_ reason: ConnectionMetrics.Timeout) {
        guard let context else { return }
        deadline = nil
        metrics.timedOut[reason]?.increment()
        switch reason {
        case .header where hasPartialHead:
            Self.writeError(408, "Request header timed out: the whole request head must arrive within \(settings.headerTimeoutMilliseconds) ms", on: context)
        case .body:
            Self.writeError(408, "Request body timed out: no data for \(settings.bodyTimeoutMilliseconds) ms", on: context)
        default:
            break
        }
        close()
    }

    private func close() {
        disarm()
        context?.close(promise: nil)
    }

    /// Writes a whole HTTP/1.1 answer in the spec's error shape as bytes, past the HTTP encoder, and flushes it.
    static func writeError(_ status: Int, _ message: String, on context: ChannelHandlerContext, headers: String = "") {
        var json = Array(#"{"statusCode":\#(status),"message":"#.utf8)
        JSONValue.encodeString(message, into: &json)
        json.append(UInt8(ascii: "}"))
        let body = String(decoding: json, as: UTF8.self)
        let reason = HTTPResponse.Status(code: status).reasonPhrase
        let text =
            "HTTP/1.1 \(status) \(reason)\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\n"
            + "Connection: close\r\n\(headers)\r\n\(body)"
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: text)), promise: nil)
    }

    // MARK: Handlers

    /// At the head of the pipeline: sees every read (bytes) and every read request.
    final class Bytes: ChannelDuplexHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        typealias OutboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        private let owner: ConnectionGuard

        fileprivate init(_ owner: ConnectionGuard) { self.owner = owner }

        func handlerAdded(context: ChannelHandlerContext) {
            if context.channel.isActive { owner.started(context) }
        }

        func channelActive(context: ChannelHandlerContext) {
            owner.started(context)
            context.fireChannelActive()
        }

        func channelInactive(context: ChannelHandlerContext) {
            owner.stopped()
            context.fireChannelInactive()
        }

        func handlerRemoved(context: ChannelHandlerContext) { owner.stopped() }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            owner.bytesArrived(unwrapInboundIn(data).readableBytes)
            context.fireChannelRead(data)
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            context.fireChannelReadComplete()
            // Lingering reads on even when nobody downstream asks for more: the client must be able to finish.
            if owner.isLingering { context.read() }
        }

        func read(context: ChannelHandlerContext) {
            owner.readRequested()
            context.read()
        }
    }

    /// After the HTTP codec: sees request heads and ends, response ends; drops the body of a request already answered.
    final class Messages: ChannelDuplexHandler, RemovableChannelHandler {
        typealias InboundIn = HTTPRequestPart
        typealias InboundOut = HTTPRequestPart
        typealias OutboundIn = HTTPResponsePart
        typealias OutboundOut = HTTPResponsePart

        private let owner: ConnectionGuard

        fileprivate init(_ owner: ConnectionGuard) { self.owner = owner }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head:
                owner.requestHead()
            case .body:
                if owner.isLingering { return }  // dropped: the request has its answer
            case .end:
                owner.requestEnd()
            }
            context.fireChannelRead(data)
        }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            if case .end = unwrapOutboundIn(data) { owner.responseEnd() }
            context.write(data, promise: promise)
        }
    }
}
