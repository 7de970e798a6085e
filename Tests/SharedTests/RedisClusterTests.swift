import Foundation
import NIOCore
import NIOPosix
import Shared
import TestSupport
import Testing

/// The client against the test command's 6-node Redis Cluster (3 masters, 3 replicas).
@Suite("Redis client against a real Redis Cluster")
struct RedisClusterTests {
    @Test(arguments: RedisTransportKind.allCases)
    func commandsReachTheMasterOfTheirSlot(transport: RedisTransportKind) async throws {
        let redis = try TestRedis.clusterClient(transport)
        defer { redis.shutdown() }
        let prefix = TestRedis.prefix()
        let keys = (0..<60).map { "\(prefix):\($0)" }
        for key in keys { #expect(try await redis.send(SET(key, value: key))) }
        for key in keys { #expect(try await redis.send(GET(key)) == Array(key.utf8)) }
        let masters = redis.clusterMasters
        #expect(masters.count == 3 && masters.reduce(0) { $0 + $1.slots } == 16_384)
        #expect(Set(keys.compactMap { redis.node(of: $0) }) == Set(masters.map(\.address)), "60 keys land on every master")

        // A pipeline's commands go each to its master; results come back in order.
        let results = try await redis.pipeline(keys.map { GET($0) })
        #expect(try results.map { try $0.get() } == keys.map { Array($0.utf8) })
        for key in keys { _ = try await redis.send(DEL([key])) }
    }

    @Test func transactionsAndScriptsStayInOneSlot() async throws {
        let redis = try TestRedis.clusterClient()
        defer { redis.shutdown() }
        let tag = "{\(TestRedis.prefix())}"
        let results = try await redis.transaction([HINCRBY("\(tag):a", field: "n", by: 2), HINCRBY("\(tag):b", field: "n", by: 3)])
        #expect(results == [2, 3])
        await #expect(throws: RedisError.self) {
            try await redis.transaction([HINCRBY("\(tag):a", field: "n", by: 1), HINCRBY("elsewhere:\(UUID().uuidString)", field: "n", by: 1)])
        }
        do {
            _ = try await redis.transaction([GET("\(tag):x"), GET("other:\(UUID().uuidString)")])
            Issue.record("a transaction over two slots was sent")
        } catch {
            #expect(error.code == .crossSlot)
        }
        #expect(try await redis.send(HGET("\(tag):a", field: "n")) == "2", "the refused transactions wrote nothing")

        // A script new to every master: loaded on one, run by EVAL where the others answer NOSCRIPT.
        var spread = Set<String>()
        let base = TestRedis.prefix()
        for index in 0..<12 {
            let key = "{\(base)-\(index)}:h"
            spread.insert(redis.node(of: key) ?? "?")
            #expect(try await redis.send(HashAddScript(keys: [key, "{\(base)-\(index)}:other"], by: 5)) == 7)
            #expect(try await redis.send(HashAddScript(keys: [key], by: 1)) == 7)
            _ = try await redis.send(DEL([key]))
        }
        #expect(spread.count == 3, "the script ran on every master")
        _ = try await redis.send(DEL(["\(tag):a", "\(tag):b"]))
    }

    @Test func redirectsAreFollowedWhileASlotMoves() async throws {
        let redis = try TestRedis.clusterClient(commandTimeout: 5_000)
        defer { redis.shutdown() }
        let tag = "{\(TestRedis.prefix())}"
        let (moved, stays) = ("\(tag):moved", "\(tag):stays")
        #expect(try await redis.send(SET(moved, value: "1")))
        #expect(try await redis.send(SET(stays, value: "2")))
        let slot = RedisHashSlot.of(moved)
        let source = try #require(redis.node(of: moved))
        let target = try #require(redis.clusterMasters.map(\.address).first { $0 != source })
        let nodes = try ClusterNodes(redis.clusterMasters.map(\.address))
        defer { nodes.shutdown() }

        // Migrating: one key already on the target, one still on the source.
        try await nodes.send(RawCommand("CLUSTER", "SETSLOT", "\(slot)", "IMPORTING", try await nodes.id(source)), to: target)
        try await nodes.send(RawCommand("CLUSTER", "SETSLOT", "\(slot)", "MIGRATING", try await nodes.id(target)), to: source)
        let port = String(target.split(separator: ":").last!)
        try await nodes.send(RawCommand("MIGRATE", "127.0.0.1", port, "", "0", "5000", "KEYS", moved), to: source)
        #expect(try await redis.send(GET(moved)) == Array("1".utf8), "ASK followed to the target")
        #expect(try await redis.send(GET(stays)) == Array("2".utf8), "the source still serves the key it holds")
        #expect(try await redis.transaction([GET(moved)]) == [Array("1".utf8)], "a transaction is resent whole after ASKING")
        #expect(redis.node(of: moved) == source, "an ASK does not change the map")

        // Done: the slot is the target's; the client learns it from MOVED.
        try await nodes.send(RawCommand("MIGRATE", "127.0.0.1", port, "", "0", "5000", "KEYS", stays), to: source)
        for node in nodes.addresses {
            try await nodes.send(RawCommand("CLUSTER", "SETSLOT", "\(slot)", "NODE", try await nodes.id(target)), to: node)
        }
        #expect(try await redis.send(GET(stays)) == Array("2".utf8), "MOVED followed")
        #expect(redis.node(of: stays) == target, "MOVED changed the map")

        // Back where it was, with both keys.
        try await nodes.send(RawCommand("CLUSTER", "SETSLOT", "\(slot)", "IMPORTING", try await nodes.id(target)), to: source)
        try await nodes.send(RawCommand("CLUSTER", "SETSLOT", "\(slot)", "MIGRATING", try await nodes.id(source)), to: target)
        let sourcePort = String(source.split(separator: ":").last!)
        try await nodes.send(RawCommand("MIGRATE", "127.0.0.1", sourcePort, "", "0", "5000", "KEYS", moved, stays), to: target)
        for node in nodes.addresses {
            try await nodes.send(RawCommand("CLUSTER", "SETSLOT", "\(slot)", "NODE", try await nodes.id(source)), to: node)
        }
        #expect(try await redis.send(DEL([moved, stays])) == 2)
        #expect(redis.node(of: stays) == source)
    }

    @Test func appendsWaitForReplicas() async throws {
        let redis = try TestRedis.clusterClient()
        defer { redis.shutdown() }
        let stream = "\(TestRedis.prefix()):stream"
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let fields: [(name: [UInt8], value: [UInt8])] = [(Array("n".utf8), Array("1".utf8))]
        let id = try await redis.send(XADD(stream, fields: fields), waitingForReplicas: 1, timeoutMilliseconds: 2_000, on: loop).get()
        #expect(id.contains("-"))
        let batch = try await redis.transaction(
            [XADD(stream, fields: fields), XADD(stream, fields: fields)], waitingForReplicas: 1, timeoutMilliseconds: 2_000, on: loop
        ).get()
        #expect(batch.count == 2)
        do {
            _ = try await redis.send(XADD(stream, fields: fields), waitingForReplicas: 2, timeoutMilliseconds: 200, on: loop).get()
            Issue.record("a master with one replica acknowledged two")
        } catch let error as RedisError {
            #expect(error.code == .unavailable && error.isRetryable && error.message.contains("1 of 2 replicas"))
        }
        #expect(try await redis.send(XLEN(stream)) == 4, "the append ran; only its durability was short")
        _ = try await redis.send(DEL([stream]))
    }

    /// The streams 48 organizations write to are spread over all three masters: each master holds some of them (read
    /// on the master itself, no redirect), at the slot `CLUSTER KEYSLOT` names.
    @Test func partitionStreamsSpreadOverEveryMaster() async throws {
        let redis = try TestRedis.clusterClient()
        defer { redis.shutdown() }
        let keys = RedisKeys(prefix: TestRedis.prefix(), clustered: true, partitions: 16)
        let fields: [(name: [UInt8], value: [UInt8])] = [(Array("n".utf8), Array("1".utf8))]
        var streams = Set<String>()
        for index in 0..<48 {
            let stream = keys.stream(.logs, partition: keys.partition(of: "tenant-\(index)"))
            streams.insert(stream)
            _ = try await redis.send(XADD(stream, fields: fields))
        }
        #expect(streams.count >= 12, "48 organizations on \(streams.count) of 16 partitions")
        let nodes = try ClusterNodes(redis.clusterMasters.map(\.address))
        defer { nodes.shutdown() }
        var holding: [String: Int] = [:]
        for stream in streams {
            let master = try #require(redis.node(of: stream))
            let slot = try await nodes.client(master).send(RawCommand("CLUSTER", "KEYSLOT", stream)).integer
            #expect(slot.map(Int.init) == RedisHashSlot.of(stream))
            let length = try await nodes.client(master).send(XLEN(stream))
            #expect(length > 0, "\(stream) is on \(master)")
            holding[master, default: 0] += 1
        }
        #expect(holding.count == 3, "every master holds partition streams: \(holding)")
        for stream in streams { _ = try await redis.send(DEL([stream])) }
    }

    @Test func anUnreachableSeedIsPassedOver() async throws {
        var configuration = try RedisConfiguration(url: TestRedis.clusterURL)
        configuration.clusterSeeds.insert(RedisAddress(host: "127.0.0.1", port: try RedisServer.freePort()), at: 0)
        configuration.connectTimeoutMilliseconds = 300
        let redis = RedisClient(configuration: configuration)
        defer { redis.shutdown() }
        let key = "\(TestRedis.prefix()):k"
        #expect(try await redis.send(SET(key, value: "v")))
        #expect(try await redis.send(DEL([key])) == 1)
    }
}

/// A plain client on each master, for the cluster's own commands (`CLUSTER SETSLOT`, `MIGRATE`).
private final class ClusterNodes: Sendable {
    let addresses: [String]
    private let clients: [String: RedisClient]

