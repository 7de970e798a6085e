import Foundation
import Shared
import TestSupport
import Testing

/// Secrets from files and TLS at start, on the built executables: a bad file is exit 2 naming the variable (never
/// the secret), a TLS or authentication failure is exit 3 within the start-up timeout naming the host and the
/// reason, and no secret reaches any output.
@Suite("Secrets from files and TLS failures at start", .serialized)
struct SecretsAndTLSStartupTests {
    var gateway: String { ChildProcess.binDirectory() + "/operyn-gateway" }
    var worker: String { ChildProcess.binDirectory() + "/operyn-worker" }
    var admin: String { ChildProcess.binDirectory() + "/operyn-admin" }

    /// A file of the test's own holding `text`.
    func file(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("operyn-secret-\(UUID().uuidString)").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func base(redis: String? = nil) throws -> [String: String] {
        [
            "OPERYN_REDIS_URL": try redis ?? TestRedis.url, "OPERYN_PORT": "\(try RedisServer.freePort())", "OPERYN_KEY_PREFIX": TestRedis.prefix(),
            "OPERYN_LOG_LEVEL": "debug", "OPERYN_STARTUP_TIMEOUT_SECONDS": "2", "OPERYN_METRICS_PORT": "0",
            "OPERYN_DATABASE_URL": "sqlite:" + FileManager.default.temporaryDirectory.appendingPathComponent("operyn-s-\(UUID().uuidString)/o.sqlite").path,
        ]
    }

    func expectExit(
        _ exit: ProcessExit, _ status: Int32, naming words: [String], never secrets: [String] = [], sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(exit.status == status, "\(exit.output.suffix(1_500))", sourceLocation: sourceLocation)
        let last = exit.plainLines.last ?? ""
        for word in words { #expect(last.contains(word), "\(last) should name \(word)", sourceLocation: sourceLocation) }
        for secret in secrets { #expect(!exit.output.contains(secret), "a secret in the output: \(exit.output.suffix(1_500))", sourceLocation: sourceLocation) }
    }

    @Test func anUnreadableOrEmptySecretFileIsExit2NamingTheVariable() async throws {
        for (program, variable) in [(gateway, "OPERYN_API_KEY_FILE"), (gateway, "OPERYN_REDIS_PASSWORD_FILE"), (worker, "OPERYN_DATABASE_PASSWORD_FILE")] {
            var environment = try base()
            environment[variable] = "/nonexistent/secret"
            expectExit(try await ChildProcess.run([program], environment: environment), 2, naming: [variable, "/nonexistent/secret"])
            environment[variable] = try file("\n")
            expectExit(try await ChildProcess.run([program], environment: environment), 2, naming: [variable, "is empty"])
        }
        var environment = try base()
        environment["OPERYN_REDIS_PASSWORD_FILE"] = "/nonexistent/secret"
        expectExit(try await ChildProcess.run([admin, "status"], environment: environment), 2, naming: ["OPERYN_REDIS_PASSWORD_FILE"])
    }

    /// The key in `OPERYN_API_KEY_FILE` is the server-wide key (a trailing line break is not part of it); a
    /// password from a file that Redis refuses ends the start with exit 3, and neither appears anywhere.
    @Test func secretsFromFilesWorkAndNeverShow() async throws {
        let server = try await RedisServer(arguments: ["--requirepass", "r3dis-Secret"])
        var environment = try base(redis: server.url)
        environment["OPERYN_API_KEY_FILE"] = try file("k3y-Secret\n")
        environment["OPERYN_REDIS_PASSWORD_FILE"] = try file("r3dis-Secret\n")
        let port = environment["OPERYN_PORT"]!
        let pid = try ChildProcess.spawn([gateway], environment: environment)
        defer {
            kill(pid, SIGTERM)
            ChildProcess.wait(pid)
        }
        for _ in 0..<200 where !RedisServer.accepts(port: Int(port)!) { try await Task.sleep(for: .milliseconds(50)) }
        let accepted = try await ChildProcess.run(
            [
                "/usr/bin/curl", "-sS", "-X", "POST", "http://127.0.0.1:\(port)/events/logs", "-H", "x-api-key: k3y-Secret", "-H",
                "Content-Type: application/json", "--data", #"{"service":"s","level":"info","message":"m"}"#,
            ], environment: [:])
        #expect(accepted.output.contains(#""queued":true"#), "\(accepted.output)")
        let refused = try await ChildProcess.run(
            ["/usr/bin/curl", "-sS", "-X", "POST", "http://127.0.0.1:\(port)/events/logs", "-H", "x-api-key: k3y-Secret\\n", "--data", "{}"],
            environment: [:])
        #expect(refused.output.contains("401"), "\(refused.output)")
        let metrics = try await ChildProcess.run(["/usr/bin/curl", "-sS", "http://127.0.0.1:\(port)/metrics"], environment: [:])
        #expect(!metrics.output.contains("Secret"))

        environment["OPERYN_REDIS_PASSWORD_FILE"] = try file("wr0ng-Secret")
        environment["OPERYN_PORT"] = "\(try RedisServer.freePort())"
        let exit = try await ChildProcess.run([gateway], environment: environment)
        expectExit(exit, 3, naming: ["OPERYN_REDIS_URL", "authentication failed"], never: ["wr0ng-Secret", "k3y-Secret", "r3dis-Secret"])
        let adminExit = try await ChildProcess.run([admin, "status"], environment: environment)
        #expect(adminExit.status == 1 && adminExit.output.contains("authentication failed"), "\(adminExit.output)")
        #expect(!adminExit.output.contains("wr0ng-Secret"))
    }

    @Test func aTLSFailureAtStartIsExit3NamingTheHostAndTheReason() async throws {
        for (url, ca, reason) in [
            (try TestTLS.redisURL, "other-ca.pem", "not signed by a CA this client trusts"),
            (try TestTLS.redisURL.replacingOccurrences(of: "localhost", with: "127.0.0.1"), "ca.pem", "name mismatch"),
            (try TestTLS.mutualRedisURL, "ca.pem", "requires a client certificate"),
            (try TestRedis.url.replacingOccurrences(of: "redis://127.0.0.1", with: "rediss://localhost"), "ca.pem", "plain port"),
        ] {
            for program in [gateway, worker] {
                var environment = try base(redis: url)
                environment["OPERYN_REDIS_TLS_CA_FILE"] = try TestTLS.file(ca)
                let started = ContinuousClock.now
                let exit = try await ChildProcess.run([program], environment: environment)
                expectExit(exit, 3, naming: ["OPERYN_REDIS_URL", reason])
                #expect(ContinuousClock.now - started < .seconds(10), "within the start-up timeout (2 s) and then some")
            }
        }
        var plainOnTLS = try base(redis: try TestTLS.redisURL.replacingOccurrences(of: "rediss://", with: "redis://"))
        plainOnTLS["OPERYN_REDIS_TLS_CA_FILE"] = nil
        expectExit(try await ChildProcess.run([gateway], environment: plainOnTLS), 3, naming: ["a TLS port? use rediss://"])
    }

    @Test func theDevelopmentSwitchWarnsAtStart() async throws {
        var environment = try base(redis: try TestTLS.redisURL.replacingOccurrences(of: "localhost", with: "127.0.0.1"))
        environment["OPERYN_REDIS_TLS_INSECURE"] = "true"
        let exit = try await ChildProcess.run([gateway], environment: environment, signal: SIGTERM, signalAfter: 1.5)
        #expect(exit.status == 0, "\(exit.output.suffix(1_000))")
        #expect(exit.output.contains("redis.tls.insecure") && exit.output.contains("not verified"), "\(exit.output.prefix(2_000))")
    }

    @Test func aListenerCertificateIsReadAtStart() async throws {
        var environment = try base()
        environment["OPERYN_TLS_CERT_FILE"] = try TestTLS.file("server.pem")
        expectExit(try await ChildProcess.run([gateway], environment: environment), 2, naming: ["OPERYN_TLS_KEY_FILE"])
        environment["OPERYN_TLS_KEY_FILE"] = try TestTLS.file("client.key")
        expectExit(try await ChildProcess.run([gateway], environment: environment), 2, naming: ["does not go with the certificate"])
        environment["OPERYN_TLS_KEY_FILE"] = "/nonexistent/key.pem"
        expectExit(try await ChildProcess.run([gateway], environment: environment), 2, naming: ["OPERYN_TLS_KEY_FILE", "/nonexistent/key.pem"])
    }
}
