import HTTPTypes
import Logging
import NIOCore
import NIOHTTPTypes

/// Serves the ingestion routes on the event loop that read the request, start to finish, with no task per
/// request: the head is checked and authenticated as it arrives, the body collected, and the events handed to the
/// Redis connection of this same loop; its reply writes the answer. Every other request is passed on to
/// Hummingbird's handlers behind this one.
///
/// Requests on one connection are answered in order (HTTP/1.1 pipelining): parts of a request that arrive while an
/// earlier one is in hand wait here, with reading paused, until its answer is written.
///
/// Event-loop confined: added to one channel's pipeline, touched only on its loop.
final class IngestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// One ingestion request, from its head to its answer.
    private final class Exchange {
        let match: IngestRoute.Match
        let request: HTTPRequest
        let started = NIODeadline.now()
        var admission: IngestService.Admission?
        var body: ByteBuffer?
        var requestEnded = false
        var answered = false
        /// The answer said `Connection: close`: the connection is closed after it, or its output is until the
        /// request has ended.
        var closing: Closing?

        enum Closing { case outputClosed, closed }

        /// The route, kept apart from `match`: read at every step, not copied out of it each time.
        let route: IngestRoute

        init(match: IngestRoute.Match, request: HTTPRequest) {
            self.match = match
            self.route = match.route
            self.request = request
        }

        /// Whether the client asked to close after this answer.
        var closeRequested: Bool {
            request.headerFields.value(of: .connection).map { $0.lowercased().contains("close") } ?? false
        }
    }

    private enum State {
        /// Between requests.
        case idle
        /// A request handed on to Hummingbird, until both it and its answer have ended.
        case forwarding(requestEnded: Bool, responseEnded: Bool)
        /// An ingestion request in hand.
        case ingesting(Exchange)
    }

    private let service: IngestService
    private let metrics: IngestMetrics
    private let logger: Logger
    private var state = State.idle
    private var context: ChannelHandlerContext?
    private var peer = "unknown"
    /// Parts of the requests after the one in hand.
    private var waiting = CircularBuffer<HTTPRequestPart>()
    private var draining = false
    /// A read was asked for while requests were waiting: it is passed on once they are taken.
    private var readHeld = false
    /// The server is shutting down: the connection closes after the answer in hand.
    private var quiescing = false

    init(service: IngestService, metrics: IngestMetrics, logger: Logger) {
        self.service = service
        self.metrics = metrics
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        peer = context.channel.remoteAddress?.ipAddress ?? "unknown"
    }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelActive(context: ChannelHandlerContext) {
        peer = context.channel.remoteAddress?.ipAddress ?? "unknown"
        context.fireChannelActive()
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if !waiting.isEmpty || currentRequestEnded {
            waiting.append(part)
            return
        }
        handle(part, context: context)
    }

    func read(context: ChannelHandlerContext) {
        if waiting.isEmpty {
            context.read()
        } else {
            readHeld = true
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, case .ingesting = state {
            quiescing = true  // closed once the answer in hand is out
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Whether the request in hand has been read to its end (so a part now belongs to the next one).
    private var currentRequestEnded: Bool {
        switch state {
        case .idle: false
        case .forwarding(let requestEnded, _): requestEnded
        case .ingesting(let exchange): exchange.requestEnded
        }
    }

    private func handle(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch (state, part) {
        case (.idle, .head(let request)):
            if let match = IngestRoute.match(request) {
                begin(Exchange(match: match, request: request), context: context)
            } else {
                state = .forwarding(requestEnded: false, responseEnded: false)
                context.fireChannelRead(wrapInboundOut(part))
            }
        case (.idle, _):
            context.fireChannelRead(wrapInboundOut(part))
        case (.forwarding(_, let responseEnded), .end):
            state = .forwarding(requestEnded: true, responseEnded: responseEnded)
            context.fireChannelRead(wrapInboundOut(part))
            if responseEnded { finished(context: context) }
        case (.forwarding, _):
            context.fireChannelRead(wrapInboundOut(part))
        case (.ingesting(let exchange), .body(var bytes)):
            guard !exchange.answered else { return }
            if exchange.body == nil {
                exchange.body = bytes
            } else {
                exchange.body!.writeBuffer(&bytes)
            }
            // Before the head is admitted the limit is the larger of the two; after, the route's own.
            let limit = exchange.admission?.limit ?? max(service.limits.maxBodyBytes, service.limits.maxBatchBodyBytes)
            if exchange.body!.readableBytes > limit {
                answer(exchange, error: .tooLarge(limit: exchange.admission?.limit ?? limit), context: context)
            }
        case (.ingesting(let exchange), .end):
            exchange.requestEnded = true
            if exchange.answered {
                finished(context: context)
            } else if exchange.admission != nil {
                accept(exchange, context: context)
            }
        case (.ingesting, .head):
            preconditionFailure("a request head before the previous request ended")
        }
    }

    // MARK: Ingestion

    /// Steps 1 and 2 as the head arrives: the organization (perhaps after a key lookup), then the head's checks.
    private func begin(_ exchange: Exchange, context: ChannelHandlerContext) {
        state = .ingesting(exchange)
        let credentials: Credentials
        switch exchange.route.format.credentials(of: exchange.request) {
        case .success(let read): credentials = read
        case .failure(let error): return answer(exchange, error: error, context: context)
        }
        switch service.authenticator.organization(of: credentials, request: exchange.request, peer: peer, on: context.eventLoop) {
        case .now(.success(let organization)):
            admit(exchange, organization: organization, context: context)
        case .now(.failure(let error)):
            answer(exchange, error: error, context: context)
        case .later(let lookup):
            lookup.assumeIsolated().whenComplete { result in
                guard !exchange.answered, let context = self.context else { return }
                switch result {
                case .success(let organization):
                    self.admit(exchange, organization: organization, context: context)
                    if exchange.admission != nil && exchange.requestEnded { self.accept(exchange, context: context) }
                case .failure(let error):
                    self.answer(exchange, error: Self.gatewayError(error), context: context)
                }
            }
        }
    }

    private func admit(_ exchange: Exchange, organization: String, context: ChannelHandlerContext) {
        switch service.admit(exchange.request, route: exchange.route, organization: organization) {
        case .success(let admission):
            exchange.admission = admission
            if let body = exchange.body, body.readableBytes > admission.limit {
                answer(exchange, error: .tooLarge(limit: admission.limit), context: context)
            }
        case .failure(let error):
            answer(exchange, error: error, context: context)
        }
    }

    /// Steps 3 and 4: the whole body is in.
    private func accept(_ exchange: Exchange, context: ChannelHandlerContext) {
        guard let admission = exchange.admission else { return }
        let body = exchange.body ?? ByteBuffer()
        exchange.body = nil
        service.accept(body, match: exchange.match, admission: admission, started: exchange.started, on: context.eventLoop).assumeIsolated().whenComplete {
            result in
            guard let context = self.context else { return }
            switch result {
            case .success(let answer):
                self.answer(exchange, status: answer.status, headers: answer.headers, body: answer.body, contentType: answer.contentType, context: context)
            case .failure(let error): self.answer(exchange, error: Self.gatewayError(error), context: context)
            }
        }
    }

    private static func gatewayError(_ error: any Error) -> GatewayError {
        (error as? GatewayError) ?? GatewayError(status: .internalServerError, message: "Internal server error", cause: "\(error)")
    }

    // MARK: Answers

    private func answer(_ exchange: Exchange, error: GatewayError, context: ChannelHandlerContext) {
        let answer = exchange.route.format.answer(error, request: exchange.request)
        self.answer(exchange, status: answer.status, headers: answer.headers, body: answer.body, contentType: answer.contentType, context: context)
        let metadata: Logger.Metadata = [
            "hb.request.id": "\(RequestIDs.next())", "http.method": "\(exchange.request.method)", "http.path": "\(exchange.request.path ?? "")",
            "http.status": "\(error.status.code)", "error": "\(error.cause.map { "\(error.message) (\($0))" } ?? error.message)",
        ]
        if error.status.code >= 500 {
            logger.error("request.failed", metadata: metadata)
        } else {
            logger.info("request.failed", metadata: metadata)
        }
    }

    private func answer(
        _ exchange: Exchange, status: HTTPResponse.Status, headers: HTTPFields = [:], body: ByteBuffer,
        contentType: String = "application/json; charset=utf-8", context: ChannelHandlerContext
    ) {
        guard !exchange.answered else { return }
        exchange.answered = true
        exchange.body = nil
        let closing = quiescing || exchange.closeRequested
        var fields = headers
        if let formatFields = exchange.route.format.answerFields { fields.append(contentsOf: formatFields) }
        fields[.contentType] = contentType
        fields[.contentLength] = String(body.readableBytes)
        fields[.date] = HTTPDate.now
        fields[.server] = "operyn-gateway"
        if closing { fields[.connection] = "close" }
        context.write(wrapOutboundOut(.head(HTTPResponse(status: status, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        if closing {
            // Only the output is closed while the request is still coming: the rest of its body is read and dropped
            // (`ConnectionGuard`), so a client that writes its whole body before reading still sees the answer.
            let mode: CloseMode = exchange.requestEnded ? .all : .output
            exchange.closing = mode == .all ? .closed : .outputClosed
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(mode: mode, promise: nil) }
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        metrics.record(exchange.route, method: exchange.request.method, status: status, nanoseconds: (NIODeadline.now() - exchange.started).nanoseconds)
        if exchange.requestEnded { finished(context: context) }
    }

    // MARK: Outbound (Hummingbird's answers)

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(data, promise: promise)
        if case .end = unwrapOutboundIn(data), case .forwarding(let requestEnded, _) = state {
            state = .forwarding(requestEnded: requestEnded, responseEnded: true)
            if requestEnded { finished(context: context) }
        }
    }

    // MARK: Between requests

    /// The request in hand and its answer are done: take the next waiting one.
    private func finished(context: ChannelHandlerContext) {
        if case .ingesting(let exchange) = state, let closing = exchange.closing {
            // Nothing more is read or answered on this connection.
            if closing == .outputClosed { context.close(promise: nil) }
            return
        }
        state = .idle
        drain(context: context)
    }

    private func drain(context: ChannelHandlerContext) {
        guard !draining else { return }
        draining = true
        defer { draining = false }
        var forwarded = false
        while !waiting.isEmpty && !currentRequestEnded {
            let part = waiting.removeFirst()
            handle(part, context: context)
            if case .forwarding = state { forwarded = true }
        }
        if forwarded { context.fireChannelReadComplete() }
        if waiting.isEmpty && readHeld {
            readHeld = false
            context.read()
        }
    }
}
