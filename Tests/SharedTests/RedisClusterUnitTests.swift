import Shared
import Testing

@testable import Shared

@Suite("Redis Cluster: slots, routing, the map, key layout")
struct RedisClusterUnitTests {
    @Test func hashSlotsAreRedisClusters() {
        // Values from `CLUSTER KEYSLOT` and the cluster specification.
        #expect(RedisHashSlot.of("somekey") == 11_058)
        #expect(RedisHashSlot.of("foo{hash_tag}") == 2_515 && RedisHashSlot.of("bar{hash_tag}") == 2_515)
        #expect(RedisHashSlot.of("123456789") == 12_739)
        #expect(RedisHashSlot.crc16(Array("123456789".utf8)) == 0x31C3)
        // Only a non-empty tag counts, and only the first.
        #expect(RedisHashSlot.of("foo{}{bar}") == RedisHashSlot.of("foo{}{bar}".utf8.map { $0 }))
        #expect(RedisHashSlot.hashed(Array("foo{}{bar}".utf8)).elementsEqual("foo{}{bar}".utf8))
        #expect(RedisHashSlot.hashed(Array("foo{{bar}}zap".utf8)).elementsEqual("{bar".utf8))
        #expect(RedisHashSlot.hashed(Array("foo{bar}{zap}".utf8)).elementsEqual("bar".utf8))
        #expect(RedisHashSlot.hashed(Array("{user1000}.following".utf8)).elementsEqual("user1000".utf8))
        #expect(RedisHashSlot.of("") == 0)
    }

    @Test func commandsAreRoutedByTheirFirstKey() {
        #expect(GET("k1").routingKey == Array("k1".utf8))
        #expect(PING().routingKey == nil)
        #expect(XGROUPCREATE("s1", group: "g").routingKey == Array("s1".utf8))
        #expect(XINFOGROUPS("s2").routingKey == Array("s2".utf8))
        #expect(XREADGROUP(group: "g", consumer: "c", count: 1, streams: [("{p}a", ">"), ("{p}b", ">")]).routingKey == Array("{p}a".utf8))
        #expect(SampleStream("k2", entries: 5).routingKey == Array("k2".utf8))
        #expect(SampleStream("k2", entries: 5).carryingSource.routingKey == Array("k2".utf8), "EVAL routes as EVALSHA does")
        #expect(SCRIPTLOAD("return 1").routingKey == nil)
        #expect(RawCommand("wait", "1", "0").routingKey == nil)
        let chunk = StreamChunk(
            QueuedEvent(id: "i", org: "o", receivedAt: .now, event: .log(LogEvent(service: "s", level: .info, message: "m", timestamp: .now))))
        #expect(AppendChunk(chunk, to: "stream-key").routingKey == Array("stream-key".utf8))
    }