    init(_ addresses: [String]) throws {
        self.addresses = addresses
        clients = Dictionary(uniqueKeysWithValues: try addresses.map { ($0, RedisClient(configuration: try TestRedis.configuration(url: "redis://\($0)"))) })
    }

    func send(_ command: RawCommand, to address: String) async throws {
        try await clients[address]!.send(command).throwingError()
    }

    func client(_ address: String) -> RedisClient { clients[address]! }

    func id(_ address: String) async throws -> String {
        try #require(try await clients[address]!.send(RawCommand("CLUSTER", "MYID")).string)
    }

    func shutdown() { for client in clients.values { client.shutdown() } }
}

/// `HINCRBY KEYS[1] n ARGV[1]` plus the number of keys, by a script new to every master of the test process's
/// cluster (its source differs in each run).
struct HashAddScript: RedisScriptCommand {
    static let script = RedisScript("return redis.call('HINCRBY', KEYS[1], 'n', ARGV[1]) + #KEYS + \(Int.random(in: 0..<1_000_000)) * 0")
    var arguments: [[UInt8]]

    init(keys: [String], by amount: Int) { arguments = Self.invocation(keys: keys, arguments: [Array(String(amount).utf8)]) }

    func response(from reply: RedisReply) throws(RedisError) -> Int { try reply.expectInteger("hash add") }
}
