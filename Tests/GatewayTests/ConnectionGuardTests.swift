import Foundation
import Shared
import TestSupport
import Testing

/// The built gateway against clients that stall, linger or crowd it: each bound is short here so the test is.
@Suite("Connection timeouts, cap and lingering close", .serialized)
struct ConnectionGuardTests {
    /// A gateway process with `settings` added to a test environment; stopped by `stop()`.
    struct Gateway {
        let pid: pid_t
        let port: Int
        let prefix: String

        init(_ settings: [String: String] = [:]) async throws {
            port = try RedisServer.freePort()
            prefix = TestRedis.prefix()
            var environment = [
                "OPERYN_REDIS_URL": try TestRedis.url, "OPERYN_PORT": "\(port)", "OPERYN_KEY_PREFIX": prefix, "OPERYN_LOG_LEVEL": "error",
                "OPERYN_HEADER_TIMEOUT_MS": "1000", "OPERYN_BODY_TIMEOUT_MS": "1000", "OPERYN_KEEPALIVE_TIMEOUT_MS": "1500",
            ].merging(TestRedis.patientSettings) { $1 }
            for (name, value) in settings { environment[name] = value }
            pid = try ChildProcess.spawn([ChildProcess.binDirectory() + "/operyn-gateway"], environment: environment, output: "/dev/null")
            for _ in 0..<200 where !RedisServer.accepts(port: port) { try await Task.sleep(for: .milliseconds(50)) }
        }

        /// Ends the process if it still runs (every test defers this, so a failed expectation leaves no gateway behind).
        func terminate() {
            if kill(pid, 0) == 0 {
                kill(pid, SIGKILL)
                ChildProcess.wait(pid)
            }
        }

        func stop() async throws {
            kill(pid, SIGTERM)
            await ChildProcess.exited(pid)
            let redis = try TestRedis.client()
            _ = try await redis.send(DEL(RedisKeys(prefix: prefix).allStreams))
            redis.shutdown()
        }

        /// One log event over a fresh connection; answers the status and how long it took.
        func post() -> (status: Int, milliseconds: Double) {
            let started = Date()
            guard let socket = TestSocket(port: port) else { return (0, 0) }
            let body = #"{"service":"s","level":"info","message":"m"}"#
            socket.sendAll("POST /events/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            let response = socket.receiveResponse(seconds: 5)
            return (Int(response.dropFirst(9).prefix(3)) ?? 0, Date().timeIntervalSince(started) * 1000)
        }
    }

    static let head = "POST /events/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"

    @Test func stalledConnectionsAreClosedWhileOthersAreServed() async throws {
        let gateway = try await Gateway()
        defer { gateway.terminate() }
        // 300 clients: a third stop in the head, a third in the body, a third connect and send nothing.
        let stalled = (0..<300).compactMap { index -> TestSocket? in
            guard let socket = TestSocket(port: gateway.port) else { return nil }
            switch index % 3 {
            case 0: socket.sendAll(Self.head)
            case 1: socket.sendAll(Self.head + "Content-Length: 100\r\n\r\n{\"service\":")
            default: break
            }
            return socket
        }
        #expect(stalled.count == 300)
        var latencies: [Double] = []
        for _ in 0..<20 {
            let (status, milliseconds) = gateway.post()
            #expect(status == 202)
            latencies.append(milliseconds)
        }
        #expect(latencies.sorted()[18] < 500, "normal requests keep their latency: \(latencies)")
        let started = Date()
        var answers: [String] = []
        for socket in stalled {
            let (text, closed) = socket.receiveAll(seconds: max(0.1, 4 - Date().timeIntervalSince(started)))
            #expect(closed, "closed within the timeouts")
            answers.append(text)
        }
        #expect(Date().timeIntervalSince(started) < 4)
        #expect(answers.enumerated().filter { $0.offset % 3 == 1 }.allSatisfy { $0.element.hasPrefix("HTTP/1.1 408") }, "a stalled body gets 408")
        #expect(answers[1].contains(#"{"statusCode":408,"message":"Request body timed out: no data for 1000 ms"}"#))
        #expect(answers[0].hasPrefix("HTTP/1.1 408"), "a stalled head with bytes gets 408")
        #expect(answers[2].isEmpty, "a connection that sent nothing is just closed")
        try await gateway.stop()
    }

