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

/// The gateway's side of the overflow, on the real Redis: an overflowing organization's events go to its partition's
/// overflow stream, every organization's appends are counted in its partition's flow, and `GET /usage` tells an
/// organization whether it overflows.
@Suite("Overflow routing (live Redis)")
struct OverflowRoutingTests {
    @Test(arguments: [1, 16])
    func anOverflowingOrganizationsEventsGoToItsOverflowStream(partitions: Int) async throws {
        let prefix = TestRedis.prefix("overflow-routing-\(partitions)")
        var configuration = GatewayConfiguration()
        configuration.grpcPort = 0
        configuration.redis = try TestRedis.configuration()
        configuration.keys = RedisKeys(prefix: prefix, partitions: partitions)
        let keys = configuration.keys
        let redis = RedisClient(configuration: configuration.redis, group: MultiThreadedEventLoopGroup.singleton)
        let tenant = OverflowTenant(since: 1_765_000_000_000, reason: .backlog, backlogEvents: 80_000, eventsPerSecond: 12_000)
        _ = try await redis.send(HSET(keys.overflowTenants, fields: [("hot", tenant.value)]))
        let app = buildApplication(configuration, redis: redis, registry: PrometheusCollectorRegistry(), logger: Logger(label: "test"))
        try await app.test(.live) { client in
            // The gateway reads who overflows as it starts, and every second after.
            try await Task.sleep(for: .milliseconds(1_500))
            for org in ["hot", "cool"] {
                let response = try await client.execute(
                    uri: "/events/logs/batch", method: .post, headers: [.contentType: "application/json", .organizationID: org],
                    body: ByteBuffer(
                        string:
                            #"[{"service":"api","level":"info","message":"a"},{"service":"api","level":"info","message":"b"},{"service":"api","level":"info","message":"c"}]"#
                    ))
                #expect(response.status == .accepted)
            }
            let hot = try await client.execute(uri: "/usage", method: .get, headers: [.organizationID: "hot"])
            let usage = try JSONParser.parse(Array(hot.body.readableBytesView))
            #expect(usage["overflow"] == tenant.json)
            let cool = try await client.execute(uri: "/usage", method: .get, headers: [.organizationID: "cool"])
            #expect(try JSONParser.parse(Array(cool.body.readableBytesView))["overflow"] == .null)
            // The counts reach Redis within a quarter of a second (more on a loaded machine).
            try await Task.sleep(for: .milliseconds(1_500))
        }
        let hotEntries = try await redis.send(XRANGE(keys.overflowStream(.logs, partition: keys.partition(of: "hot"))))
        #expect(hotEntries.count == 1 && hotEntries.first?.value("org") == Array("hot".utf8))
        #expect(
            try await redis.send(XLEN(keys.stream(.logs, partition: keys.partition(of: "hot"))))
                == (keys.partition(of: "hot") == keys.partition(of: "cool") ? 1 : 0))
        let coolEntries = try await redis.send(XRANGE(keys.stream(.logs, partition: keys.partition(of: "cool"))))
        #expect(coolEntries.count == 1 && coolEntries.first?.value("org") == Array("cool".utf8))
        #expect(try await redis.send(HGET(keys.flow(partition: keys.partition(of: "hot")), field: "in:hot")) == "3")
        #expect(try await redis.send(HGET(keys.flow(partition: keys.partition(of: "cool")), field: "in:cool")) == "3")
        _ = try await redis.send(DEL(keys.allStreams))
        for key in [keys.overflowTenants] + (0..<partitions).map({ keys.flow(partition: $0) }) { _ = try await redis.send(DEL([key])) }
        redis.shutdown()
    }

    /// An organization this gateway sees over the rate threshold overflows here at once, for two seconds after the
    /// last interval over it; the workers' decision holds on its own.
    @Test func aFloodSeenByOneGatewayOverflowsThereAtOnce() {
        let flow = TenantFlow(rateThreshold: 1_000)
        let start = NIODeadline.now()
        flow.observe([:], now: start)
        flow.observe(["hot": 500, "cool": 100], now: start + .milliseconds(250))
        #expect(flow.overflows("hot") && !flow.overflows("cool"), "2 000 events/s passes 1 000; 400 does not")
        flow.observe(["hot": 10], now: start + .milliseconds(1_500))
        #expect(flow.overflows("hot"), "kept for two seconds")
        flow.observe([:], now: start + .milliseconds(2_300))
        #expect(!flow.overflows("hot"))
        flow.setOverflowing(["cool"])
        #expect(flow.overflows("cool") && !flow.overflows("hot"))
        flow.setOverflowing([])
        #expect(!flow.overflows("cool"))
        // Within an interval: from the append that passes a quarter of a second's worth (250 events at 1 000/s).
        let counting = TenantFlow(rateThreshold: 1_000)
        counting.appended("flood", events: 200)
        #expect(!counting.overflows("flood"))
        counting.appended("flood", events: 60)
        #expect(counting.overflows("flood") && !counting.overflows("other"))
        let off = TenantFlow(rateThreshold: 0)
        off.observe([:], now: start)
        off.observe(["hot": 1_000_000], now: start + .milliseconds(250))
        #expect(!off.overflows("hot"), "0: only the workers decide")
    }

    /// Requests of several organizations read in one event-loop tick share entries per organization and kind, and
    /// each entry goes to its own organization's stream: its partition's, or its overflow stream.
    @Test func eachEntryOfATickGoesToItsOrganizationsStream() async throws {
        let keys = RedisKeys(prefix: TestRedis.prefix("tick-streams"), partitions: 16)
        let redis = try TestRedis.client()
        defer { redis.shutdown() }
        let flow = TenantFlow()
        flow.setOverflowing(["hot"])
        let orgs = ["hot"] + (0..<200).map { "org-\($0)" }.filter { keys.partition(of: $0) != keys.partition(of: "hot") }.prefix(3)
        #expect(Set(orgs.map { keys.partition(of: $0) }).count >= 2)
        let publisher = RedisEventPublisher(
            redis: redis, keys: keys, metrics: GatewayMetrics(factory: PrometheusMetricsFactory(registry: PrometheusCollectorRegistry())), flow: flow)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let event = try EventValidator().event(.logs, body: Array(#"{"service":"api","level":"info","message":"m"}"#.utf8))
        let answers = try await loop.submit {
            // One tick: every request before the flush the first one scheduled.
            orgs.flatMap { org in
                (0..<2).map { _ in publisher.publish([QueuedEvent(id: EventID.make(milliseconds: 1), org: org, receivedAt: .now, event: event)], on: loop) }
            }
        }.get()
        for answer in answers { try await answer.get() }
        for org in orgs {
            let partition = keys.partition(of: org)
            let stream = org == "hot" ? keys.overflowStream(.logs, partition: partition) : keys.stream(.logs, partition: partition)
            let entries = try await redis.send(XRANGE(stream)).filter { $0.value("org") == Array(org.utf8) }
            #expect(entries.count == 1 && entries.first.map { StreamEntryCodec.eventCount($0.fields!) } == 2, "\(org): one entry of two events in \(stream)")
        }
        #expect(try await redis.send(XLEN(keys.stream(.logs, partition: keys.partition(of: "hot")))) == 0, "nothing of hot's in its partition's stream")
        _ = try await redis.send(DEL(keys.allStreams))
    }
}
