import Foundation
import Shared
import TestSupport
import Testing

/// The built `operyn-gateway` executable, run as a child process.
@Suite("operyn-gateway as a process", .serialized)
struct GatewayProcessTests {
    @Test func servesTheSpecExampleThenStopsCleanlyOnSIGTERM() async throws {
        let port = try RedisServer.freePort()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("operyn-gateway-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let prefix = TestRedis.prefix()
        let pid = try ChildProcess.spawn(
            [ChildProcess.binDirectory() + "/operyn-gateway"],
            environment: [
                "OPERYN_REDIS_URL": try TestRedis.url, "OPERYN_PORT": "\(port)", "OPERYN_KEY_PREFIX": prefix, "OPERYN_API_KEY": "k3y",
            ].merging(TestRedis.patientSettings) { $1 },
            output: log)
        var listening = false
        for _ in 0..<200 where !listening {
            try await Task.sleep(for: .milliseconds(50))
            listening = RedisServer.accepts(port: port)
        }
        #expect(listening)
        let status = try await post(port: port, body: specLog, headers: ["x-api-key": "k3y", "x-organization-id": "org_123456789"])
        #expect(status == 202)
        #expect(try await post(port: port, body: specLog, headers: [:]) == 401)
        kill(pid, SIGTERM)
        #expect(await ChildProcess.exited(pid) == 0)
        let output = try String(contentsOfFile: log, encoding: .utf8)
        #expect(output.contains(#""message":"redis.durability""#), "JSON logs with Redis's durability settings")
        #expect(!output.contains("k3y"), "the API key never reaches the log")
        let redis = try TestRedis.client()
        let keys = RedisKeys(prefix: prefix)
        let stream = keys.stream(.logs, partition: keys.partition(of: "org_123456789"))
        #expect(try await redis.send(XLEN(stream)) == 1, "in the organization's partition")
        _ = try await redis.send(DEL([stream]))
        redis.shutdown()
    }

    /// A minimal HTTP/1.1 POST over a plain socket; returns the status code.
    func post(port: Int, body: String, headers: [String: String]) async throws -> Int {
        guard let descriptor = RedisServer.connectLoopback(port: port) else { return 0 }
        defer { close(descriptor) }
        var request = "POST /events/logs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
        _ = request.withCString { send(descriptor, $0, strlen($0), 0) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        guard count > 12 else { return 0 }
        return Int(String(decoding: buffer[9..<12], as: UTF8.self)) ?? 0
    }
}