    @Test func anIdleKeepAliveConnectionIsClosedAfterItsTimeout() async throws {
        let gateway = try await Gateway()
        defer { gateway.terminate() }
        let socket = try #require(TestSocket(port: gateway.port))
        let body = #"{"service":"s","level":"info","message":"m"}"#
        for _ in 0..<2 {
            socket.sendAll(Self.head + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
            #expect(socket.receiveResponse(seconds: 5).hasPrefix("HTTP/1.1 202"))
            try await Task.sleep(for: .milliseconds(700))  // within the keep-alive timeout: still open
        }
        let started = Date()
        let (_, closed) = socket.receiveAll(seconds: 4)
        #expect(closed)
        #expect(Date().timeIntervalSince(started) < 2.5)
        try await gateway.stop()
    }

    @Test func pastTheCapNewConnectionsGet503AndEstablishedOnesAreServed() async throws {
        let gateway = try await Gateway(["OPERYN_MAX_CONNECTIONS": "20", "OPERYN_HEADER_TIMEOUT_MS": "10000"])
        defer { gateway.terminate() }
        try await Task.sleep(for: .milliseconds(500))  // the start-up probes' connections are closed and uncounted
        let held = (0..<20).compactMap { _ in TestSocket(port: gateway.port) }
        #expect(held.count == 20)
        try await Task.sleep(for: .milliseconds(200))
        let extra = try #require(TestSocket(port: gateway.port))
        let refusal = extra.receiveAll(seconds: 3)
        #expect(refusal.text.hasPrefix("HTTP/1.1 503"), "\(refusal.text)")
        #expect(refusal.text.contains(#"{"statusCode":503,"message":"Too many open connections; retry later"}"#))
        let body = #"{"service":"s","level":"info","message":"m"}"#
        held[0].sendAll(Self.head + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
        #expect(held[0].receiveResponse(seconds: 5).hasPrefix("HTTP/1.1 202"), "an established connection is served")
        try await gateway.stop()
    }

    /// A client that writes its whole over-limit body before reading (Python's urllib, requests) gets the 413.
    @Test(arguments: [("close", false), ("keep-alive", false), ("close", true), ("keep-alive", true)])
    func a413ReachesAClientThatWritesTheWholeBodyFirst(connection: String, batch: Bool) async throws {
        let gateway = try await Gateway(["OPERYN_BODY_TIMEOUT_MS": "10000"])
        defer { gateway.terminate() }
        let socket = try #require(TestSocket(port: gateway.port))
        let size = batch ? 11_000_000 : 3 << 20
        let body = [UInt8](repeating: UInt8(ascii: " "), count: size)
        let path = batch ? "/events/logs/batch" : "/events/logs"
        let head = "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: \(connection)\r\nContent-Length: \(size)\r\n\r\n"
        let sent = await Task.detached { socket.sendAll(Array(head.utf8) + body, seconds: 10) }.value
        #expect(sent, "the whole body was taken in")
        let response = socket.receiveResponse(seconds: 5)
        #expect(response.hasPrefix("HTTP/1.1 413"), "\(response.prefix(200))")
        if connection == "keep-alive" {
            let small = #"{"service":"s","level":"info","message":"m"}"#
            socket.sendAll("POST /events/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(small.utf8.count)\r\n\r\n\(small)")
            #expect(socket.receiveResponse(seconds: 5).hasPrefix("HTTP/1.1 202"), "the connection goes on after the drained body")
        }
        try await gateway.stop()
    }

    @Test func lingeringIsBoundedInBytes() async throws {
        let gateway = try await Gateway(["OPERYN_LINGER_BYTES": "1000000", "OPERYN_BODY_TIMEOUT_MS": "10000"])
        defer { gateway.terminate() }
        let socket = try #require(TestSocket(port: gateway.port))
        let size = 50 << 20
        let head = "POST /events/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(size)\r\n\r\n"
        let sent = await Task.detached { socket.sendAll(Array(head.utf8) + [UInt8](repeating: 32, count: size), seconds: 5) }.value
        #expect(!sent, "the gateway stops reading a body past the linger bound")
        try await gateway.stop()
    }
}
