import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Shared

/// The gRPC listener (`OPERYN_GRPC_PORT`): HTTP/2 on the gateway's event loops, cleartext, or TLS with the HTTP
/// listener's certificate. Its limits are the HTTP listener's: a message at most the batch body limit (past it
/// `RESOURCE_EXHAUSTED`; past twice the limit the stream is reset unread), a connection idle for the keep-alive timeout closed, at most
/// `OPERYN_GRPC_MAX_CONCURRENT_STREAMS` streams open per connection, client pings no more often than once a minute
/// without calls, and its connections counted with the HTTP listener's against `OPERYN_MAX_CONNECTIONS` (past it a new
/// connection is closed at once); `gzip` and `deflate` messages taken.
struct GRPCListener: Service {
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let logger: Logger

    init(
        host: String, port: Int, tls: (certificate: String, key: String)?, maxMessageBytes: Int, idleTimeoutMilliseconds: Int, maxConcurrentStreams: Int,
        services: [any RegistrableRPCService], connections: ConnectionCounter, maxConnections: Int, connectionMetrics: ConnectionMetrics, logger: Logger
    ) {
        let security: HTTP2ServerTransport.Posix.TransportSecurity =
            if let tls {
                .tls(certificateChain: [.file(path: tls.certificate, format: .pem)], privateKey: .file(path: tls.key, format: .pem))
            } else {
                .plaintext
            }
        let transport = HTTP2ServerTransport.Posix(
            address: host.contains(":") ? .ipv6(host: host, port: port) : .ipv4(host: host == "localhost" ? "127.0.0.1" : host, port: port),
            transportSecurity: security,
            config: .defaults { config in
                // The route refuses a message over the limit with RESOURCE_EXHAUSTED once it is read; the transport
                // itself refuses one over twice the limit unread, by resetting the stream, which clients see as
                // UNAVAILABLE while they are still sending.
                config.rpc.maxRequestPayloadSize = 2 * maxMessageBytes
                config.http2.maxConcurrentStreams = maxConcurrentStreams
                config.connection.maxIdleTime = .milliseconds(idleTimeoutMilliseconds)
                config.connection.keepalive.clientBehavior.minPingIntervalWithoutCalls = .seconds(60)
                config.compression.enabledAlgorithms = [.gzip, .deflate]
                config.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
                    let open = connections.opened()
                    guard open <= maxConnections else {
                        connections.closed()
                        connectionMetrics.refused.increment()
                        return channel.eventLoop.makeFailedFuture(GRPCListenerError.tooManyConnections)
                    }
                    connectionMetrics.open.record(open)
                    channel.closeFuture.whenComplete { _ in connectionMetrics.open.record(connections.closed()) }
                    return channel.eventLoop.makeSucceededVoidFuture()
                }
            },
            eventLoopGroup: .singletonMultiThreadedEventLoopGroup)
        server = GRPCServer(transport: transport, services: services)
        self.logger = logger
    }

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.serve()
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
        }
    }
}

/// Why the gRPC listener closed a connection as it was accepted.
enum GRPCListenerError: Error {
    /// `OPERYN_MAX_CONNECTIONS` connections were open already.
    case tooManyConnections
}
