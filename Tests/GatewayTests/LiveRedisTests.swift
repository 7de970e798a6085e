import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOPosix
import Prometheus
import Shared
import TestSupport
import Testing

@testable import Gateway

/// The gateway on the real Redis: the one the test command starts, or a private one to break.
@Suite("Gateway on a real Redis")
struct LiveRedisTests {
    func application(redisURL: String, prefix: String, commandTimeout: Int = TestRedis.patientTimeout) throws -> (some ApplicationProtocol, RedisClient) {
        var configuration = GatewayConfiguration()
        configuration.grpcPort = 0
        configuration.redis = try TestRedis.configuration(url: redisURL, commandTimeout: commandTimeout)
        configuration.keys = RedisKeys(prefix: prefix)
        let redis = RedisClient(configuration: configuration.redis, group: MultiThreadedEventLoopGroup.singleton)
        return (buildApplication(configuration, redis: redis, registry: PrometheusCollectorRegistry(), logger: Logger(label: "test")), redis)
    }

    @Test func eventsLandInTheirStreamsWithEveryField() async throws {
        let prefix = TestRedis.prefix()
        let keys = RedisKeys(prefix: prefix)
        let (app, redis) = try application(redisURL: TestRedis.url, prefix: prefix)
        let ids = try await app.test(.live) { client in
            var ids: [EventKind: String] = [:]
            let headers: HTTPFields = [.contentType: "application/json", .organizationID: "org_live"]
            for (kind, path, body) in [
                (EventKind.logs, "/events/logs", specLog), (.metrics, "/events/metrics", specMetric), (.deployments, "/events/deployments", specDeployment),
            ] {
                let response = try await client.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: body))
                #expect(response.status == .accepted)
                if case .string(let id) = try #require(try JSONParser.parse(Array(response.body.readableBytesView))["id"]) { ids[kind] = id }
            }
            let batch = try await client.execute(uri: "/events/logs/batch", method: .post, headers: headers, body: ByteBuffer(string: specBatch))
            #expect(batch.status == .accepted)
            return ids
        }
        let validator = EventValidator()
        for (kind, body) in [(EventKind.logs, specLog), (.metrics, specMetric), (.deployments, specDeployment)] {
            let entry = try #require(try await redis.send(XRANGE(keys.stream(kind, partition: keys.partition(of: "org_live")))).first)
            let fields = try #require(entry.fields)
            #expect(fields.map { String(decoding: $0.name, as: UTF8.self) } == ["v", "kind", "org", "received_at", "count", "events"], "a chunk")
            let queued = try #require(try StreamEntryCodec.decodeEvents(fields).first)
            #expect(queued.id == ids[kind] && queued.org == "org_live")
            let expected = try validator.event(kind, body: Array(body.utf8), now: queued.event.timestampForTest)
            #expect(queued.event == expected)
        }
        let logs = try await redis.send(XRANGE(keys.stream(.logs, partition: keys.partition(of: "org_live"))))
        #expect(logs.count == 2, "one entry per request")
        #expect(try StreamEntryCodec.decodeEvents(logs[1].fields!).count == 2, "the batch's two events in one chunk")
        _ = try await redis.send(DEL(keys.allStreams))
        redis.shutdown()
    }

    /// The largest batch the limits allow becomes several chunks, appended all or nothing in one transaction.
    @Test func aTenThousandEventBatchBecomesBoundedChunks() async throws {
        let prefix = TestRedis.prefix()
        let keys = RedisKeys(prefix: prefix)
        let (app, redis) = try application(redisURL: TestRedis.url, prefix: prefix)
        let message = String(repeating: "m", count: 100)
        let body = "[" + (0..<10_000).map { #"{"service":"api","level":"info","message":"\#(message) \#($0)"}"# }.joined(separator: ",") + "]"
        try await app.test(.live) { client in
            let response = try await client.post("/events/logs/batch", body)
            #expect(response.status == .accepted && response.text == #"{"accepted":10000}"#)
        }
        let entries = try await redis.send(XRANGE(keys.stream(.logs, partition: keys.partition(of: "default"))))
        #expect(entries.count > 4)
        var events: [QueuedEvent] = []
        for entry in entries {
            #expect((entry.value("events")?.count ?? .max) <= StreamEntryCodec.maxChunkBytes)
            events += try StreamEntryCodec.decodeEvents(entry.fields!)
        }
        #expect(events.count == 10_000 && Set(events.map(\.id)).count == 10_000)
        #expect(
            events.enumerated().allSatisfy { index, event in
                if case .log(let log) = event.event { return log.message == "\(message) \(index)" }
                return false
            }, "in order")
        _ = try await redis.send(DEL(keys.allStreams))
        redis.shutdown()
    }

    /// Redis refusing the append (out of memory): 503, and nothing of the request in the stream, for a batch in one
    /// chunk (one `XADD`) and for one of several chunks (`MULTI`/`EXEC`: Redis refuses the queued `XADD`s, so `EXEC`
    /// runs none).
    @Test func aBatchRefusedByRedisLeavesNothingInTheStream() async throws {
        let server = try await RedisServer(arguments: ["--maxmemory-policy", "noeviction"])
        let prefix = TestRedis.prefix()
        let (app, redis) = try application(redisURL: server.url, prefix: prefix)
        // Fill 4 MiB, then allow 1 MiB: every command that may grow memory is refused with OOM, whatever the buffers
        // freed meanwhile.
        let blob = [UInt8](repeating: 120, count: 32 * 1024)
        for index in 0..<128 { _ = try await redis.send(SET("fill:\(index)", value: blob)) }
        _ = try await redis.send(RawCommand("CONFIG", "SET", "maxmemory", "1mb"))
        let large =
            "[" + (0..<3_000).map { #"{"service":"api","level":"info","message":"\#(String(repeating: "m", count: 100)) \#($0)"}"# }.joined(separator: ",")
            + "]"
        try await app.test(.live) { client in
            for body in [specBatch, large] {
                let response = try await client.post("/events/logs/batch", body)
                #expect(response.status == .serviceUnavailable && response.headers[.retryAfter] != nil)
                #expect(!response.text.contains("OOM"), "Redis text never reaches the client")
            }
        }
        #expect(try await redis.send(RawCommand(arguments: (["EXISTS"] + RedisKeys(prefix: prefix).allStreams).map { Array($0.utf8) })) == .integer(0))
        redis.shutdown()
    }

    @Test func redisStoppedGives503FastThenRecovers() async throws {
        let server = try await RedisServer()
        let (app, redis) = try application(redisURL: server.url, prefix: TestRedis.prefix(), commandTimeout: 500)
        _ = try await TestRedis.connected(redis)
        try await app.test(.live) { client in
            // The first append may meet a machine stalled by the parallel suites for longer than the 500 ms timeout.
            #expect(try await acceptedWithin(seconds: 10) { try await client.post("/events/logs", specLog).status })
            server.stop()
            var statuses: [HTTPResponse.Status] = []
            let elapsed = try await milliseconds {
                for _ in 0..<3 { statuses.append(try await client.post("/events/logs", specLog).status) }
            }
            #expect(statuses.allSatisfy { $0 == .serviceUnavailable })
            #expect(elapsed < 2_000, "three requests against a stopped Redis took \(elapsed) ms")
            try await server.start()
            #expect(try await acceptedWithin(seconds: 10) { try await client.post("/events/logs", specLog).status })
        }
        redis.shutdown()
    }
}

/// Whether `post` answers 202 within `seconds`, asked again every 100 ms.
private func acceptedWithin(seconds: Int, _ post: () async throws -> HTTPResponse.Status) async throws -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if try await post() == .accepted { return true }
        try await Task.sleep(for: .milliseconds(100))
    }
    return false
}

extension IngestEvent {
    /// The event's timestamp, to validate the same body again with the same server time.
    var timestampForTest: Timestamp {
        switch self {
        case .log(let event): event.timestamp
        case .metric(let event): event.timestamp
        case .deployment(let event): event.timestamp
        }
    }
}
