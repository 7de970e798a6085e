import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// How connections to Redis use TLS (`rediss://`, `rediss+cluster://`): certificates verified against the system's
/// trust store or a private CA, an optional client certificate for mutual TLS, and the name to verify. Every
/// connection of a client, each cluster node's included, uses the same settings. The `NIOSSLContext` is made once,
/// when the settings are read, so a bad file is a configuration error at start and not a failure per connection.
public struct RedisTLS: Sendable, Equatable {
    /// PEM file of the CA (or CAs) that signed the server's certificate; `nil` trusts the system's store.
    public let caFile: String?
    /// PEM file of the client certificate, for servers that ask for one (`tls-auth-clients yes`).
    public let certificateFile: String?
    /// PEM file of the client certificate's private key.
    public let keyFile: String?
    /// The name the server's certificate must carry; `nil` verifies the host of the URL (a name, or an address
    /// against the certificate's IP entries). Also sent as SNI when it is a name.
    public let serverName: String?
    /// Whether the server's certificate is verified; `false` only through the development switch.
    public let verify: Bool
    /// The context every connection's TLS handler is made from.
    let context: NIOSSLContext

    /// Settings with their context; throws `invalidConfiguration`, naming the file, when one cannot be used.
    public init(
        caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, serverName: String? = nil, verify: Bool = true
    ) throws(RedisError) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.serverName = serverName
        self.verify = verify
        guard (certificateFile == nil) == (keyFile == nil) else {
            throw RedisError(code: .invalidConfiguration, message: "a client certificate needs both its certificate file and its key file")
        }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = verify ? .fullVerification : .none
        configuration.trustRoots = try caFile.map { path throws(RedisError) in .certificates(try Self.certificates(path, what: "CA file")) } ?? .default
        if let certificateFile, let keyFile {
            configuration.certificateChain = try Self.certificates(certificateFile, what: "client certificate file").map { .certificate($0) }
            do {
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            } catch {
                throw RedisError(code: .invalidConfiguration, message: "cannot read the client key file \(keyFile): \(TLSFailure.fileReason(error))")
            }
        }
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw RedisError(code: .invalidConfiguration, message: "cannot set up TLS: \(error)")
        }
    }

    private static func certificates(_ path: String, what: String) throws(RedisError) -> [NIOSSLCertificate] {
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw RedisError(code: .invalidConfiguration, message: "cannot read the \(what) \(path): \(TLSFailure.fileReason(error))")
        }
        guard !certificates.isEmpty else { throw RedisError(code: .invalidConfiguration, message: "the \(what) \(path) holds no PEM certificate") }
        return certificates
    }

    /// The name to verify and send for a connection to `host`: the configured name, else the host when it is a
    /// name (an IP address is verified against the certificate's IP entries, and never sent as SNI).
    func serverName(for host: String) -> String? {
        if let serverName { return serverName }
        return (try? SocketAddress(ipAddress: host, port: 0)) == nil ? host : nil
    }

    /// A TLS handler for a connection to `host`.
    func makeHandler(host: String) throws -> NIOSSLClientHandler {
        try NIOSSLClientHandler(context: context, serverHostname: serverName(for: host))
    }

    public static func == (lhs: RedisTLS, rhs: RedisTLS) -> Bool {
        lhs.caFile == rhs.caFile && lhs.certificateFile == rhs.certificateFile && lhs.keyFile == rhs.keyFile && lhs.serverName == rhs.serverName
            && lhs.verify == rhs.verify
    }
}

/// Waits for a connection's TLS handshake: its promise succeeds once the handshake is done and fails with the error
/// that ended it (or the close that came first).
final class TLSHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    let done: EventLoopPromise<Void>

    init(done: EventLoopPromise<Void>) { self.done = done }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            done.succeed()
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        done.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        done.fail(ChannelError.eof)
        context.fireChannelInactive()
    }

    /// Removed after the handshake, or with a channel that never became active (its connection failed): the
    /// promise is settled either way (a later completion is ignored).
    func handlerRemoved(context: ChannelHandlerContext) {
        done.fail(ChannelError.ioOnClosedChannel)
    }
}

