import Foundation
import Logging
import NIOCore
import Prometheus
import Shared
import TestSupport
import Testing

@testable import Worker

/// Hot tenants overflow: the decision from the flow counts, the overflow stream read beside the partition's own at a
/// bounded share, and the counts the acknowledgements keep.
@Suite("Overflow (live Redis, SQLite)")
struct OverflowTests {
    static func controller(
        _ harness: WorkerHarness, lanes: OverflowLanes = OverflowLanes(), backlog: Int = 10_000, rate: Int = 0, cooldown: Int = 1,
        holder: String = "w1", registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), checkMilliseconds: Int = 500
    ) -> OverflowController {
        var settings = OverflowSettings()
        settings.checkMilliseconds = checkMilliseconds
        settings.backlogEvents = backlog
        settings.eventsPerSecond = rate
        settings.cooldownSeconds = cooldown
        return OverflowController(
            redis: harness.redis, keys: harness.keys, settings: settings, lanes: lanes, holder: holder,
            metrics: WorkerMetrics(factory: PrometheusMetricsFactory(registry: registry)), logger: Logger(label: "test"))
    }

    /// A backlog over the threshold sends the organization to overflow (its partition's overflow streams are read
    /// from then on, the metric counts it); drained, it stays for the cool-down and then goes back. Another worker
    /// without the lease only reads the decision.
    @Test func aBacklogOverTheThresholdOverflowsUntilItHasDrainedAndCooledDown() async throws {
        let harness = try WorkerHarness(partitions: 16)
        defer { Task { await harness.cleanUp() } }
        let keys = harness.keys
        let flow = keys.flow(partition: keys.partition(of: "hot"))
        _ = try await harness.redis.send(HSET(flow, fields: [("in:hot", "60000"), ("out:hot", "1000")]))
        _ = try await harness.redis.send(HSET(keys.flow(partition: keys.partition(of: "calm")), fields: [("in:calm", "9000"), ("out:calm", "0")]))
        // Something queued, so that the counts are not levelled while the test reads them.
        _ = try await harness.redis.send(XADD(keys.stream(.logs, partition: keys.partition(of: "hot")), fields: [(Array("x".utf8), Array("1".utf8))]))
        let lanes = OverflowLanes()
        let registry = PrometheusCollectorRegistry()
        // Checks a minute apart, so the lease (five checks long) outlives a machine stalled by the parallel suites.
        let decider = Self.controller(harness, lanes: lanes, registry: registry, checkMilliseconds: 60_000)
        await decider.check(now: .now())
        var tenants = try await OverflowTenant.read(redis: harness.redis, keys: keys)
        #expect(tenants.keys.sorted() == ["hot"], "59 000 queued passes 10 000; 9 000 does not")
        #expect(tenants["hot"]?.reason == .backlog && tenants["hot"]?.backlogEvents == 59_000)
        #expect(lanes.partitions == [keys.partition(of: "hot")])
        var text: [UInt8] = []
        registry.emit(into: &text)
        #expect(String(decoding: text, as: UTF8.self).contains("operyn_overflow_organizations 1"))
        #expect(String(decoding: text, as: UTF8.self).contains(#"operyn_overflow_entered_total{reason="backlog"} 1"#))

        // Another worker: the lease is taken, so it reads and does not decide.
        let other = Self.controller(harness, holder: "w2", checkMilliseconds: 60_000)
        _ = try await harness.redis.send(HSET(flow, fields: [("out:hot", "60000")]))
        await other.check(now: .now())
        #expect(try await OverflowTenant.read(redis: harness.redis, keys: keys)["hot"]?.backlogEvents == 59_000, "w2 did not decide")
        #expect(other.lanes.partitions == [keys.partition(of: "hot")])

        // Drained: still overflowing for the cool-down (1 s), then back.
        let start = NIODeadline.now()
        await decider.check(now: start)
        tenants = try await OverflowTenant.read(redis: harness.redis, keys: keys)
        #expect(tenants["hot"]?.backlogEvents == 0, "the figures are kept current")
        await decider.check(now: start + .milliseconds(500))
        #expect(try await OverflowTenant.read(redis: harness.redis, keys: keys)["hot"] != nil, "not before the cool-down")
        await decider.check(now: start + .milliseconds(1_100))
        #expect(try await OverflowTenant.read(redis: harness.redis, keys: keys).isEmpty)
        #expect(lanes.partitions.isEmpty)
    }

    /// A rate over the threshold overflows before any backlog has formed.
    @Test func aRateOverTheThresholdOverflows() async throws {
        let harness = try WorkerHarness(partitions: 16)
        defer { Task { await harness.cleanUp() } }
        let keys = harness.keys
        let flow = keys.flow(partition: keys.partition(of: "fast"))
        _ = try await harness.redis.send(XADD(keys.stream(.logs, partition: keys.partition(of: "fast")), fields: [(Array("x".utf8), Array("1".utf8))]))
        _ = try await harness.redis.send(HSET(flow, fields: [("in:fast", "1000"), ("out:fast", "1000")]))
        let decider = Self.controller(harness, backlog: 0, rate: 5_000)
        let start = NIODeadline.now()
        await decider.check(now: start)
        #expect(try await OverflowTenant.read(redis: harness.redis, keys: keys).isEmpty, "no rate before a second reading")
        _ = try await harness.redis.send(HSET(flow, fields: [("in:fast", "4000"), ("out:fast", "4000")]))
        await decider.check(now: start + .milliseconds(500))
        let tenant = try #require(try await OverflowTenant.read(redis: harness.redis, keys: keys)["fast"])
        #expect(tenant.reason == .rate && tenant.eventsPerSecond == 6_000 && tenant.backlogEvents == 0)
    }

    /// With a partition's streams all empty, every appended event is finished: organizations whose counts agree are
    /// removed from its flow hash and one whose `in` drifted ahead is set level; one whose `out` is ahead (its
    /// gateway has not reported yet) is left.
    @Test func anEmptyPartitionsFlowIsLevelled() async throws {
        let harness = try WorkerHarness(partitions: 16)
        defer { Task { await harness.cleanUp() } }
        let keys = harness.keys
        let partition = keys.partition(of: "a")
        let flow = keys.flow(partition: partition)
        _ = try await harness.redis.send(HSET(flow, fields: [("in:a", "10"), ("out:a", "10"), ("in:b", "25"), ("out:b", "20"), ("in:c", "5"), ("out:c", "7")]))
        let stream = keys.overflowStream(.metrics, partition: partition)
        _ = try await harness.redis.send(XADD(stream, fields: [(Array("x".utf8), Array("1".utf8))]))
        let decider = Self.controller(harness)
        try await decider.level(partition: partition)
        #expect(try await harness.redis.send(HGETALL(flow)).count == 6, "an entry in the overflow stream: nothing levelled")
        _ = try await harness.redis.send(DEL([stream]))
        try await decider.level(partition: partition)
        #expect(try await harness.redis.send(HGETALL(flow)) == ["in:b": "25", "out:b": "25", "in:c": "5", "out:c": "7"])
    }

    /// One organization of a partition has a backlog queued in the partition's overflow stream; the events of 20
    /// others of the same partition, sent once it is being drained, are stored after a few batches of it, and the
    /// overflow stream still drains: every event once, and the flow's `out` counts them.
    @Test func theRestOfAPartitionPassesItsOverflowingOrganization() async throws {
        let harness = try WorkerHarness(partitions: 1)
        defer { Task { await harness.cleanUp() } }
        let backlog = (0..<20_000).map { Sample.log(service: "hot", org: "hot_org", message: "backlog \($0)") }
        try await harness.publish(backlog, as: .chunks(perChunk: 100), overflow: true)
        let lanes = OverflowLanes()
        lanes.setOverflowing([0])
        let order = OrderSink(inner: harness.sink)
        let consumer = harness.consumer(sink: order, lanes: lanes)
        let task = Task { try await consumer.run() }
        defer { task.cancel() }
        let starting = NIODeadline.now()
        while order.stored.isEmpty, NIODeadline.now() - starting < .seconds(60) { try await Task.sleep(for: .milliseconds(10)) }
        let storedBefore = order.stored.count
        let quiet = (0..<20).map { "quiet_\($0)" }
        try await harness.publish(quiet.map { Sample.log(service: "svc", org: $0, message: "quiet") })
        let sent = NIODeadline.now()
        while order.stored.count < backlog.count + quiet.count, NIODeadline.now() - sent < .seconds(90) { try await Task.sleep(for: .milliseconds(10)) }
        task.cancel()
        _ = await task.result
        let stored = order.stored
        #expect(stored.count == backlog.count + quiet.count, "every event stored once")
        let lastQuiet = try #require(stored.lastIndex { $0 != "hot_org" })
        let backlogAhead = stored[..<lastQuiet].filter { $0 == "hot_org" }.count - storedBefore
        #expect(backlogAhead <= 3_000, "\(backlogAhead) backlog events were stored between their sending and the last of them")
        #expect(storedBefore + backlogAhead < backlog.count - 10_000, "long before the backlog was drained")
        let flow = try await harness.redis.send(HGETALL(harness.keys.flow(partition: 0)))
        #expect(flow["out:hot_org"] == "20000" && flow["in:hot_org"] == "20000" && flow["out:quiet_3"] == "1")
    }

    /// On a Redis Cluster: each partition's overflow streams are read in a command of their own (in its slot), and
    /// acknowledged and counted in the partition's flow there.
    @Test func overflowStreamsAreReadOnACluster() async throws {
        let harness = try WorkerHarness(redisURL: TestRedis.clusterURL)
        defer { Task { await harness.cleanUp() } }
        let keys = harness.keys
        let orgs = ["hot"] + (0..<200).map { "org-\($0)" }.filter { keys.partition(of: $0) != keys.partition(of: "hot") }.prefix(1)
        let hot = (0..<2_000).map { Sample.log(org: "hot", message: "hot \($0)") }
        try await harness.publish(hot, as: .chunks(perChunk: 100), overflow: true)
        let other = (0..<50).map { Sample.log(org: orgs[1], message: "other \($0)") }
        try await harness.publish(other, as: .chunks(perChunk: 10), overflow: true)
        let lanes = OverflowLanes()
        lanes.setOverflowing(Set(orgs.map { keys.partition(of: $0) }))
        #expect(try await harness.run(harness.consumer(lanes: lanes), seconds: 60) { try harness.count("logs") == hot.count + other.count })
        for org in orgs {
            let flow = try await harness.redis.send(HGETALL(keys.flow(partition: keys.partition(of: org))))
            #expect(flow["out:\(org)"] == flow["in:\(org)"] && flow["in:\(org)"] != nil, "\(org): \(flow)")
        }
    }

    /// The overflow streams take their share of a batch while another stream is deep, all of it while none is, and
    /// the others the rest.
    @Test func overflowStreamsTakeABoundedShare() {
        let shares = ReadShares()
        let keys = RedisKeys(prefix: "t", partitions: 4)
        let overflow = keys.overflowIndex(of: 1)
        func entries(_ counts: [Int: Int]) -> [ReadEntry] {
            counts.flatMap { partition, count in
                (0..<count).map { _ in ReadEntry(kind: .logs, entry: StreamEntry(id: "0-1", fields: nil), partition: partition) }
            }
        }
        #expect(shares.counts(wanted: (1_000, 1_000), overflowPercent: 25) == (1_000, 1_000))
        shares.observe(entries([overflow: 1_000, 2: 3]), counts: (1_000, 1_000), isOverflow: keys.isOverflow)
        #expect(shares.counts(wanted: (1_000, 1_000), overflowPercent: 25) == (750, 1_000), "only the overflow is deep: it has the batch")
        shares.observe(entries([overflow: 1_000, 2: 750]), counts: (750, 1_000), isOverflow: keys.isOverflow)
        #expect(shares.counts(wanted: (1_000, 1_000), overflowPercent: 25) == (750, 250), "both deep: a quarter for the overflow")
        shares.observe(entries([2: 750]), counts: (750, 250), isOverflow: keys.isOverflow)
        #expect(shares.counts(wanted: (1_000, 1_000), overflowPercent: 25) == (1_000, 250))
    }
}

