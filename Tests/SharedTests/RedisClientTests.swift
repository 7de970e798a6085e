import Foundation
import NIOCore
import NIOPosix
import Shared
import Synchronization
import TestSupport
import Testing

@Suite("Redis client against the real redis-server")
struct RedisClientTests {
    @Test(arguments: RedisTransportKind.allCases)
    func streamCommands(transport: RedisTransportKind) async throws {
        let redis = try TestRedis.client(transport)
        let stream = TestRedis.prefix() + ":stream"
        let group = "g"
        #expect(try await redis.send(XGROUPCREATE(stream, group: group)) == true)
        #expect(try await redis.send(XGROUPCREATE(stream, group: group)) == false, "BUSYGROUP is tolerated")
        var ids: [String] = []
        for index in 0..<5 {
            ids.append(try await redis.send(XADD(stream, fields: [([UInt8]("n"), [UInt8]("\(index)"))])))
        }
        #expect(try await redis.send(XLEN(stream)) == 5)

        let read = try await redis.send(XREADGROUP(group: group, consumer: "c1", count: 3, streams: [(stream, ">")]))
        #expect(read.count == 1 && read[0].stream == stream)
        #expect(read[0].entries.map(\.id) == Array(ids.prefix(3)))
        #expect(read[0].entries[1].value("n") == [UInt8]("1"))

        let summary = try await redis.send(XPENDING(stream, group: group))
        #expect(summary.count == 3 && summary.consumers["c1"] == 3 && summary.smallestId == ids[0])
        let pending = try await redis.send(XPENDINGRange(stream, group: group, count: 10))
        #expect(pending.map(\.id) == Array(ids.prefix(3)) && pending.allSatisfy { $0.consumer == "c1" && $0.deliveries == 1 })

        #expect(try await redis.send(XACK(stream, group: group, ids: [ids[0]])) == 1)
        let claimed = try await redis.send(XAUTOCLAIM(stream, group: group, consumer: "c2", minIdleMilliseconds: 0))
        #expect(claimed.entries.map(\.id) == [ids[1], ids[2]])
        #expect(try await redis.send(XPENDING(stream, group: group)).consumers["c2"] == 2)

        let again = try await redis.send(XREADGROUP(group: group, consumer: "c2", streams: [(stream, "0")]))
        #expect(again.first?.entries.count == 2, "a consumer re-reads its own pending entries from id 0")

        let groups = try await redis.send(XINFOGROUPS(stream))
        #expect(groups.count == 1 && groups[0]["name"]?.string == group && groups[0]["pending"]?.integer == 2)
        let info = try await redis.send(XINFOSTREAM(stream))
        #expect(info["length"]?.integer == 5 && info["last-generated-id"]?.string == ids[4])

        #expect(try await redis.send(XDEL(stream, ids: [ids[4]])) == 1)
        #expect(try await redis.send(XTRIM(stream, .minId(ids[2]))) == 2)
        #expect(try await redis.send(XLEN(stream)) == 2)
        #expect(try await redis.send(XTRIM(stream, .maxLength(1))) == 1)
        _ = try await redis.send(DEL([stream]))
        redis.shutdown()
    }

    @Test(arguments: RedisTransportKind.allCases)
    func setHashAndStringCommands(transport: RedisTransportKind) async throws {
        let redis = try TestRedis.client(transport)
        let prefix = TestRedis.prefix()
        #expect(try await redis.send(SADD("\(prefix):set", members: ["a", "b", "a"])) == 2)
        #expect(try await redis.send(SISMEMBER("\(prefix):set", member: "a")))
        #expect(try await !redis.send(SISMEMBER("\(prefix):set", member: "z")))
        #expect(try await redis.send(SCARD("\(prefix):set")) == 2)
        #expect(try await Set(redis.send(SMEMBERS("\(prefix):set"))) == ["a", "b"])

        #expect(try await redis.send(HSET("\(prefix):hash", fields: [("limit", "7"), ("x", "y")])) == 2)
        #expect(try await redis.send(HGET("\(prefix):hash", field: "limit")) == "7")
        #expect(try await redis.send(HGET("\(prefix):hash", field: "missing")) == nil)
        #expect(try await redis.send(HINCRBY("\(prefix):hash", field: "limit", by: 3)) == 10)

        #expect(try await redis.send(SET("\(prefix):str", value: "v")))
        #expect(try await !redis.send(SET("\(prefix):str", value: "w", onlyIfAbsent: true)))
        #expect(try await redis.send(GET("\(prefix):str")) == [UInt8]("v"))
        #expect(try await redis.send(GET("\(prefix):none")) == nil)
        #expect(try await redis.send(DEL(["\(prefix):set", "\(prefix):hash", "\(prefix):str"])) == 3)
        redis.shutdown()
    }

