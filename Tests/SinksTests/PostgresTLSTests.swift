import Foundation
import Shared
import TestSupport
import Testing

@testable import Sinks

/// PostgreSQL URLs with libpq's `sslmode` against a server that takes TLS only and one without TLS (the test
/// command's two), every refusal named.
@Suite("PostgreSQL over TLS")
struct PostgresTLSTests {
    /// The TLS-only server's URL with `query`, and `host` in place of localhost when given.
    func tlsURL(_ query: String, host: String = "localhost", user: String = "operyn") throws -> String {
        try TestTLS.postgresURL.replacingOccurrences(of: "operyn@localhost", with: "\(user)@\(host)") + (query.isEmpty ? "" : "?\(query)")
    }

    /// A fresh database's URL on the plain server, with `query`.
    func plainURL(_ query: String) async throws -> String {
        try await PostgresTestDatabase.create() + "?\(query)"
    }

    /// Runs a sink on `url` and answers the migration's outcome: `nil` when it worked, else the error's message.
    func prepare(_ url: String, password: String? = nil) async throws -> String? {
        let sink = try PostgresSink(url: url, password: password, timeout: .seconds(5))
        let runner = Task { try await sink.run() }
        defer { runner.cancel() }
        do {
            try await sink.prepare()
            return nil
        } catch {
            #expect(error.code == .unavailable, "a connection or TLS failure lets the events wait: \(error.message)")
            return error.message
        }
    }

    @Test func theURLsOfManagedDatabasesAreRead() throws {
        let neon = try PostgresURL("postgresql://app:s3cret@ep-1.eu-central-1.aws.neon.tech/neondb?sslmode=require&channel_binding=require")
        #expect(neon.sslMode == "require")
        #expect(try PostgresURL("postgres://u@db.example.com/app").sslMode == "prefer", "libpq's default")
        let file = try PostgresURL("postgres://u:inurl@h/db", password: "fromfile")
        #expect(file.configuration.password == "fromfile", "the password file wins over the URL")
        for (bad, named) in [
            ("postgres://u@h/db?sslmode=verify", "sslmode"), ("postgres://u@h/db?sslmod=require", "sslmod"),
            ("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent.pem", "/nonexistent.pem"),
            ("postgres://u@h/db?sslcert=/x.pem", "together"),
        ] {
            do {
                _ = try PostgresURL(bad)
                Issue.record("\(bad) was taken")
            } catch {
                #expect(error.message.contains(named), "\(error.message)")
            }
        }
    }

    @Test func eachSSLModeAgainstATLSOnlyServer() async throws {
        let refused = try await prepare(try tlsURL("sslmode=disable"))
        #expect(refused?.contains("refused authentication") == true && refused?.contains("no encryption") == true, "\(refused ?? "connected")")
        #expect(try await prepare(try tlsURL("")) == nil, "prefer (the default) takes TLS when offered")
        #expect(try await prepare(try tlsURL("sslmode=require")) == nil)
        #expect(try await prepare(try tlsURL("sslmode=verify-ca&sslrootcert=\(try TestTLS.file("ca.pem"))", host: "127.0.0.1")) == nil)
        #expect(try await prepare(try tlsURL("sslmode=verify-full&sslrootcert=\(try TestTLS.file("ca.pem"))")) == nil, "the right name")
    }

    @Test func verifyFullRefusesAWrongNameAndVerifyCAAWrongCA() async throws {
        let mismatch = try await prepare(try tlsURL("sslmode=verify-full&sslrootcert=\(try TestTLS.file("ca.pem"))", host: "127.0.0.1"))
        #expect(mismatch?.contains("name mismatch") == true, "\(mismatch ?? "connected")")
        let wrongCA = try await prepare(try tlsURL("sslmode=verify-ca&sslrootcert=\(try TestTLS.file("other-ca.pem"))"))
        #expect(wrongCA?.contains("could not be verified") == true, "\(wrongCA ?? "connected")")
        let system = try await prepare(try tlsURL("sslmode=verify-full"))
        #expect(system?.contains("could not be verified") == true, "the system's CAs do not know the test CA: \(system ?? "connected")")
    }

    @Test func preferFallsBackToAPlainServerAndRequireFailsClearly() async throws {
        #expect(try await prepare(try await plainURL("sslmode=prefer")) == nil)
        let required = try await prepare(try await plainURL("sslmode=require"))
        #expect(required?.contains("does not offer TLS") == true, "\(required ?? "connected")")
    }

    @Test func aWrongPasswordIsAnAuthenticationFailureAndThePasswordFileWins() async throws {
        let wrong = try await prepare(try tlsURL("sslmode=require", user: "operyn_app:n0tThePassw0rd"))
        #expect(wrong?.contains("password authentication failed") == true, "\(wrong ?? "connected")")
        #expect(wrong?.contains("n0tThePassw0rd") == false, "the password is never repeated")
        #expect(try await prepare(try tlsURL("sslmode=require", user: "operyn_app:n0tThePassw0rd"), password: "s3cret") == nil)
    }
}
