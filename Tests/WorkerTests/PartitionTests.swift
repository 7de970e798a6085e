import Foundation
import NIOCore
import Shared
import Sinks
import Synchronization
import TestSupport
import Testing

@testable import Worker

/// Partitions on one Redis: workers read every partition fairly, and the streams of the layout before partitions
/// until they are empty.
@Suite("Partitions on one server (live Redis, SQLite)")
struct PartitionTests {
    /// Organizations whose partition is not `hot`'s, of `count`.
    static func organizations(avoiding hot: String, keys: RedisKeys, count: Int) -> [String] {
        var found: [String] = []
        var n = 0
        while found.count < count {
            let org = "quiet_\(n)"
            if keys.partition(of: org) != keys.partition(of: hot) { found.append(org) }
            n += 1
        }
        return found
    }

    /// One organization's backlog fills its partition; events of 20 others, sent once it is being drained, are
    /// stored after a few batches of it, long before it is drained, where one stream per kind stored them after the
    /// whole backlog. Judged by the order the events reached the database, not by time: the machine's other tests slow
    /// the worker down as a whole.
    @Test func aDeepPartitionDoesNotDelayTheOthers() async throws {
        let harness = try WorkerHarness(partitions: 16)
        defer { Task { await harness.cleanUp() } }
        #expect(!harness.keys.isUnpartitioned)
        let backlog = (0..<30_000).map { Sample.log(service: "hot", org: "hot_org", message: "backlog \($0)") }
        try await harness.publish(backlog, as: .chunks(perChunk: 100))
        let quiet = Self.organizations(avoiding: "hot_org", keys: harness.keys, count: 20)
        let order = OrderSink(inner: harness.sink)
        let consumer = harness.consumer(sink: order)
        let task = Task { try await consumer.run() }
        defer { task.cancel() }
        // Once the backlog is being drained (a worker starting on a loaded machine takes seconds).
        let starting = NIODeadline.now()
        while order.stored.isEmpty, NIODeadline.now() - starting < .seconds(60) { try await Task.sleep(for: .milliseconds(10)) }
        let storedBefore = order.stored.count
        try await harness.publish(quiet.map { Sample.log(service: "svc", org: $0, message: "quiet") })
        let sent = NIODeadline.now()
        while order.stored.filter({ $0 != "hot_org" }).count < quiet.count, NIODeadline.now() - sent < .seconds(60) {
            try await Task.sleep(for: .milliseconds(10))
        }
        task.cancel()
        _ = await task.result
        let stored = order.stored
        let lastQuiet = try #require(stored.lastIndex { $0 != "hot_org" }, "the quiet organizations' events were stored")
        #expect(stored.filter { $0 != "hot_org" }.count == quiet.count)
        let backlogAhead = stored[..<lastQuiet].filter { $0 == "hot_org" }.count - storedBefore
        // A few batches' worth (the batch in hand and the next read's), against the whole rest of the backlog.
        #expect(backlogAhead <= 5_000, "\(backlogAhead) backlog events were stored between their sending and the last of them")
        #expect(storedBefore + backlogAhead < backlog.count - 10_000, "long before the backlog was drained")
    }

    /// A lone deep partition is read a full batch at a time (of each kind); two deep ones share the batch; a shallow
    /// one's entries come with every read.
    @Test func readSharesSplitTheBatchBetweenDeepStreams() {
        let shares = ReadShares()
        #expect(shares.count(wanted: 500) == 500, "nothing deep yet: a batch from any stream")
        func entries(_ counts: [Int: Int]) -> [ReadEntry] {
            counts.flatMap { partition, count in
                (0..<count).map { _ in ReadEntry(kind: .logs, entry: StreamEntry(id: "0-1", fields: nil), partition: partition) }
            }
        }
        shares.observe(entries([3: 500, 5: 2]), count: 500)
        #expect(shares.count(wanted: 500) == 500, "one deep stream: still a full batch from it")
        shares.observe(entries([3: 500, 4: 500, 5: 1]), count: 500)
        #expect(shares.count(wanted: 500) == 250, "two deep streams: half a batch each")
        shares.observe(entries([5: 1]), count: 250)
        #expect(shares.count(wanted: 500) == 500)
        // The three kinds of one partition deep: a batch of each (one commit stores the three), not a third of one.
        let kinds = ReadShares()
        kinds.observe(
            [EventKind.logs, .metrics, .deployments].flatMap { kind in
                (0..<500).map { _ in ReadEntry(kind: kind, entry: StreamEntry(id: "0-1", fields: nil), partition: 3) }
            }, count: 500)
        #expect(kinds.count(wanted: 500) == 500)
        kinds.observe(entries([3: 500, 4: 500]), count: 500)
        #expect(kinds.count(wanted: 500) == 250, "two deep streams of one kind share its batch")
    }

    /// Entries queued in the layout before partitions (`<prefix>:stream:<kind>`, unacknowledged ones included) are
    /// read and stored once by workers of the partitioned layout, which then stop reading those streams.
    @Test func thePreviousLayoutsStreamsAreDrainedThenLeft() async throws {
        let harness = try WorkerHarness(partitions: 16)
        defer { Task { await harness.cleanUp() } }
        let previous = try #require(harness.keys.previousLayoutPartition)
        let old = (0..<300).map { Sample.log(service: "old", org: "acme", message: "old \($0)") }
        let oldStream = harness.keys.unpartitionedStream(.logs)
        for event in old { _ = try await harness.redis.send(XADD(oldStream, fields: StreamEntryCodec.encode(event))) }
        // A worker of the previous layout had read some and died: they are pending.
        _ = try await harness.redis.send(XGROUPCREATE(oldStream, group: harness.keys.consumerGroup))
        let taken = try await harness.redis.send(
            XREADGROUP(group: harness.keys.consumerGroup, consumer: "old-worker", count: 50, streams: [(oldStream, ">")]))
        #expect(taken.first?.entries.count == 50)
        let new = try await harness.publish((0..<200).map { Sample.log(service: "new", org: "acme", message: "new \($0)") })
        let consumer = harness.consumer(claimIdle: 300)
        #expect(
            try await harness.run(consumer, seconds: 30) {
                try harness.count("logs") == old.count + new.count && !consumer.previousLayout.isActive
            }, "every event stored, and the previous layout no longer read")
        #expect(try harness.count("logs", where: "message LIKE 'old %'") == old.count, "each old event once")
        #expect(try await harness.redis.send(XPENDING(oldStream, group: harness.keys.consumerGroup)).count == 0)
        #expect(harness.keys.stream(.logs, partition: previous) == oldStream)
        #expect(!consumer.readStreams.contains(oldStream))
    }
}

/// Records the organization of every event it stores, in the order they reach the database.
final class OrderSink: WrappingSink, Sendable {
    let inner: any EventSink
    private let order = Mutex<[String]>([])

    init(inner: any EventSink) { self.inner = inner }

    /// The organizations of the events stored so far, in order.
    var stored: [String] { order.withLock { $0 } }

    func store(_ events: [QueuedEvent]) async throws(SinkError) -> Int {
        let count = try await inner.store(events)
        order.withLock { $0 += events.map(\.org) }
        return count
    }
}
