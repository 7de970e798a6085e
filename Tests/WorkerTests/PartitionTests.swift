import Foundation
import NIOCore
import Shared
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

    /// One organization's backlog fills its partition; events of 20 others, sent after it, are stored within two
    /// batches of the backlog, long before it is drained: a deep partition does not hold the others' reads back. (In
    /// batches, not seconds: the machine's other tests slow the worker down as a whole.)
    @Test func aDeepPartitionDoesNotDelayTheOthers() async throws {
        let harness = try WorkerHarness(partitions: 16)
        defer { Task { await harness.cleanUp() } }
        #expect(!harness.keys.isUnpartitioned)
        let backlog = (0..<30_000).map { Sample.log(service: "hot", org: "hot_org", message: "backlog \($0)") }
        try await harness.publish(backlog, as: .chunks(perChunk: 100))
        let quiet = Self.organizations(avoiding: "hot_org", keys: harness.keys, count: 20)
        let consumer = harness.consumer()
        let task = Task { try await consumer.run() }
        defer { task.cancel() }
        // Once the backlog is being drained (the worker has started, which takes seconds on a loaded machine).
        let starting = NIODeadline.now()
        while try harness.count("logs", where: "org_id = 'hot_org'") == 0, NIODeadline.now() - starting < .seconds(60) {
            try await Task.sleep(for: .milliseconds(20))
        }
        let sent = NIODeadline.now()
        let storedBefore = try harness.count("logs", where: "org_id = 'hot_org'")
        try await harness.publish(quiet.map { Sample.log(service: "svc", org: $0, message: "quiet") })
        var storedAfter: Duration?
        while NIODeadline.now() - sent < .seconds(60) {
            if try harness.count("logs", where: "message = 'quiet'") == quiet.count {
                storedAfter = .nanoseconds((NIODeadline.now() - sent).nanoseconds)
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let backlogStored = try harness.count("logs", where: "org_id = 'hot_org'")
        task.cancel()
        _ = await task.result
        let waited = try #require(storedAfter, "the 20 quiet organizations' events were stored")
        // The read in flight when they were sent, and the one after: at most two batches (500 events each) of the backlog.
        #expect(backlogStored - storedBefore <= 2 * 500, "stored \(waited) after they were sent, \(backlogStored - storedBefore) backlog events later")
        #expect(backlogStored < backlog.count, "before the backlog was drained (\(backlogStored) of \(backlog.count) stored)")
    }

    /// A lone deep partition is read a full batch at a time; two deep ones share the batch; a shallow one's entries
    /// come with every read.
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
        #expect(!consumer.readPartitions.contains(previous))
    }
}