/// TLS failures in words: what went wrong with the handshake to a server, for the error messages of the Redis and
/// database connections. Never names a secret: only hosts, files and the TLS library's reasons.
public enum TLSFailure {
    /// One clause for a failed handshake with the server at `address`, such as "its certificate is not signed by a
    /// trusted CA".
    public static func reason(_ error: any Error, serverName: String?) -> String {
        if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
            return "its certificate does not match the name \(serverName ?? "of the address") (TLS name mismatch)"
        }
        let text = String(describing: error)
        if text.contains("CERTIFICATE_REQUIRED") || text.contains("CERTIFICATE_UNKNOWN") && !text.contains("VERIFY") {
            return "the server requires a client certificate and did not accept one from this client (mutual TLS)"
        }
        if text.contains("CERTIFICATE_VERIFY_FAILED") { return "its certificate could not be verified" }
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("PACKET_LENGTH_TOO_LONG") || text.contains("HTTP_REQUEST")
            || text.contains("UNEXPECTED_RECORD")
        {
            return "it did not answer the TLS handshake (a plain port, not TLS?)"
        }
        if let ssl = error as? NIOSSLError, case .uncleanShutdown = ssl {
            return "it closed the connection during the TLS handshake"
        }
        if let channel = error as? ChannelError, channel == .eof {
            return "it closed the connection during the TLS handshake"
        }
        return "the TLS handshake failed: \(text)"
    }

    /// Whether `error` is a failed certificate verification, which `diagnose` can say more about.
    static func isVerificationFailure(_ error: any Error) -> Bool {
        String(describing: error).contains("CERTIFICATE_VERIFY_FAILED")
    }

    /// Why a server's certificate chain fails verification, read from the chain: expired, not valid yet, or signed
    /// by a CA this client does not trust.
    static func diagnosis(of chain: [NIOSSLCertificate], now: Date = Date()) -> String {
        guard let leaf = chain.first else { return "it sent no certificate" }
        let notAfter = Date(timeIntervalSince1970: TimeInterval(leaf.notValidAfter))
        let notBefore = Date(timeIntervalSince1970: TimeInterval(leaf.notValidBefore))
        if notAfter < now { return "its certificate expired on \(ISO8601DateFormatter().string(from: notAfter))" }
        if notBefore > now { return "its certificate is not valid before \(ISO8601DateFormatter().string(from: notBefore))" }
        return "its certificate is not signed by a CA this client trusts (wrong CA)"
    }

    /// Connects to `host:port` once more, without sending anything, to read the certificate chain that failed
    /// verification, and answers `diagnosis(of:)`; answers `fallback` when that cannot be done.
    static func diagnose(
        host: String, port: Int, context: NIOSSLContext, serverName: String?, eventLoop: any EventLoop, timeout: TimeAmount, fallback: String
    ) -> EventLoopFuture<String> {
        let captured = CapturedChain()
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try NIOSSLClientHandler(
                        context: context, serverHostname: serverName,
                        customVerificationCallback: { (chain: [NIOSSLCertificate], promise: EventLoopPromise<NIOSSLVerificationResult>) in
                            captured.chain.withLock { $0 = chain }
                            promise.succeed(NIOSSLVerificationResult.failed)
                        })
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(host: host, port: port)
            .flatMap { (channel: any Channel) -> EventLoopFuture<Void> in
                channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
                return channel.closeFuture
            }
            .recover { (_: any Error) in () }
            .map { captured.chain.withLock { $0.isEmpty ? fallback : diagnosis(of: $0) } }
    }

    /// The chain a diagnosing connection saw.
    private final class CapturedChain: Sendable {
        let chain = Mutex<[NIOSSLCertificate]>([])
    }

    /// A file that could not be read, in words.
    static func fileReason(_ error: any Error) -> String {
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)) }
        return "\(error)"
    }
}
