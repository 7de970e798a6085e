import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import Metrics
import NIOCore
import NIOHTTPTypes
import NIOSSL
import Synchronization

/// Hummingbird's HTTP/1.1 child channel with a `ConnectionGuard` around it, the ingestion routes served on the event
/// loop (`IngestHandler`) ahead of Hummingbird's router, and a cap on open connections: past `maxConnections` a new
/// connection is answered 503 and closed, the established ones go on being served.
struct GuardedHTTP1Channel: ServerChildChannel {
    /// A connection: Hummingbird's channel, or `nil` for one refused at the cap.
    struct Value: ServerChildChannelValue {
        let channel: any Channel
        let http: HTTP1Channel.Value?
    }

    let http: HTTP1Channel
    /// The ingestion routes, served on the event loop ahead of Hummingbird.
    let ingest: IngestService
    let ingestMetrics: IngestMetrics
    let settings: ConnectionSettings
    let counter: ConnectionCounter
    let metrics: ConnectionMetrics
    let logger: Logger

    /// A server builder for `Application(server:)`; with `tls`, every connection is TLS first (Hummingbird's
    /// `TLSChannel`), the guard and the routes inside it.
    /// `counter` counts the open connections against `OPERYN_MAX_CONNECTIONS` (shared with the gRPC listener).
    static func builder(
        ingest: IngestService, ingestMetrics: IngestMetrics, settings: ConnectionSettings, metrics: ConnectionMetrics, tls: TLSConfiguration? = nil,
        counter: ConnectionCounter = ConnectionCounter(), logger: Logger
    ) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            let channel = GuardedHTTP1Channel(
                http: HTTP1Channel(responder: responder), ingest: ingest, ingestMetrics: ingestMetrics, settings: settings, counter: counter,
                metrics: metrics, logger: logger)
            guard let tls else { return channel }
            return try TLSChannel(channel, tlsConfiguration: tls)
        }
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        if counter.isFirst(), let listener = channel.parent {
            // Hummingbird's listener accepts 4 connections per wake-up (NIO's default): a burst of 2 000 clients
            // would wait seconds for their turn to be accepted while the first ones are served. Accept in bulk.
            listener.setOption(.maxMessagesPerRead, value: 256).whenFailure { _ in }
        }
        let open = counter.opened()
        metrics.open.record(open)
        channel.closeFuture.whenComplete { _ in metrics.open.record(counter.closed()) }
        guard open <= settings.maxConnections else {
            metrics.refused.increment()
            if counter.shouldLogRefusal() {
                self.logger.warning(
                    "gateway.connections.full",
                    metadata: ["gateway.connections.max": "\(settings.maxConnections)", "hint": "OPERYN_MAX_CONNECTIONS; new connections get 503"])
            }
            return channel.eventLoop.makeCompletedFuture {
                let refusal = RefuseConnection()
                try channel.pipeline.syncOperations.addHandler(refusal)
                return Value(channel: channel, http: nil)
            }
        }
        let guardian = ConnectionGuard(settings: settings, metrics: metrics)
        let (bytes, messages) = guardian.handlers()
        do {
            try channel.pipeline.syncOperations.addHandler(bytes)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        var configuration = http.configuration
        let handlers = NIOLoopBound(
            [messages, IngestHandler(service: ingest, metrics: ingestMetrics, logger: self.logger)] as [any RemovableChannelHandler],
            eventLoop: channel.eventLoop)
        configuration.additionalChannelHandlers = { handlers.value }
        return HTTP1Channel(responder: http.responder, configuration: configuration).setup(channel: channel, logger: logger).map {
            Value(channel: channel, http: $0)
        }
    }

    func handle(value: Value, logger: Logger) async {
        if let connection = value.http {
            await http.handle(value: connection, logger: logger)
        } else {
            try? await value.channel.closeFuture.get()
        }
    }
}

/// Answers 503 to a connection over the cap as soon as it is active, then closes it.
private final class RefuseConnection: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { refuse(context) }
    }

    func channelActive(context: ChannelHandlerContext) { refuse(context) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    private func refuse(_ context: ChannelHandlerContext) {
        ConnectionGuard.writeError(503, "Too many open connections; retry later", on: context, headers: "Retry-After: 1\r\n")
        context.close(mode: .output, promise: nil)
        // The client's request, if any, is read and dropped until it closes; the keep-alive bound is not needed here.
        context.eventLoop.scheduleTask(in: .seconds(2)) { context.close(promise: nil) }
    }
}

/// Open connections over all event loops.
final class ConnectionCounter: Sendable {
    private let count = Atomic<Int>(0)
    private let lastRefusalLog = Atomic<Int64>(0)
    private let started = Atomic<Bool>(false)

    /// `true` once: for the first connection.
    func isFirst() -> Bool { !started.exchange(true, ordering: .relaxed) }

    /// Counts one more; answers how many are open now.
    func opened() -> Int { count.add(1, ordering: .relaxed).newValue }

    /// Counts one fewer; answers how many are open now.
    func closed() -> Int { count.subtract(1, ordering: .relaxed).newValue }

    /// Whether to log a refusal now: at most one line every 10 s.
    func shouldLogRefusal() -> Bool {
        let now = Int64(NIODeadline.now().uptimeNanoseconds / 1_000_000_000)
        let last = lastRefusalLog.load(ordering: .relaxed)
        return now - last >= 10 && lastRefusalLog.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged
    }
}

/// `operyn_gateway_connections` and what the connection guard did.
struct ConnectionMetrics: Sendable {
    enum Timeout: String, CaseIterable, Sendable {
        case header, body, keepAlive = "keepalive", linger
    }

    /// `operyn_gateway_connections`: connections open.
    let open: Gauge
    /// `operyn_gateway_connections_refused_total`: connections answered 503 at `OPERYN_MAX_CONNECTIONS`.
    let refused: Counter
    /// `operyn_gateway_connections_timed_out_total{phase}`: connections closed by a timeout.
    let timedOut: [Timeout: Counter]

    init(factory: any MetricsFactory) {
        open = Gauge(label: "operyn_gateway_connections", dimensions: [], factory: factory)
        refused = Counter(label: "operyn_gateway_connections_refused_total", dimensions: [], factory: factory)
        var timedOut: [Timeout: Counter] = [:]
        for timeout in Timeout.allCases {
            timedOut[timeout] = Counter(label: "operyn_gateway_connections_timed_out_total", dimensions: [("phase", timeout.rawValue)], factory: factory)
        }
        self.timedOut = timedOut
    }
}
