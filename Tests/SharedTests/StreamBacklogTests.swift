import Shared
import TestSupport
import Testing

@Suite("Stream backlog readings against the real Redis")
struct StreamBacklogTests {
    @Test func lagAndPendingPerStream() async throws {
        let redis = try TestRedis.client()
        defer { redis.shutdown() }
        let keys = RedisKeys(prefix: TestRedis.prefix())
        let stream = keys.stream(.logs)
        #expect(try await StreamBacklog.read(redis: redis, keys: keys).total == 0, "no streams yet")
        for index in 0..<5 { _ = try await redis.send(XADD(stream, fields: [(Array("n".utf8), Array("\(index)".utf8))])) }
        #expect(try await StreamBacklog.read(redis: redis, keys: keys).lag[.logs] == 5, "no group yet: the whole stream")
        _ = try await redis.send(XGROUPCREATE(stream, group: keys.consumerGroup, startId: "0"))
        _ = try await redis.send(XREADGROUP(group: keys.consumerGroup, consumer: "c", count: 2, streams: [(stream, ">")]))
        let backlog = try await StreamBacklog.read(redis: redis, keys: keys)
        #expect(backlog.lag[.logs] == 3 && backlog.pending[.logs] == 2 && backlog.total == 5)
    }

    @Test func aLagRedisGotWrongIsBoundedByWhatTheStreamHolds() async throws {
        let redis = try TestRedis.client()
        defer { redis.shutdown() }
        let keys = RedisKeys(prefix: TestRedis.prefix())
        let stream = keys.stream(.metrics)
        _ = try await redis.send(XGROUPCREATE(stream, group: keys.consumerGroup, startId: "$"))
        var ids: [String] = []
        for index in 0..<5 { ids.append(try await redis.send(XADD(stream, fields: [(Array("n".utf8), Array("\(index)".utf8))]))) }
        _ = try await redis.send(XREADGROUP(group: keys.consumerGroup, consumer: "c", count: 10, streams: [(stream, ">")]))
        _ = try await redis.send(XACK(stream, group: keys.consumerGroup, ids: ids))
        _ = try await redis.send(XDEL(stream, ids: ids))
        // Corrupt the group's read counter the way a replayed AOF can: Redis now reports a lag of 5 on an empty stream.
        _ = try await redis.send(RawCommand("XGROUP", "SETID", stream, keys.consumerGroup, "$", "ENTRIESREAD", "0"))
        let groups = try await redis.send(XINFOGROUPS(stream))
        #expect(groups.first?["lag"]?.integer == 5, "Redis's own figure is wrong")
        #expect(try await StreamBacklog.read(redis: redis, keys: keys).total == 0)
    }

    /// The backlog in events: entries times the events per entry of the newest entries (chunks count their events,
    /// version-1 entries one each).
    @Test func theBacklogCountsEventsFromTheNewestEntries() async throws {
        let redis = try TestRedis.client()
        defer { redis.shutdown() }
        let keys = RedisKeys(prefix: TestRedis.prefix())
        let stream = keys.stream(.logs)
        let event = QueuedEvent(
            id: "e", org: "o", receivedAt: .now, event: try EventValidator().event(.logs, body: Array(#"{"service":"s","level":"info","message":"m"}"#.utf8)))
        _ = try await redis.send(XADD(stream, fields: StreamEntryCodec.encode(event)))
        for _ in 0..<4 { _ = try await redis.send(XADD(stream, fields: StreamEntryCodec.encodeChunks(Array(repeating: event, count: 10))[0])) }
        var backlog = try await StreamBacklog.read(redis: redis, keys: keys)
        #expect(backlog.total == 5 && backlog.eventsPerEntry[.logs] == 41.0 / 5)
        #expect(backlog.totalEvents == 41)
        for _ in 0..<StreamBacklog.sampleSize { _ = try await redis.send(XADD(stream, fields: StreamEntryCodec.encodeChunks([event, event])[0])) }
        backlog = try await StreamBacklog.read(redis: redis, keys: keys)
        #expect(backlog.eventsPerEntry[.logs] == 2, "the newest entries tell")
        #expect(backlog.totalEvents == (5 + StreamBacklog.sampleSize) * 2)
        _ = try await redis.send(DEL([stream, keys.backlogShape]))
    }

    /// A gateway, whose Redis user may not read entries, takes the events per entry that a worker's reading
    /// published: 1 each until one has.
    @Test func theGatewaysReadTheShapeTheWorkersPublish() async throws {
        let redis = try TestRedis.client()
        defer { redis.shutdown() }
        let keys = RedisKeys(prefix: TestRedis.prefix())
        let event = QueuedEvent(
            id: "e", org: "o", receivedAt: .now, event: try EventValidator().event(.logs, body: Array(#"{"service":"s","level":"info","message":"m"}"#.utf8)))
        for _ in 0..<3 { _ = try await redis.send(XADD(keys.stream(.logs), fields: StreamEntryCodec.encodeChunks(Array(repeating: event, count: 10))[0])) }
        #expect(try await StreamBacklog.read(redis: redis, keys: keys, shape: .published()).totalEvents == 3, "nothing published yet")
        #expect(try await StreamBacklog.read(redis: redis, keys: keys, shape: .sampleAndPublish).totalEvents == 30)
        #expect(try await redis.send(HGETALL(keys.backlogShape)) == [keys.stream(.logs): "10.0"])
        #expect(try await StreamBacklog.read(redis: redis, keys: keys, shape: .published()).totalEvents == 30)
        // A gateway that appended entries of 20 events takes its own figure where it says more.
        let own = AppendShape()
        own.record(.logs, events: 20)
        #expect(try await StreamBacklog.read(redis: redis, keys: keys, shape: .published(own: own)).totalEvents == 60)
        _ = try await redis.send(DEL([keys.stream(.logs), keys.backlogShape]))
    }
}
