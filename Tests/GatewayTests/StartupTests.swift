import Foundation
import Shared
import TestSupport
import Testing

/// `operyn-gateway` and `operyn-worker` turn every start-up failure into one line on stderr and a documented exit
/// code, and exit 0 on SIGTERM whatever they are waiting for; never the runtime's fatal error.
@Suite("Start-up failures and signals", .serialized)
struct StartupTests {
    var gateway: String { ChildProcess.binDirectory() + "/operyn-gateway" }
    var worker: String { ChildProcess.binDirectory() + "/operyn-worker" }

    func expectOneLine(_ exit: ProcessExit, status: Int32, mentioning words: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(exit.status == status, "\(exit.output)", sourceLocation: sourceLocation)
        #expect(!exit.output.contains("Fatal error"), "\(exit.output)", sourceLocation: sourceLocation)
        let lines = exit.plainLines
        #expect(lines.count == 1, "\(lines)", sourceLocation: sourceLocation)
        for word in words { #expect(lines.first?.contains(word) == true, "\(lines) should name \(word)", sourceLocation: sourceLocation) }
    }

    /// A listening socket on a free loopback port, held until closed.
    func occupiedPort() throws -> (port: Int, descriptor: Int32) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        listen(descriptor, 1)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) } }
        return (Int(UInt16(bigEndian: address.sin_port)), descriptor)
    }

    func gatewayEnvironment(port: Int, redis: String? = nil) throws -> [String: String] {
        ["OPERYN_REDIS_URL": try redis ?? TestRedis.url, "OPERYN_PORT": "\(port)", "OPERYN_KEY_PREFIX": TestRedis.prefix(), "OPERYN_LOG_LEVEL": "error"]
    }

    func workerEnvironment(database: String, redis: String? = nil, metricsPort: Int = 0) throws -> [String: String] {
        [
            "OPERYN_REDIS_URL": try redis ?? TestRedis.url, "OPERYN_DATABASE_URL": database, "OPERYN_METRICS_PORT": "\(metricsPort)",
            "OPERYN_KEY_PREFIX": TestRedis.prefix(), "OPERYN_LOG_LEVEL": "error", "OPERYN_BLOCK_MS": "100",
        ]
    }

    var sqliteURL: String { "sqlite:" + FileManager.default.temporaryDirectory.appendingPathComponent("operyn-startup-\(UUID().uuidString)/o.sqlite").path }

    @Test func aGatewayOnAPortInUseSaysSoAndExits4() async throws {
        let (port, descriptor) = try occupiedPort()
        defer { close(descriptor) }
        let exit = try await ChildProcess.run([gateway], environment: try gatewayEnvironment(port: port))
        expectOneLine(exit, status: 4, mentioning: ["OPERYN_HOST/OPERYN_PORT", "127.0.0.1:\(port)", "Address already in use"])
    }

    @Test func aWorkerWhoseMetricsPortIsInUseSaysSoAndExits4() async throws {
        let (port, descriptor) = try occupiedPort()
        defer { close(descriptor) }
        let exit = try await ChildProcess.run([worker], environment: try workerEnvironment(database: sqliteURL, metricsPort: port))
        expectOneLine(exit, status: 4, mentioning: ["OPERYN_METRICS_HOST/OPERYN_METRICS_PORT", "Address already in use"])
    }

    @Test func unreachableRedisEndsTheStartWithExit3() async throws {
        let deadRedis = "redis://127.0.0.1:\(try RedisServer.freePort())"
        var environment = try gatewayEnvironment(port: try RedisServer.freePort(), redis: deadRedis)
        environment["OPERYN_STARTUP_TIMEOUT_SECONDS"] = "1"
        expectOneLine(try await ChildProcess.run([gateway], environment: environment), status: 3, mentioning: ["OPERYN_REDIS_URL", deadRedis])
        environment = try workerEnvironment(database: sqliteURL, redis: deadRedis)
        environment["OPERYN_STARTUP_TIMEOUT_SECONDS"] = "1"
        expectOneLine(try await ChildProcess.run([worker], environment: environment), status: 3, mentioning: ["OPERYN_REDIS_URL", deadRedis])
    }

    @Test func anUnreachableDatabaseEndsTheWorkersStartWithExit3AndHidesThePassword() async throws {
        var environment = try workerEnvironment(database: "postgres://operyn:s3cret@127.0.0.1:\(try RedisServer.freePort())/postgres")
        environment["OPERYN_STARTUP_TIMEOUT_SECONDS"] = "1"
        let exit = try await ChildProcess.run([worker], environment: environment)
        expectOneLine(exit, status: 3, mentioning: ["OPERYN_DATABASE_URL", "operyn:***@127.0.0.1"])
        #expect(!exit.output.contains("s3cret"))
    }

    @Test func anUnwritableSQLitePathFailsAtOnceWithExit3() async throws {
        // A regular file where a folder should be: refused even to root, and waiting cannot mend it.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("operyn-file-\(UUID().uuidString)").path
        FileManager.default.createFile(atPath: file, contents: Data())
        defer { try? FileManager.default.removeItem(atPath: file) }
        let started = ContinuousClock.now
        let exit = try await ChildProcess.run([worker], environment: try workerEnvironment(database: "sqlite:\(file)/data/o.sqlite"))
        expectOneLine(exit, status: 3, mentioning: ["OPERYN_DATABASE_URL", "\(file)/data"])
        #expect(ContinuousClock.now - started < .seconds(10), "no start-up timeout is waited out")
    }

    @Test func badURLsAreConfigurationErrorsWithExit2() async throws {
        var environment = try gatewayEnvironment(port: try RedisServer.freePort(), redis: "http://nowhere")
        expectOneLine(try await ChildProcess.run([gateway], environment: environment), status: 2, mentioning: ["OPERYN_REDIS_URL"])
        environment = try workerEnvironment(database: "mysql://x")
        expectOneLine(try await ChildProcess.run([worker], environment: environment), status: 2, mentioning: ["OPERYN_DATABASE_URL"])
    }

    /// `operyn-admin` reads its environment defaults with the same checks: a bad value is not silently replaced.
    @Test func theAdminRefusesABadEnvironmentValueLikeTheOthers() async throws {
        let admin = ChildProcess.binDirectory() + "/operyn-admin"
        var exit = try await ChildProcess.run(
            [admin, "orgs", "show", "acme"], environment: ["OPERYN_REDIS_URL": try TestRedis.url, "OPERYN_DEFAULT_SERVICE_LIMIT": "lots"])
        expectOneLine(exit, status: 2, mentioning: ["configuration error: OPERYN_DEFAULT_SERVICE_LIMIT", "lots"])
        exit = try await ChildProcess.run([admin, "status"], environment: ["OPERYN_REDIS_URL": "http://nowhere"])
        expectOneLine(exit, status: 2, mentioning: ["configuration error: OPERYN_REDIS_URL"])
        exit = try await ChildProcess.run([admin, "status"], environment: ["OPERYN_KEY_PREFIX": "bad prefix"])
        expectOneLine(exit, status: 2, mentioning: ["configuration error: OPERYN_KEY_PREFIX"])
    }

    @Test func sigtermWhileWaitingForRedisOrTheDatabaseExits0() async throws {
        let deadRedis = "redis://127.0.0.1:\(try RedisServer.freePort())"
        var environment = try gatewayEnvironment(port: try RedisServer.freePort(), redis: deadRedis)
        environment["OPERYN_STARTUP_TIMEOUT_SECONDS"] = "0"
        var exit = try await ChildProcess.run([gateway], environment: environment, signal: SIGTERM, signalAfter: 1.5)
        #expect(exit.status == 0, "\(exit.output)")
        environment = try workerEnvironment(database: sqliteURL, redis: deadRedis)
        environment["OPERYN_STARTUP_TIMEOUT_SECONDS"] = "0"
        exit = try await ChildProcess.run([worker], environment: environment, signal: SIGINT, signalAfter: 1.5)
        #expect(exit.status == 0, "\(exit.output)")
        environment = try workerEnvironment(database: "postgres://operyn@127.0.0.1:\(try RedisServer.freePort())/postgres")
        environment["OPERYN_STARTUP_TIMEOUT_SECONDS"] = "0"
        exit = try await ChildProcess.run([worker], environment: environment, signal: SIGTERM, signalAfter: 1.5)
        #expect(exit.status == 0, "\(exit.output)")
        #expect(!exit.output.contains("Fatal error"))
    }
}
