import HTTPTypes
import Logging
import Metrics
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Shared
import Synchronization
import TestSupport
import Testing

@testable import Gateway

/// The ingestion handler's ordering on one connection, on a test channel: pipelined requests, requests passed on
/// to Hummingbird, shutdown while an append is in flight.
@Suite("Ingestion handler: order on a connection")
struct IngestHandlerTests {
    /// A publisher whose appends wait until the test completes them.
    final class HeldPublisher: EventPublisher {
        private let held = Mutex<[(events: [QueuedEvent], promise: EventLoopPromise<Void>)]>([])

        func publish(_ events: [QueuedEvent], on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
            let promise = eventLoop.makePromise(of: Void.self)
            held.withLock { $0.append((events, promise)) }
            return promise.futureResult
        }

        /// No limits here: held as any append.
        func publish(
            _ events: [QueuedEvent], bytes: Int, limit: RateLimit, idempotency: GuardedAppend.Idempotency?, on eventLoop: any EventLoop
        ) -> EventLoopFuture<PublishDecision> {
            publishUnlimited(events, on: eventLoop)
        }

        func isReady() async -> Bool { true }

        var count: Int { held.withLock { $0.count } }

        /// Completes the oldest held append (waiting up to 5 s for one to be held); answers its events.
        @discardableResult
        func release(failing: Bool = false) async throws -> [QueuedEvent] {
            for _ in 0..<500 where count == 0 { try await Task.sleep(for: .milliseconds(10)) }
            let (events, promise) = try held.withLock { held in
                guard !held.isEmpty else { throw TestFailure("no append to release") }
                return held.removeFirst()
            }
            if failing { promise.fail(PublishError(reason: "test")) } else { promise.succeed() }
            return events
        }
    }

    /// Organization keys whose lookups wait until the test answers them.
    final class HeldDirectory: APIKeyDirectory {
        private let held = Mutex<[EventLoopPromise<APIKeyRecord?>]>([])

        func record(sha256 digest: String) async throws(RedisError) -> APIKeyRecord? { nil }

        func record(sha256 digest: String, on eventLoop: any EventLoop) -> EventLoopFuture<APIKeyRecord?> {
            let promise = eventLoop.makePromise(of: APIKeyRecord?.self)
            held.withLock { $0.append(promise) }
            return promise.futureResult
        }

        var count: Int { held.withLock { $0.count } }

        /// Answers the oldest lookup with a key of `organization`.
        func answer(organization: String) throws {
            let promise = try held.withLock { held in
                guard !held.isEmpty else { throw TestFailure("no lookup to answer") }
                return held.removeFirst()
            }
            promise.succeed(APIKeyRecord(id: "k1", organization: organization, createdAt: 0, expiresAt: nil))
        }
    }

    struct Connection {
        let channel = NIOAsyncTestingChannel()
        let publisher = HeldPublisher()
        let passedOn = PassedOn()
        let directory = HeldDirectory()