    @Test(arguments: RedisTransportKind.allCases)
    func serverErrorsAreTyped(transport: RedisTransportKind) async throws {
        let redis = try TestRedis.client(transport)
        let key = TestRedis.prefix()
        _ = try await redis.send(SET(key, value: "text"))
        do {
            _ = try await redis.send(SADD(key, members: ["x"]))
            Issue.record("WRONGTYPE expected")
        } catch {
            #expect(error.code == .server && error.serverPrefix == "WRONGTYPE" && !error.isRetryable)
        }
        do {
            _ = try await redis.send(XGROUPCREATE(key, group: "g"))
            Issue.record("WRONGTYPE expected")
        } catch {
            #expect(error.isServerError("WRONGTYPE"))
        }
        _ = try await redis.send(DEL([key]))
        redis.shutdown()
    }

    @Test(arguments: RedisTransportKind.allCases)
    func binaryValuesWithNULBytesSurvive(transport: RedisTransportKind) async throws {
        let redis = try TestRedis.client(transport)
        let key = TestRedis.prefix()
        let value: [UInt8] = [0, 1, 0, 255, 13, 10, 36, 42, 0]
        _ = try await redis.send(SET(key, value: value))
        #expect(try await redis.send(GET(key)) == value)
        let stream = key + ":stream"
        _ = try await redis.send(XADD(stream, fields: [([0, 0x41], value)]))
        _ = try await redis.send(XGROUPCREATE(stream, group: "g"))
        let read = try await redis.send(XREADGROUP(group: "g", consumer: "c", streams: [(stream, ">")]))
        #expect(read.first?.entries.first?.fields?.first?.name == [0, 0x41])
        #expect(read.first?.entries.first?.fields?.first.map { Array($0.value) } == value)
        _ = try await redis.send(DEL([key, stream]))
        redis.shutdown()
    }

    @Test(arguments: RedisTransportKind.allCases)
    func pipelineOfTenThousandCommands(transport: RedisTransportKind) async throws {
        let redis = try TestRedis.client(transport, group: RedisTransportKind.floodLoops)
        let key = TestRedis.prefix()
        let commands = (0..<10_000).map { HINCRBY(key, field: "n", by: 1 + $0 % 2) }
        let results = try await redis.pipeline(commands)
        #expect(results.count == 10_000)
        #expect(try results.last?.get() == 15_000)
        #expect(try await redis.send(HGET(key, field: "n")) == "15000")
        // Commands of different types in one round trip, each result typed.
        var pipeline = RedisPipeline()
        let set = pipeline.add(SET(key + ":s", value: Array("1".utf8)))
        let incr = pipeline.add(RawCommand("INCR", key))
        let get = pipeline.add(GET(key + ":s"))
        let hget = pipeline.add(HGET(key, field: "n"))
        let mixed = try await redis.pipeline(pipeline)
        _ = try mixed.value(set)
        #expect(throws: RedisError.self) { try mixed.value(incr) }
        #expect(try mixed.value(get) == [UInt8]("1".utf8))
        #expect(try mixed.value(hget) == "15000")
        #expect(throws: RedisError.self) { try mixed.check() }
        _ = try await redis.send(DEL([key, key + ":s"]))
        redis.shutdown()
    }

    @Test(arguments: RedisTransportKind.allCases)
    func transactionsAreAllOrNothing(transport: RedisTransportKind) async throws {
        let redis = try TestRedis.client(transport)
        let stream = TestRedis.prefix()
        let adds = (0..<3).map { XADD(stream, fields: [([UInt8]("i"), [UInt8]("\($0)"))]) }
        let ids = try await redis.transaction(adds)
        #expect(ids.count == 3)
        #expect(try await redis.send(XLEN(stream)) == 3)

        // Commands of different types in one transaction, each result typed.
        var mixed = RedisPipeline()
        let added = mixed.add(XADD(stream, fields: [([UInt8]("i"), [UInt8]("3"))]))
        let length = mixed.add(XLEN(stream))
        let results = try await redis.transaction(mixed)
        #expect(try results.value(length) == 4 && results.value(added).contains("-"))

        // A command refused while queuing aborts the whole transaction: nothing is written.
        let refused = [RawCommand("XADD", stream, "*", "i", "x"), RawCommand("XADD", stream)]
        await #expect(throws: RedisError.self) { try await redis.transaction(refused) }
        #expect(try await redis.send(XLEN(stream)) == 4)

        // A command failing inside EXEC is reported as the transaction's error.
        let failing = [RawCommand("XADD", stream, "*", "i", "y"), RawCommand("SADD", stream, "m")]
        do {
            _ = try await redis.transaction(failing)
            Issue.record("a failing transaction passed")
        } catch {
            #expect(error.serverPrefix == "WRONGTYPE")
        }
        _ = try await redis.send(DEL([stream]))
        redis.shutdown()
    }