/// `operyn_worker_event_age_seconds`: each committed event's age, accepted → stored, per kind.
@Suite("Event age at commit (live Redis, SQLite)")
struct EventAgeTests {
    @Test func eachCommittedEventsAgeIsRecorded() async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        let now = Timestamp.now.milliseconds
        // Two minutes old, and fresh: buckets far enough apart that a worker slow to start on a loaded machine (up to
        // 30 s) does not move either.
        var old = Sample.log(message: "two minutes old")
        old.receivedAt = Timestamp(milliseconds: now - 120_000)
        var fresh = Sample.log(message: "fresh")
        fresh.receivedAt = Timestamp(milliseconds: now)
        try await harness.publish(
            [old, fresh, fresh].enumerated().map { index, event in
                var event = event
                event.id = "\(event.id)-\(index)"
                return event
            })
        let registry = PrometheusCollectorRegistry()
        #expect(try await harness.run(harness.consumer(registry: registry)) { try harness.count("logs") == 3 })
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n").filter {
            $0.hasPrefix("operyn_worker_event_age_seconds") && $0.contains(#"kind="logs""#)
        }
        func value(_ prefix: String) -> String? { lines.first { $0.hasPrefix(prefix) }.map { String($0.split(separator: " ").last!) } }
        #expect(value("operyn_worker_event_age_seconds_count") == "3")
        #expect(value(#"operyn_worker_event_age_seconds_bucket{kind="logs",le="30.0""#) == "2", "\(lines)")
        #expect(value(#"operyn_worker_event_age_seconds_bucket{kind="logs",le="60.0""#) == "2", "\(lines)")
        #expect(value(#"operyn_worker_event_age_seconds_bucket{kind="logs",le="300.0""#) == "3", "\(lines)")
    }
}
