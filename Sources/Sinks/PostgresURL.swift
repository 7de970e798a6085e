import Foundation
import NIOSSL
import PostgresNIO

/// A `postgres://user:password@host:port/database?sslmode=…` URL read with libpq's meanings, so a URL copied from a
/// managed database's console works as it is:
///
/// | `sslmode` | TLS | certificate checked |
/// |---|---|---|
/// | `disable` | never | — |
/// | `allow`, `prefer` (default) | when the server offers it, else plain | no |
/// | `require` | always | no (as `verify-ca` when `sslrootcert` is given, as libpq does) |
/// | `verify-ca` | always | signed by `sslrootcert` (or the system's CAs) |
/// | `verify-full` | always | that, and the host name (or address) matches |
///
/// `sslrootcert` names the CA file (`system`: the system's trust store), `sslcert` and `sslkey` a client certificate.
/// `channel_binding` and `application_name` are accepted and have no effect; any other parameter is an error, so
/// a typo does not pass silently.
public struct PostgresURL: Sendable {
    /// The client's configuration: host, port, user, password, database and TLS.
    public let configuration: PostgresClient.Configuration
    /// The same for one connection of its own, which tells why connecting fails (the pool only waits).
    let connection: PostgresConnection.Configuration
    /// The `sslmode` in force.
    public let sslMode: String

    static let sslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
    static let parameters: Set<String> = ["sslmode", "sslrootcert", "sslcert", "sslkey", "channel_binding", "application_name", "connect_timeout"]

    /// Reads `url`; `password`, when given (`OPERYN_DATABASE_PASSWORD_FILE`), wins over the URL's. Errors name the
    /// part of the URL that is wrong and never the password.
    public init(_ url: String, password: String? = nil) throws(SinkError) {
        guard let components = URLComponents(string: url), let host = components.host, !host.isEmpty,
            components.scheme == "postgres" || components.scheme == "postgresql"
        else {
            throw SinkError(code: .rejected, message: "OPERYN_DATABASE_URL is not a postgres://user:password@host:port/database URL")
        }
        var query: [String: String] = [:]
        for item in components.queryItems ?? [] {
            guard Self.parameters.contains(item.name) else {
                throw SinkError(
                    code: .rejected,
                    message: "OPERYN_DATABASE_URL: unknown parameter '\(item.name)' (known: \(Self.parameters.sorted().joined(separator: ", ")))")
            }
            query[item.name] = item.value ?? ""
        }
        let mode = query["sslmode"] ?? "prefer"
        guard Self.sslModes.contains(mode) else {
            throw SinkError(code: .rejected, message: "OPERYN_DATABASE_URL: sslmode must be one of \(Self.sslModes.joined(separator: ", ")), got '\(mode)'")
        }
        sslMode = mode
        let database = String(components.path.drop { $0 == "/" })
        let tls = try Self.tls(mode: mode, query: query)
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: components.user ?? "postgres", password: password ?? components.password,
            database: database.isEmpty ? nil : database, tls: tls.map { mode == "prefer" || mode == "allow" ? .prefer($0) : .require($0) } ?? .disable)
        let context: NIOSSLContext?
        do {
            context = try tls.map { try NIOSSLContext(configuration: $0) }
        } catch {
            throw SinkError(code: .rejected, message: "OPERYN_DATABASE_URL: the TLS files cannot be used together: \(error)")
        }
        connection = PostgresConnection.Configuration(
            host: host, port: configuration.port ?? 5432, username: configuration.username, password: configuration.password,
            database: configuration.database,
            tls: context.map { mode == "prefer" || mode == "allow" ? .prefer($0) : .require($0) } ?? .disable)
        if let timeout = query["connect_timeout"] {
            guard let seconds = Int(timeout), seconds > 0 else {
                throw SinkError(code: .rejected, message: "OPERYN_DATABASE_URL: connect_timeout must be a whole number of seconds, got '\(timeout)'")
            }
            configuration.options.connectTimeout = .seconds(seconds)
        }
        self.configuration = configuration
    }

    /// The TLS of `sslmode` with the files of the query; `nil` for `disable`.
    private static func tls(mode: String, query: [String: String]) throws(SinkError) -> TLSConfiguration? {
        guard mode != "disable" else { return nil }
        var tls = TLSConfiguration.makeClientConfiguration()
        let rootFile = query["sslrootcert"]
        switch mode {
        case "verify-full": tls.certificateVerification = .fullVerification
        case "verify-ca": tls.certificateVerification = .noHostnameVerification
        case "require": tls.certificateVerification = rootFile == nil ? .none : .noHostnameVerification
        default: tls.certificateVerification = .none
        }
        if let rootFile, rootFile != "system" {
            tls.trustRoots = .certificates(try certificates(rootFile, parameter: "sslrootcert"))
        }
        switch (query["sslcert"], query["sslkey"]) {
        case (nil, nil): break
        case (let certificate?, let key?):
            tls.certificateChain = try certificates(certificate, parameter: "sslcert").map { .certificate($0) }
            do {
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            } catch {
                throw SinkError(code: .rejected, message: "OPERYN_DATABASE_URL: sslkey: cannot read a PEM private key from \(key)")
            }
        default:
            throw SinkError(code: .rejected, message: "OPERYN_DATABASE_URL: sslcert and sslkey must be given together")
        }
        return tls
    }

    private static func certificates(_ path: String, parameter: String) throws(SinkError) -> [NIOSSLCertificate] {
        let certificates = try? NIOSSLCertificate.fromPEMFile(path)
        guard let certificates, !certificates.isEmpty else {
            throw SinkError(code: .rejected, message: "OPERYN_DATABASE_URL: \(parameter): cannot read a PEM certificate from \(path)")
        }
        return certificates
    }
}