    /// On a redis-server of its own: a `SCRIPT FLUSH` on the shared one could land between another test's `EVAL` and
    /// its `EVALSHA` (a test of the digest path expects the server to know the script by then).
    @Test func scriptsReloadAfterScriptFlush() async throws {
        let server = try await RedisServer()
        defer { server.stop() }
        let redis = RedisClient(configuration: try TestRedis.configuration(url: server.url))
        let key = TestRedis.prefix()
        #expect(try await redis.send(IncrementScript(key, by: 2)) == 2)
        _ = try await redis.send(RawCommand("SCRIPT", "FLUSH"))
        #expect(try await redis.send(IncrementScript(key, by: 3)) == 5, "sent again with its source after NOSCRIPT")
        let channel = MultiThreadedEventLoopGroup.singleton.next()
        _ = try await redis.send(RawCommand("SCRIPT", "FLUSH"))
        #expect(try await redis.send(IncrementScript(key, by: 1), on: channel).get() == 6, "and from an event loop")
        _ = try await redis.send(DEL([key]))
        redis.shutdown()
    }

    @Test(arguments: RedisTransportKind.allCases)
    func aclUserAuthenticates(transport: RedisTransportKind) async throws {
        let admin = try TestRedis.client(transport)
        let user = "u" + UUID().uuidString.prefix(8)
        _ = try await admin.send(RawCommand("ACL", "SETUSER", user, "on", ">p@ss word", "~*", "+@all"))
        var configuration = try TestRedis.configuration()
        configuration.username = user
        configuration.password = "p@ss word"
        let client = transport.client(configuration)
        #expect(try await client.send(RawCommand("ACL", "WHOAMI")) == .bulk(ArraySlice(user.utf8)))
        client.shutdown()

        configuration.password = "wrong-secret-value"
        configuration.reconnectDelayMilliseconds = 10_000
        let denied = transport.client(configuration)
        do {
            _ = try await denied.send(PING())
            Issue.record("wrong password accepted")
        } catch {
            // Refused by Redis, or (on a loaded machine) not let in before the connect timeout: never accepted.
            #expect(error.code == .connectionFailed || error.code == .unavailable || error.code == .timeout, "\(error.code)")
            #expect(!error.message.contains("wrong-secret-value"))
        }
        denied.shutdown()
        _ = try await admin.send(RawCommand("ACL", "DELUSER", user))
        admin.shutdown()
    }

    @Test(arguments: RedisTransportKind.allCases)
    func databaseFromTheURLIsSelected(transport: RedisTransportKind) async throws {
        let key = TestRedis.prefix()
        let selected = transport.client(try TestRedis.configuration(url: TestRedis.url + "/3"))
        let plain = try TestRedis.client(transport)
        _ = try await selected.send(SET(key, value: "in-3"))
        #expect(try await plain.send(GET(key)) == nil)
        #expect(try await selected.send(GET(key)) == [UInt8]("in-3"))
        _ = try await selected.send(DEL([key]))
        selected.shutdown()
        plain.shutdown()
    }

    @Test(arguments: RedisTransportKind.allCases)
    func manyConcurrentTasksShareOneClient(transport: RedisTransportKind) async throws {
        let redis = try TestRedis.client(transport, group: RedisTransportKind.floodLoops)
        let key = TestRedis.prefix()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<500 {
                group.addTask {
                    for _ in 0..<20 { _ = try await redis.send(HINCRBY(key, field: "n", by: 1)) }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await redis.send(HGET(key, field: "n")) == "10000")
        _ = try await redis.send(DEL([key]))
        redis.shutdown()
    }

    @Test func blockingReadDoesNotDelayPipelinedCommands() async throws {
        let blocking = try await TestRedis.connected(TestRedis.client(commandTimeout: 1_000))
        let shared = try await TestRedis.connected(TestRedis.client())
        let stream = TestRedis.prefix()
        _ = try await shared.send(XGROUPCREATE(stream, group: "g"))
        let started = NIODeadline.now()
        let readDone = Atomic<Bool>(false)
        async let read = {
            let entries = try await blocking.send(XREADGROUP(group: "g", consumer: "c", count: 1, block: 8_000, streams: [(stream, ">")]))
            readDone.store(true, ordering: .relaxed)
            return entries
        }()
        try await Task.sleep(for: .milliseconds(100))
        for _ in 0..<10 { _ = try await shared.send(PING()) }
        // Behind the 8 s block they would finish after it; on their own connection they finish while it waits (the block
        // is long so that a machine stalled by the parallel suites for seconds still tells the two apart).
        let readFinishedFirst = readDone.load(ordering: .relaxed)
        #expect(!readFinishedFirst, "pings waited behind a blocking read")
        // The block (8 s) is longer than the command timeout (1 s): the client allows for it.
        let entries = try await read
        #expect(entries.isEmpty)
        #expect((NIODeadline.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1_000_000 >= 7_900)
        _ = try await shared.send(DEL([stream]))
        blocking.shutdown()
        shared.shutdown()
    }
}

/// `INCRBY KEYS[1] ARGV[1]` by a script.
struct IncrementScript: RedisScriptCommand {
    static let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    var arguments: [[UInt8]]

    init(_ key: String, by amount: Int) { arguments = Self.invocation(keys: [key], arguments: [Array(String(amount).utf8)]) }

    func response(from reply: RedisReply) throws(RedisError) -> Int { try reply.expectInteger("increment") }
}
