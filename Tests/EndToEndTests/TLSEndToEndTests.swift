import Foundation
import Shared
import TestSupport
import Testing

/// The deployment a platform runs: every connection on TLS (Redis, the Redis Cluster, PostgreSQL with
/// `verify-full`), each process under the Redis ACL user of its role from `deploy/redis-users.acl`, secrets in files.
@Suite("End to end over TLS, each process under its own Redis user", .serialized)
struct TLSEndToEndTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The three roles' users and passwords.
    static let roles = ["gateway", "worker", "admin"]

    /// `deploy/redis-users.acl` for `prefix`, with a password per role, as `scripts/redis-acl.sh` renders it; the
    /// default user stays on for the test's own checks (a deployment turns it off).
    static func aclFile(prefix: String, directory: String) throws -> String {
        var text = try String(contentsOf: root.appendingPathComponent("deploy/redis-users.acl"), encoding: .utf8)
        text = text.replacingOccurrences(of: "@PREFIX@", with: prefix)
        for role in roles { text = text.replacingOccurrences(of: "@\(role.uppercased())_PASSWORD@", with: "pw-\(role)") }
        text = text.replacingOccurrences(of: "user default off", with: "user default on nopass ~* &* +@all")
        let path = directory + "/users.acl"
        try text.split(separator: "\n").filter { !$0.hasPrefix("#") }.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A TLS-only Redis of the test's own with the ACL users, and a cluster on it whose processes sign in as their
    /// roles, with their passwords in files and the test CA, storing into `databaseURL`.
    static func restrictedCluster(databaseURL: String?, arguments: [String] = []) async throws -> (RedisServer, Cluster) {
        let prefix = TestRedis.prefix("tls")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("operyn-acl-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let server = try await RedisServer(tlsCertificate: "server", arguments: ["--aclfile", try aclFile(prefix: prefix, directory: directory)] + arguments)
        let cluster = try Cluster(redisURL: server.url, databaseURL: databaseURL, prefix: prefix)
        for role in roles {
            let passwordFile = "\(directory)/\(role).password"
            try "pw-\(role)\n".write(toFile: passwordFile, atomically: true, encoding: .utf8)
            cluster.roleSettings[role] = try TestTLS.environment(redis: server.url.replacingOccurrences(of: "://", with: "://operyn-\(role)@"))
                .merging(["OPERYN_REDIS_PASSWORD_FILE": passwordFile]) { $1 }
        }
        cluster.testRedisConfiguration = try TestTLS.redis(server.url)
        return (server, cluster)
    }

    @Test func theWholeServiceOverTLSWithARoleUserPerProcess() async throws {
        let database = try await PostgresTestDatabase.create(
            on: try TestTLS.postgresURL + "?sslmode=verify-full&sslrootcert=\(try TestTLS.file("ca.pem"))")
        let (server, cluster) = try await Self.restrictedCluster(databaseURL: database)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        _ = server
        let ports = [try await cluster.startGateway(), try await cluster.startGateway()]
        for name in ["w1", "w2", "w3"] { try cluster.startWorker(name) }

        try await EndToEndTests().useTheWholeService(cluster, ports: ports)
        for name in cluster.running {
            #expect(!cluster.log(name).contains("NOPERM"), "\(name) had every right it needed: \(cluster.log(name).suffix(2_000))")
            #expect(!cluster.log(name).contains("pw-"), "no password in \(name)'s log")
        }
        let exits = cluster.stop()
        #expect(exits.values.allSatisfy { $0 == 0 }, "every process exits 0 on SIGTERM: \(exits)")
        passed = true
    }

    /// Each role's user is refused what its process never does: the gateway cannot read entries, flush or
    /// reconfigure; the worker cannot flush or reconfigure; the admin cannot flush, reconfigure or reach another
    /// prefix's keys.
    @Test func eachRoleIsRefusedWhatItNeverDoes() async throws {
        let (server, cluster) = try await Self.restrictedCluster(databaseURL: nil)
        defer { cluster.tearDown() }
        func user(_ role: String) throws -> RedisClient {
            var configuration = try TestTLS.redis(server.url)
            configuration.username = "operyn-\(role)"
            configuration.password = "pw-\(role)"
            return RedisClient(configuration: configuration)
        }
        let stream = cluster.keys.stream(.logs)
        let refused: [String: [[String]]] = [
            "gateway": [
                ["XRANGE", stream, "-", "+"], ["XREADGROUP", "GROUP", "g", "c", "STREAMS", stream, ">"], ["FLUSHALL"], ["CONFIG", "SET", "maxmemory", "1"],
                ["DEL", stream], ["XTRIM", stream, "MAXLEN", "0"], ["EVAL", "return redis.call('XRANGE', KEYS[1], '-', '+')", "1", stream],
            ],
            "worker": [["FLUSHALL"], ["CONFIG", "SET", "maxmemory", "1"], ["DEL", stream], ["ACL", "LIST"]],
            "admin": [["FLUSHALL"], ["CONFIG", "SET", "maxmemory", "1"], ["KEYS", "*"], ["GET", "elsewhere:key"], ["SCRIPT", "FLUSH"]],
        ]
        for (role, commands) in refused {
            let redis = try user(role)
            defer { redis.shutdown() }
            #expect(try await redis.send(PING()) == "PONG", "\(role) signs in")
            for command in commands {
                do {
                    let reply = try await redis.send(RawCommand(arguments: command.map { Array($0.utf8) }))
                    Issue.record("\(role) ran \(command.joined(separator: " ")): \(reply)")
                } catch {
                    // A command a script calls is refused inside the script: an ERR that says so.
                    #expect(
                        error.serverPrefix == "NOPERM" || error.message.contains("can't run this command"), "\(role) \(command[0]): \(error.message)")
                }
            }
        }
        let gateway = try user("gateway")
        defer { gateway.shutdown() }
        _ = try await gateway.send(XADD(stream, fields: [(Array("k".utf8), Array("v".utf8))]))
        #expect(try await gateway.send(XLEN(stream)) == 1, "the gateway appends and counts")
    }

    /// A ledger run on TLS with Redis killed with `kill -9` and restarted: nothing accepted is lost.
    @Test func redisKilledAndRestartedUnderTLS() async throws {
        let (server, cluster) = try await Self.restrictedCluster(databaseURL: nil, arguments: ["--appendfsync", "always"])
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        passed = try await redisKilledAndRestartedUnderLoad(server, cluster)
    }

    /// The gateway's own listener on TLS; its Redis failing the handshake after a restart (an expired certificate
    /// deployed) is a 503 with `Retry-After`, and the same gateway accepts again once the certificate is renewed.
    @Test func aGatewayOnHTTPSAnswers503WhileItsRedisHandshakeFailsAndRecovers() async throws {
        let server = try await RedisServer(tlsCertificate: "server")
        let cluster = try Cluster(redisURL: server.url)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        for role in Self.roles { cluster.roleSettings[role] = try TestTLS.environment(redis: server.url) }
        cluster.testRedisConfiguration = try TestTLS.redis(server.url)
        let port = try await cluster.startGateway([
            "OPERYN_TLS_CERT_FILE": try TestTLS.file("server.pem"), "OPERYN_TLS_KEY_FILE": try TestTLS.file("server.key"),
            "OPERYN_REDIS_COMMAND_TIMEOUT_MS": "500",
        ])
        let body = "\(cluster.directory)/event.json"
        try #"{"service":"api","level":"info","message":"over https"}"#.write(toFile: body, atomically: true, encoding: .utf8)
        let post =
            "curl --cacert '\(try TestTLS.file("ca.pem"))' -X POST https://localhost:\(port)/events/logs -H 'x-api-key: \(Cluster.serverKey)'"
            + " -H 'Content-Type: application/json' --data-binary @'\(body)' -D '\(body).headers'"
        var answer = try cluster.shell(post)
        #expect(answer.status == 202, "\(answer.body)")
        #expect(try cluster.shell("curl http://127.0.0.1:\(port)/health/live").status != 200, "no plain HTTP on a TLS listener")

        try await server.restart(tlsCertificate: "expired")
        for _ in 0..<100 {
            answer = try cluster.shell(post)
            if answer.status == 503 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let headers = try String(contentsOfFile: body + ".headers", encoding: .utf8).lowercased()
        #expect(answer.status == 503 && headers.contains("retry-after"), "\(answer.status) \(answer.body) \(headers)")
        // The log line is written as the 503 goes out: give the process's output a moment to reach the file.
        for _ in 0..<40 where !cluster.log("gateway-\(port)").contains("expired on 2021-01-01") { try await Task.sleep(for: .milliseconds(50)) }
        #expect(cluster.log("gateway-\(port)").contains("expired on 2021-01-01"), "the gateway's log names the cause")

        try await server.restart(tlsCertificate: "server")
        for _ in 0..<100 {
            answer = try cluster.shell(post)
            if answer.status == 202 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(answer.status == 202, "reconnected once the certificate is renewed: \(answer.body)")
        passed = true
    }

    /// The spec's examples on the TLS-only Redis Cluster (bus and replication on TLS), whose nodes announce
    /// addresses: every process verifies the name localhost.
    @Test func theSpecExamplesOnATLSCluster() async throws {
        let cluster = try Cluster(redisURL: try TestTLS.clusterURL)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let environment = try TestTLS.environment(redis: try TestTLS.clusterURL, serverName: "localhost")
        for role in Self.roles { cluster.roleSettings[role] = environment }
        cluster.testRedisConfiguration = try TestTLS.redis(try TestTLS.clusterURL, serverName: "localhost")
        let ports = [try await cluster.startGateway(), try await cluster.startGateway()]
        for name in ["w1", "w2", "w3"] { try cluster.startWorker(name) }
        try await EndToEndTests().useTheWholeService(cluster, ports: ports)
        let exits = cluster.stop()
        #expect(exits.values.allSatisfy { $0 == 0 }, "every process exits 0 on SIGTERM: \(exits)")
        passed = true
    }
}