    @Test func clusterURLs() throws {
        let cluster = try RedisConfiguration(url: "redis+cluster://ingest:s%40cret@10.0.0.5:7000,10.0.0.6:7001,[::1]:7002,node4")
        #expect(cluster.isCluster && cluster.username == "ingest" && cluster.password == "s@cret")
        #expect(
            cluster.clusterSeeds == [
                RedisAddress(host: "10.0.0.5", port: 7000), RedisAddress(host: "10.0.0.6", port: 7001), RedisAddress(host: "::1", port: 7002),
                RedisAddress(host: "node4", port: 6379),
            ])
        #expect(cluster.host == "10.0.0.5" && cluster.port == 7000)
        #expect(cluster.redactedURL == "redis+cluster://ingest:***@10.0.0.5:7000,10.0.0.6:7001,[::1]:7002,node4:6379")
        #expect(try RedisConfiguration(url: "redis+cluster://h:1/0").clusterSeeds == [RedisAddress(host: "h", port: 1)])
        #expect(!(try RedisConfiguration(url: "redis://h:1")).isCluster)
        let node = cluster.node(RedisAddress(host: "10.0.0.9", port: 7005))
        #expect(node.host == "10.0.0.9" && node.port == 7005 && !node.isCluster, "a master's connection: plain, to that node")
        #expect(node.username == "ingest" && node.password == "s@cret" && node.handshake.map(\.step) == ["AUTH"], "with the same credentials")
        #expect(try RedisConfiguration(url: "rediss+cluster://h:1").tls != nil, "a cluster over TLS")
        for bad in ["redis+cluster://h:1/2", "redis+cluster://h:1,h:x", "redis+cluster://h:0", "redis+clusters://h:1"] {
            #expect(throws: RedisError.self, "\(bad)") { try RedisConfiguration(url: bad) }
        }
    }

    @Test func theMapIsReadFromClusterSlots() throws {
        func node(_ host: String, _ port: Int64) -> RedisReply { .array([.bulk(ArraySlice(host.utf8)), .integer(port), .bulk(ArraySlice("id".utf8))]) }
        let reply = RedisReply.array([
            .array([.integer(0), .integer(5_460), node("10.0.0.1", 7000), node("10.0.0.4", 7003)]),
            .array([.integer(5_461), .integer(10_922), node("", 7001)]),
            .array([.integer(10_923), .integer(16_383), node("?", 7002), node("10.0.0.6", 7005)]),
        ])
        let topology = try RedisClusterTopology(slotsReply: reply, asked: RedisAddress(host: "seed", port: 1))
        #expect(topology.coversAllSlots)
        #expect(
            topology.masters == [
                RedisAddress(host: "10.0.0.1", port: 7000), RedisAddress(host: "seed", port: 7001), RedisAddress(host: "seed", port: 7002),
            ])
        #expect(topology.ranges[0].replicas == [RedisAddress(host: "10.0.0.4", port: 7003)])
        let partial = try RedisClusterTopology(
            slotsReply: .array([.array([.integer(0), .integer(100), node("a", 1)])]), asked: RedisAddress(host: "a", port: 1))
        #expect(!partial.coversAllSlots)
        #expect(throws: RedisError.self) {
            try RedisClusterTopology(slotsReply: .array([.array([.integer(5), .integer(2), node("a", 1)])]), asked: RedisAddress(host: "a", port: 1))
        }
        #expect(throws: RedisError.self) { try RedisClusterTopology(slotsReply: .integer(1), asked: RedisAddress(host: "a", port: 1)) }
    }

    @Test func redirectsAreRead() {
        let moved = RedisRedirect(RedisError(serverReply: "MOVED 3999 127.0.0.1:6381"))
        #expect(moved?.slot == 3_999 && moved?.address == RedisAddress(host: "127.0.0.1", port: 6_381) && moved?.asking == false)
        #expect(RedisRedirect(RedisError(serverReply: "ASK 3999 [::1]:6381"))?.address == RedisAddress(host: "::1", port: 6_381))
        #expect(RedisRedirect(RedisError(serverReply: "ASK 3999 [::1]:6381"))?.asking == true)
        #expect(RedisRedirect(RedisError(serverReply: "ERR wrong")) == nil)
        #expect(RedisRedirect(RedisError(serverReply: "MOVED nonsense")) == nil)
    }

    @Test func singleServerKeysKeepTheirNamesButTheStreamsArePartitionedAsInACluster() {
        let keys = RedisKeys(prefix: "operyn")
        let cluster = RedisKeys(prefix: "operyn", clustered: true)
        #expect(!keys.clustered && keys.partitions == 16 && !keys.isUnpartitioned)
        #expect(keys.allStreams == cluster.allStreams, "the same streams on one server as in a cluster")
        #expect(keys.partition(of: "acme") == cluster.partition(of: "acme"))
        #expect(keys.stream(.logs, partition: 3).hasPrefix("operyn:stream:{p3-") && keys.stream(.logs, partition: 3).hasSuffix("}:logs"))
        #expect(keys.services(org: "acme") == "operyn:org:acme:services" && keys.rateState(org: "acme") == "operyn:org:acme:rate")
        // The layout before partitions: read by workers as one more partition, until empty.
        #expect(keys.previousLayoutPartition == 16 && cluster.previousLayoutPartition == nil)
        #expect(keys.stream(.deployments, partition: 16) == "operyn:stream:deployments")
        #expect(keys.locate(stream: "operyn:stream:deployments")! == (.deployments, 16))
        #expect(cluster.locate(stream: "operyn:stream:deployments") == nil)
        for stream in keys.allStreams {
            let (kind, partition) = try! #require(keys.locate(stream: stream))
            #expect(keys.stream(kind, partition: partition) == stream)
        }
        // One partition on one server is the layout before partitions.
        let one = RedisKeys(prefix: "operyn", clustered: false, partitions: 1)
        #expect(
            one.isUnpartitioned && one.stream(.logs) == "operyn:stream:logs"
                && one.streams(.metrics) == ["operyn:stream:metrics", "operyn:stream:metrics:overflow"])
        #expect(one.overflowStream(.logs, partition: 0) == "operyn:stream:logs:overflow" && one.flow(partition: 0) == "operyn:flow")
        #expect(one.locate(stream: "operyn:stream:logs:overflow")! == (.logs, one.overflowIndex(of: 0)) && one.isOverflow(2) && !one.isOverflow(1))
        #expect(one.partition(of: "acme") == 0 && one.previousLayoutPartition == nil && one.locate(stream: "operyn:stream:logs")! == (.logs, 0))
    }

    @Test func clusterKeysShareSlotsWhereScriptsNeedThem() {
        let keys = RedisKeys(prefix: "operyn", clustered: true, partitions: 16)
        #expect(keys.partitions == 16 && keys.allStreams.count == 2 * 16 * EventKind.allCases.count && Set(keys.allStreams).count == keys.allStreams.count)
        for partition in 0..<16 {
            let overflow = keys.overflowIndex(of: partition)
            let slots = Set(
                EventKind.allCases.flatMap { [keys.stream($0, partition: partition), keys.overflowStream($0, partition: partition)] }.map {
                    RedisHashSlot.of($0)
                }
                    + [RedisHashSlot.of(keys.flow(partition: partition))])
            #expect(slots.count == 1, "a partition's streams, its overflow streams and its flow share a slot (one XREADGROUP, one script)")
            #expect(
                keys.stream(.logs, partition: overflow) == keys.overflowStream(.logs, partition: partition)
                    && keys.overflowStream(.logs, partition: partition).hasSuffix(":logs:overflow"))
            #expect(keys.isOverflow(overflow) && keys.basePartition(ofStream: overflow) == partition && keys.basePartition(ofStream: partition) == partition)
            #expect(keys.locate(stream: keys.overflowStream(.deployments, partition: partition))! == (.deployments, overflow))
            #expect(slots.first! * 16 / RedisHashSlot.count == partition, "partition \(partition) lies in its share of the slots")
            #expect(keys.locate(stream: keys.stream(.metrics, partition: partition))! == (.metrics, partition))
        }
        #expect(keys.stream(.logs, partition: 0).hasPrefix("operyn:stream:{p0-") && keys.stream(.logs, partition: 0).hasSuffix("}:logs"))
        let org = "acme-corp"
        let orgSlots = Set([keys.services(org: org), keys.settings(org: org), keys.counts(org: org), keys.apiKeys(org: org)].map { RedisHashSlot.of($0) })
        #expect(orgSlots == [RedisHashSlot.of(org)], "an organization's keys share its slot (the quota script)")
        #expect(keys.services(org: org) == "operyn:org:{acme-corp}:services")
        // Stable, spread, and in the organization's own share of the slots.
        var used = Set<Int>()
        for index in 0..<400 {
            let partition = keys.partition(of: "org-\(index)")
            #expect(partition == keys.partition(of: "org-\(index)") && (0..<16).contains(partition))
            #expect(partition == RedisHashSlot.of("org-\(index)") * 16 / RedisHashSlot.count)
            used.insert(partition)
        }
        #expect(used.count == 16)
        #expect(RedisKeys(prefix: "p", clustered: true, partitions: 1).stream(.logs) == "p:stream:{p0-0}:logs")
    }
}