        init(limits: EventLimits = EventLimits()) async throws {
            var configuration = GatewayConfiguration()
            configuration.apiKey = "server-key"
            configuration.limits = limits
            let dependencies = GatewayDependencies(
                publisher: publisher, backlog: Backlog(highWater: 1_000), registry: .init(), metrics: GatewayMetrics(factory: NOOPMetricsHandler.instance),
                organizationKeys: directory)
            let handler = IngestHandler(
                service: buildIngestService(configuration, dependencies), metrics: IngestMetrics(factory: NOOPMetricsHandler.instance),
                logger: Logger(label: "test"))
            try await channel.pipeline.addHandlers([handler, passedOn])
            try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9))
        }

        func send(_ method: HTTPRequest.Method, _ path: String, _ body: String? = nil, headers: HTTPFields = [.apiKey: "server-key"]) async throws {
            try await channel.writeInbound(HTTPRequestPart.head(HTTPRequest(method: method, scheme: nil, authority: nil, path: path, headerFields: headers)))
            if let body { try await channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: body))) }
            try await channel.writeInbound(HTTPRequestPart.end(nil))
        }

        /// The server's graceful shutdown reaching this connection.
        func quiesce() async throws {
            let channel = channel
            try await channel.testingEventLoop.executeInContext { channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
        }

        /// The next whole answer, waiting for it.
        func nextAnswer() async throws -> (head: HTTPResponse, body: String) {
            try await answer(waiting: true)!
        }

        /// The next whole answer written, or `nil` when none is there yet.
        func answer(waiting: Bool = false) async throws -> (head: HTTPResponse, body: String)? {
            let first: HTTPResponsePart
            if waiting {
                first = try await channel.waitForOutboundWrite(as: HTTPResponsePart.self)
            } else {
                guard let written = try await channel.readOutbound(as: HTTPResponsePart.self) else { return nil }
                first = written
            }
            guard case .head(let head) = first else { throw TestFailure("expected a head, got \(first)") }
            var body = ""
            while let part = try await channel.readOutbound(as: HTTPResponsePart.self) {
                switch part {
                case .body(let bytes): body += String(buffer: bytes)
                case .end: return (head, body)
                case .head: throw TestFailure("a second head")
                }
            }
            throw TestFailure("no end")
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let connection = try await Connection()
        try await connection.send(.post, "/events/logs", specLog)
        try await connection.send(.post, "/events/logs/batch", specBatch)
        try await connection.send(.post, "/events/metrics", #"{"name":"m"}"#)  // invalid: no value
        // Only the first is in hand; the others wait for its answer.
        #expect(connection.publisher.count == 1)
        #expect(try await connection.answer() == nil)

        let first = try await connection.publisher.release()
        let answer1 = try await connection.nextAnswer()
        #expect(answer1.head.status == .accepted && answer1.body.contains(first[0].id))
        #expect(answer1.head.headerFields[.contentLength] == String(answer1.body.utf8.count))
        #expect(answer1.head.headerFields[.date] != nil && answer1.head.headerFields[.server] == "operyn-gateway")

        // The batch is taken next; the invalid metric only once the batch is answered.
        #expect(connection.publisher.count == 1)
        #expect(try await connection.answer() == nil)
        #expect(try await connection.publisher.release(failing: true).count == 2)
        let answer2 = try await connection.nextAnswer()
        #expect(answer2.head.status == .serviceUnavailable && answer2.head.headerFields[.retryAfter] == "1")
        let answer3 = try await connection.nextAnswer()
        #expect(answer3.head.status == .badRequest && answer3.body.contains("Invalid metric event"))
        #expect(connection.publisher.count == 0)
        #expect(connection.passedOn.heads.load(ordering: .relaxed) == 0)
    }

    @Test func otherRequestsArePassedOnInTurn() async throws {
        let connection = try await Connection()
        try await connection.send(.post, "/events/logs", specLog)
        try await connection.send(.get, "/health/live")
        try await connection.send(.post, "/events/deployments", specDeployment)
        #expect(connection.passedOn.heads.load(ordering: .relaxed) == 0)  // waits for the answer before it

        try await connection.publisher.release()
        #expect(try await connection.nextAnswer().head.status == .accepted)
        #expect(connection.passedOn.heads.load(ordering: .relaxed) == 1)
        #expect(connection.passedOn.ends.load(ordering: .relaxed) == 1)
        // Hummingbird has not answered yet: the deployment waits.
        #expect(connection.publisher.count == 0)
        try await connection.channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
        try await connection.channel.writeOutbound(HTTPResponsePart.end(nil))
        #expect(try await connection.nextAnswer().head.status == .ok)
        #expect(connection.publisher.count == 1)
        try await connection.publisher.release()
        #expect(try await connection.nextAnswer().head.status == .accepted)
    }

    @Test func aWrongMethodOrPathIsPassedOn() async throws {
        let connection = try await Connection()
        try await connection.send(.get, "/events/logs")
        try await connection.send(.post, "/events/traces", "{}")
        try await connection.channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .methodNotAllowed)))
        try await connection.channel.writeOutbound(HTTPResponsePart.end(nil))
        #expect(connection.passedOn.heads.load(ordering: .relaxed) == 2)
        #expect(connection.publisher.count == 0)
    }

    @Test func pathsMatchAsTheRouterMatchesThem() {
        func route(_ method: HTTPRequest.Method, _ path: String) -> IngestRoute? {
            IngestRoute.match(HTTPRequest(method: method, scheme: nil, authority: nil, path: path))?.route
        }
        #expect(route(.post, "/events/logs") == .logs)
        #expect(route(.post, "/events/logs?x=1") == .logs)
        #expect(route(.post, "//events//logs/") == .logs)
        #expect(route(.post, "/events/logs/batch/") == .logsBatch)
        #expect(route(.post, "/events/metrics") == .metrics && route(.post, "/events/deployments") == .deployments)
        for path in ["/events", "/events/log", "/events/logs/batch/x", "/Events/logs", "/api/events/logs", "/events/metrics/batch"] {
            #expect(route(.post, path) == nil, "\(path)")
        }
        #expect(route(.get, "/events/logs") == nil && route(.put, "/events/logs") == nil)
        #expect(route(.post, "/_bulk") == .bulk && route(.put, "/_bulk?refresh=false") == .bulk && route(.get, "/_bulk") == nil)
        let indexed = IngestRoute.match(HTTPRequest(method: .post, scheme: nil, authority: nil, path: "//logs-app%2Dx/_bulk/?pipeline=p"))
        #expect(indexed?.route == .indexBulk && indexed?.parameter == "logs-app-x" && indexed?.path == "/logs-app%2Dx/_bulk")
        #expect(route(.post, "/a/b/_bulk") == nil && route(.post, "/_bulk/x") == nil)
        #expect(IngestRoute.methods(for: "/x/_bulk") == [.post, .put] && IngestRoute.methods(for: "/events/logs") == [.post])
    }

    @Test func shutdownWaitsForTheAnswerInHandThenCloses() async throws {
        let connection = try await Connection()
        try await connection.send(.post, "/events/logs", specLog)
        try await connection.quiesce()
        #expect(connection.passedOn.quiesceEvents.load(ordering: .relaxed) == 0)
        #expect(connection.channel.isActive)
        try await connection.publisher.release()
        let answer = try await connection.nextAnswer()
        #expect(answer.head.status == .accepted && answer.head.headerFields[.connection] == "close")
        try await connection.channel.closeFuture.get()
    }

    @Test func aKeyLookupInFlightKeepsTheOrderAndItsOrganization() async throws {
        let connection = try await Connection()
        let key = "opk_" + String(repeating: "a", count: 40)
        try await connection.send(.post, "/events/logs", specLog, headers: [.apiKey: key])
        try await connection.send(.post, "/events/metrics", specMetric)
        // The key is not cached: its lookup waits for Redis; the request behind it waits too.
        #expect(connection.directory.count == 1 && connection.publisher.count == 0)
        #expect(try await connection.answer() == nil)
        try connection.directory.answer(organization: "acme")
        let events = try await connection.publisher.release()
        #expect(events.map(\.org) == ["acme"])
        #expect(try await connection.nextAnswer().head.status == .accepted)
        #expect(try await connection.publisher.release().map(\.org) == ["default"])
        #expect(try await connection.nextAnswer().head.status == .accepted)
    }

    @Test func anEarlyRefusalDropsTheRestOfItsBodyThenServesTheNextRequest() async throws {
        var limits = EventLimits()
        limits.maxBodyBytes = 100
        let connection = try await Connection(limits: limits)
        let channel = connection.channel
        var fields: HTTPFields = [.apiKey: "server-key", .contentLength: "5000"]
        fields[.contentType] = "application/json"
        try await channel.writeInbound(
            HTTPRequestPart.head(HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/events/logs", headerFields: fields)))
        // Answered from the head alone, before any of the body.
        let refused = try await connection.nextAnswer()
        #expect(refused.head.status == .contentTooLarge && refused.body.contains("100 bytes"))
        for _ in 0..<5 { try await channel.writeInbound(HTTPRequestPart.body(ByteBuffer(repeating: UInt8(ascii: "x"), count: 1_000))) }
        try await channel.writeInbound(HTTPRequestPart.end(nil))
        #expect(try await connection.answer() == nil)
        #expect(connection.publisher.count == 0)
        try await connection.send(.post, "/events/logs", #"{"service":"s","level":"info","message":"m"}"#)  // within the 100 bytes
        try await connection.publisher.release()
        #expect(try await connection.nextAnswer().head.status == .accepted)
    }

    @Test func shutdownBetweenRequestsOrWhileHummingbirdAnswersIsPassedOn() async throws {
        let connection = try await Connection()
        try await connection.quiesce()
        #expect(connection.passedOn.quiesceEvents.load(ordering: .relaxed) == 1)
        try await connection.send(.get, "/health/live")
        try await connection.quiesce()
        #expect(connection.passedOn.quiesceEvents.load(ordering: .relaxed) == 2)
    }

    @Test func connectionCloseIsHonoured() async throws {
        let connection = try await Connection()
        try await connection.send(.post, "/events/logs", specLog, headers: [.apiKey: "server-key", .connection: "close"])
        try await connection.send(.post, "/events/logs", specLog)
        try await connection.publisher.release()
        #expect(try await connection.nextAnswer().head.headerFields[.connection] == "close")
        try await connection.channel.closeFuture.get()
        #expect(connection.publisher.count == 0)  // the request after it is never taken
    }
}

/// The same order through the built gateway's whole pipeline, over a real socket and Redis.
@Suite("Ingestion on the event loop (built gateway)")
struct IngestPipelineTests {
    @Test func pipelinedRequestsOfBothKindsAreAnsweredInOrder() async throws {
        let gateway = try await ConnectionGuardTests.Gateway()
        defer { gateway.terminate() }
        let socket = try #require(TestSocket(port: gateway.port))
        func post(_ path: String, _ body: String, close: Bool = false) -> String {
            "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
                + (close ? "Connection: close\r\n" : "") + "\r\n\(body)"
        }
        let requests =
            post("/events/logs", specLog) + "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n" + post("/events/logs/batch", specBatch)
            + post("/events/metrics", #"{"name":"m"}"#) + "GET /events/logs HTTP/1.1\r\nHost: x\r\n\r\n"
            + post("/events/deployments", specDeployment, close: true)
        #expect(socket.sendAll(requests))
        let (text, closed) = socket.receiveAll(seconds: 10)
        let statuses = text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
        #expect(statuses == ["202", "200", "202", "400", "405", "202"], "\(text)")
        #expect(closed)
        try await gateway.stop()
    }
}
