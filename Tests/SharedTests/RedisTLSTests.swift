import Foundation
import Shared
import TestSupport
import Testing

/// Redis over TLS against real TLS-only servers: verification by default, a private CA, the name to verify, mutual
/// TLS, the cluster, and every failure named, none a hang.
@Suite("Redis over TLS")
struct RedisTLSTests {
    /// The error of the first command of a new client on `configuration`.
    func firstError(_ configuration: RedisConfiguration) async throws -> RedisError {
        let redis = RedisClient(configuration: configuration)
        defer { redis.shutdown() }
        do {
            _ = try await redis.send(PING())
        } catch {
            return error
        }
        Issue.record("PING succeeded")
        throw TestSetupError("no error")
    }

    @Test func redissURLsAskForTLSAndKeepTheirSchemeInLogs() throws {
        let single = try RedisConfiguration(url: "rediss://:s3cret@cache.example.com:6380/2")
        #expect(single.tls?.verify == true && single.tls?.caFile == nil, "verified against the system's trust store by default")
        #expect(single.redactedURL == "rediss://:***@cache.example.com:6380/2")
        let cluster = try RedisConfiguration(url: "rediss+cluster://10.0.0.5:7000,10.0.0.6:7001")
        #expect(cluster.isCluster && cluster.tls != nil)
        #expect(cluster.redactedURL == "rediss+cluster://10.0.0.5:7000,10.0.0.6:7001")
        #expect(try RedisConfiguration(url: "redis://h:1").tls == nil)
    }

    @Test func theTLSSettingsAreReadAndCheckedAtStart() throws {
        func read(_ environment: [String: String]) throws(ConfigurationError) -> RedisConfiguration {
            try RedisConfiguration(try ConfigurationReader(environment: environment, arguments: []))
        }
        let configuration = try read([
            "OPERYN_REDIS_URL": "rediss://localhost:6380", "OPERYN_REDIS_TLS_CA_FILE": try TestTLS.file("ca.pem"),
            "OPERYN_REDIS_TLS_CERT_FILE": try TestTLS.file("client.pem"), "OPERYN_REDIS_TLS_KEY_FILE": try TestTLS.file("client.key"),
            "OPERYN_REDIS_TLS_SERVER_NAME": "redis.internal",
        ])
        #expect(configuration.tls?.serverName == "redis.internal" && configuration.tls?.certificateFile != nil)
        #expect(throws: ConfigurationError.self, "TLS settings on a plain URL are a mistake, said at start") {
            try read(["OPERYN_REDIS_URL": "redis://localhost", "OPERYN_REDIS_TLS_CA_FILE": try TestTLS.file("ca.pem")])
        }
        do {
            _ = try read(["OPERYN_REDIS_URL": "rediss://localhost", "OPERYN_REDIS_TLS_CA_FILE": "/nonexistent/ca.pem"])
            Issue.record("a missing CA file was taken")
        } catch {
            #expect(error.message.contains("/nonexistent/ca.pem") && error.message.contains("OPERYN_REDIS_TLS"), "\(error.message)")
        }
        #expect(throws: ConfigurationError.self, "a certificate without its key") {
            try read(["OPERYN_REDIS_URL": "rediss://localhost", "OPERYN_REDIS_TLS_CERT_FILE": try TestTLS.file("client.pem")])
        }
        #expect(try read(["OPERYN_REDIS_URL": "rediss://localhost", "OPERYN_REDIS_TLS_INSECURE": "true"]).tls?.verify == false)
    }

    @Test func aPrivateCAAndTheServersNameConnect() async throws {
        let redis = RedisClient(configuration: try TestTLS.redis(try TestTLS.redisURL))
        defer { redis.shutdown() }
        let key = TestRedis.prefix() + ":k"
        _ = try await redis.send(SET(key, value: "over TLS"))
        #expect(try await redis.send(GET(key)) == Array("over TLS".utf8))
        _ = try await redis.send(DEL([key]))
    }

    @Test func aWrongCAIsNamed() async throws {
        let error = try await firstError(try TestTLS.redis(try TestTLS.redisURL, ca: "other-ca.pem"))
        #expect(error.isRetryable)
        #expect(error.message.contains("localhost:") && error.message.contains("not signed by a CA this client trusts"), "\(error.message)")
    }

    @Test func theSystemTrustStoreRefusesThePrivateCA() async throws {
        let error = try await firstError(try RedisConfiguration(url: try TestTLS.redisURL))
        #expect(error.message.contains("not signed by a CA this client trusts"), "\(error.message)")
    }

    @Test func aNameMismatchIsNamedAndTheServerNameSettingMendsIt() async throws {
        let byAddress = try TestTLS.redisURL.replacingOccurrences(of: "localhost", with: "127.0.0.1")
        let error = try await firstError(try TestTLS.redis(byAddress))
        #expect(error.message.contains("127.0.0.1:") && error.message.contains("name mismatch"), "\(error.message)")
        let redis = RedisClient(configuration: try TestTLS.redis(byAddress, serverName: "localhost"))
        defer { redis.shutdown() }
        _ = try await redis.send(PING())
        let wrongName = try await firstError(try TestTLS.redis(try TestTLS.redisURL, serverName: "redis.example.com"))
        #expect(wrongName.message.contains("redis.example.com") && wrongName.message.contains("name mismatch"), "\(wrongName.message)")
    }

    @Test func anExpiredCertificateIsNamedAndAFixedServerIsReachedAgain() async throws {
        let server = try await RedisServer(tlsCertificate: "expired")
        let configuration = try TestTLS.redis(server.url)
        let redis = RedisClient(configuration: configuration)
        defer { redis.shutdown() }
        do {
            _ = try await redis.send(PING())
            Issue.record("an expired certificate was taken")
        } catch {
            #expect(error.message.contains("expired on 2021-01-01"), "\(error.message)")
        }
        // The operator renews the certificate; the same client connects by itself.
        let renewed = try await RedisServer(tlsCertificate: "server")
        var mended = try TestTLS.redis(renewed.url)
        mended.reconnectDelayMilliseconds = 10
        let again = RedisClient(configuration: mended)
        defer { again.shutdown() }
        _ = try await TestRedis.connected(again)
    }

    @Test func mutualTLSWithAndWithoutAClientCertificate() async throws {
        let error = try await firstError(try TestTLS.redis(try TestTLS.mutualRedisURL))
        #expect(error.message.contains("requires a client certificate"), "\(error.message)")
        let redis = RedisClient(configuration: try TestTLS.redis(try TestTLS.mutualRedisURL, clientCertificate: true))
        defer { redis.shutdown() }
        #expect(try await redis.send(PING()) == "PONG")
    }

    @Test func aPlainClientOnATLSPortAndATLSClientOnAPlainPortAreNamed() async throws {
        let plain = try TestTLS.redisURL.replacingOccurrences(of: "rediss://", with: "redis://")
        let plainError = try await firstError(try RedisConfiguration(url: plain))
        #expect(plainError.message.contains("a TLS port? use rediss://"), "\(plainError.message)")
        var tlsOnPlain = try TestTLS.redis(try TestRedis.url.replacingOccurrences(of: "redis://127.0.0.1", with: "rediss://localhost"))
        tlsOnPlain.connectTimeoutMilliseconds = 300
        let started = ContinuousClock.now
        let tlsError = try await firstError(tlsOnPlain)
        #expect(tlsError.message.contains("TLS handshake") && tlsError.message.contains("plain port"), "\(tlsError.message)")
        #expect(ContinuousClock.now - started < .seconds(5), "never a hang")
    }

    @Test func aWrongPasswordIsAnAuthenticationFailureNotAClosedConnection() async throws {
        let server = try await RedisServer(tlsCertificate: "server", arguments: ["--requirepass", "right"])
        var configuration = try TestTLS.redis(server.url.replacingOccurrences(of: "rediss://", with: "rediss://:wrong@"))
        let error = try await firstError(configuration)
        #expect(error.message.contains("authentication failed") && error.message.contains("WRONGPASS"), "\(error.message)")
        #expect(!error.message.contains("wrong@"), "the password is never repeated")
        configuration.password = "right"
        let redis = RedisClient(configuration: configuration)
        defer { redis.shutdown() }
        #expect(try await redis.send(PING()) == "PONG")
    }

    /// The development switch connects whatever the certificate, and says so at every start.
    @Test func theInsecureSwitchSkipsVerification() async throws {
        var configuration = try RedisConfiguration(url: try TestTLS.redisURL.replacingOccurrences(of: "localhost", with: "127.0.0.1"))
        configuration.tls = try RedisTLS(verify: false)
        let redis = RedisClient(configuration: configuration)
        defer { redis.shutdown() }
        #expect(try await redis.send(PING()) == "PONG")
    }

    /// Every node's connection uses the same TLS settings, those learned from `CLUSTER SLOTS` and redirects too.
    @Test func aTLSClusterServesEverySlot() async throws {
        let redis = RedisClient(configuration: try TestTLS.redis(try TestTLS.clusterURL, serverName: "localhost"))
        defer { redis.shutdown() }
        let prefix = TestRedis.prefix()
        let keys = (0..<24).map { "\(prefix):\($0)" }
        for key in keys { _ = try await redis.send(SET(key, value: key)) }
        for key in keys { #expect(try await redis.send(GET(key)) == Array(key.utf8)) }
        #expect(Set(keys.compactMap { redis.node(of: $0) }).count == 3, "the keys spread over the three masters")
        for key in keys { _ = try await redis.send(DEL([key])) }
    }
}
