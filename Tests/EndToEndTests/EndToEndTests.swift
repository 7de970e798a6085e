import Foundation
import Shared
import TestSupport
import Testing

/// Two gateways and three workers from the built executables, on the real Redis and on SQLite and PostgreSQL.
@Suite("End to end: two gateways, three workers, operyn-admin", .serialized)
struct EndToEndTests {
    static let specExamples = SpecExamples.commands

    @Test(arguments: Cluster.Store.allCases) func theWholeServiceAndItsAdmin(store: Cluster.Store) async throws {
        let cluster = try await Cluster(store: store)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let ports = [try await cluster.startGateway(), try await cluster.startGateway()]
        for name in ["w1", "w2", "w3"] { try cluster.startWorker(name) }

        try await useTheWholeService(cluster, ports: ports)

        let exits = cluster.stop()
        #expect(exits.values.allSatisfy { $0 == 0 }, "every process exits 0 on SIGTERM: \(exits)")
        passed = true
    }

    /// The same on the test command's Redis Cluster: partitioned streams, organization keys hash-tagged, every script
    /// and transaction of the gateway, the workers and operyn-admin in one slot. The partitions' streams spread over
    /// the three masters.
    @Test func theWholeServiceOnARedisCluster() async throws {
        let cluster = try await Cluster(store: .sqlite, redisURL: TestRedis.clusterURL)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let ports = [try await cluster.startGateway(["OPERYN_REDIS_WAIT_REPLICAS": "1"]), try await cluster.startGateway()]
        for name in ["w1", "w2", "w3"] { try cluster.startWorker(name) }

        var ids: [String: String] = [:]
        try sendTheSpecExamples(cluster, ports: ports, ids: &ids)
        for index in 0..<30 {
            let org = "tenant-\(index)"
            let answer = try cluster.post(
                port: ports[index % 2], "/events/logs", #"{"service":"api","level":"info","message":"m"}"#,
                headers: ["x-api-key": Cluster.serverKey, "x-organization-id": org])
            #expect(answer.status == 202, "\(answer.body)")
            ids[try #require(try JSONParser.parse(Array(answer.body.utf8))["id"]?.text)] = org
        }
        try await useOrganizationKeys(cluster, ports: ports, ids: &ids)
        try await replayADeadLetter(cluster, ids: &ids)
        try await expectEverythingStoredAndReported(cluster, ids: ids)

        let status = try cluster.adminJSON("status")
        let nodes = status["nodes"]!.elements
        #expect(nodes.count == 3 && nodes.allSatisfy { Int($0["streams"]?.text ?? "0")! > 0 }, "partitions on every master: \(nodes.map(\.jsonText))")
        #expect(status["streams"]!.elements.count == cluster.keys.allStreams.count)

        let exits = cluster.stop()
        #expect(exits.values.allSatisfy { $0 == 0 }, "every process exits 0 on SIGTERM: \(exits)")
        passed = true
    }

    /// The spec's examples, organization keys, a dead letter replayed, and everything stored and reported.
    func useTheWholeService(_ cluster: Cluster, ports: [Int]) async throws {
        var ids: [String: String] = [:]  // event id → organization
        try sendTheSpecExamples(cluster, ports: ports, ids: &ids)
        try await useOrganizationKeys(cluster, ports: ports, ids: &ids)
        try await replayADeadLetter(cluster, ids: &ids)
        try await expectEverythingStoredAndReported(cluster, ids: ids)
    }

    /// Every curl example of the spec, as written, on both gateways.
    func sendTheSpecExamples(_ cluster: Cluster, ports: [Int], ids: inout [String: String]) throws {
        #expect(Self.specExamples.count == 4)
        for port in ports {
            for example in Self.specExamples {
                let answer = try cluster.shell(example.replacingOccurrences(of: "http://localhost:3001", with: "http://127.0.0.1:\(port)"))
                #expect(answer.status == 202, "\(example.prefix(60)): \(answer.body)")
                let body = try JSONParser.parse(Array(answer.body.utf8))
                if let id = body["id"]?.text {
                    #expect(body["queued"] == .bool(true))
                    ids[id] = "org_123456789"
                } else {
                    #expect(answer.body == #"{"accepted":2}"#)
                }
            }
        }
    }

    /// Organization keys from operyn-admin: routed to their organization, refused for another, revoked within the cache time.
    func useOrganizationKeys(_ cluster: Cluster, ports: [Int], ids: inout [String: String]) async throws {
        let created = try cluster.adminJSON("keys", "create", "acme")
        let key = try #require(created["key"]?.text)
        let second = try cluster.adminJSON("keys", "create", "acme")
        let secondKey = try #require(second["key"]?.text)
        let secondID = try #require(second["id"]?.text)
        for (port, apiKey) in [(ports[0], key), (ports[1], secondKey)] {
            let answer = try cluster.post(
                port: port, "/events/logs", #"{"service":"checkout","level":"info","message":"paid"}"#, headers: ["x-api-key": apiKey])
            #expect(answer.status == 202, "\(answer.body)")
            ids[try #require(try JSONParser.parse(Array(answer.body.utf8))["id"]?.text)] = "acme"
        }
        let wrongOrganization = try cluster.post(
            port: ports[1], "/events/metrics", #"{"service":"checkout","name":"n","value":1,"unit":"count"}"#,
            headers: ["x-api-key": key, "x-organization-id": "org_123456789"])
        #expect(wrongOrganization.status == 403)
        #expect(wrongOrganization.body == #"{"statusCode":403,"message":"API key does not belong to organization org_123456789"}"#)

        #expect(try cluster.admin("keys", "revoke", "acme", secondID).status == 0)
        try await Task.sleep(for: .milliseconds(400))  // the gateways' key cache is 300 ms here
        for port in ports {
            let revoked = try cluster.post(
                port: port, "/events/logs", #"{"service":"checkout","level":"info","message":"x"}"#, headers: ["x-api-key": secondKey])
            #expect(revoked.status == 401 && revoked.body == #"{"statusCode":401,"message":"Invalid or missing API key"}"#)
        }
        let keyList = try cluster.adminJSON("keys", "list", "acme").elements
        #expect(keyList.map { $0["id"]?.text } == [created["id"]?.text])
        #expect(!(try cluster.admin("keys", "list", "acme").output.contains(key)), "keys list never shows the key")
    }

    /// Dead letters replayed by operyn-admin reach the database: an entry as an earlier worker dead-lettered it
    /// (version 1) and an event of a chunk, dead-lettered as a chunk of one.
    func replayADeadLetter(_ cluster: Cluster, ids: inout [String: String]) async throws {
        let validator = EventValidator()
        let replayed = try (0..<2).map { _ in
            QueuedEvent(
                id: UUID().uuidString.lowercased(), org: "globex", receivedAt: .now,
                event: try validator.event(.deployments, body: Array(#"{"service":"api","version":"v1","environment":"prod"}"#.utf8)))
        }
        let redis = try cluster.redis()
        defer { redis.shutdown() }
        let stream = cluster.keys.stream(.deployments, partition: cluster.keys.partition(of: "globex"))
        var deadLetterIDs: [String] = []
        for (index, original) in [StreamEntryCodec.encode(replayed[0]), StreamEntryCodec.encodeChunks([replayed[1]])[0]].enumerated() {
            let deadLetterFields: [(name: [UInt8], value: [UInt8])] =
                [("dlq_reason", "database unavailable"), ("dlq_stream", stream), ("dlq_id", "1-\(index)"), ("dlq_attempts", "5")]
                .map { (Array($0.0.utf8), Array($0.1.utf8)) } + original
            deadLetterIDs.append(try await redis.send(XADD(cluster.keys.deadLetterStream, fields: deadLetterFields)))
        }
        let listed = try cluster.adminJSON("dlq", "list").elements
        #expect(listed.map { $0["id"]?.text } == deadLetterIDs && listed.allSatisfy { $0["reason"]?.text == "database unavailable" })
        #expect(try cluster.adminJSON("dlq", "replay")["replayed"]?.elements.count == 2)
        for event in replayed { ids[event.id] = "globex" }
    }

    /// Everything drains: the status operyn-admin reports and the rows in the database agree.
    func expectEverythingStoredAndReported(_ cluster: Cluster, ids: [String: String]) async throws {
        let expected = ids.count + 4  // each batch example stores two events without returning ids
        var stored = 0
        for _ in 0..<300 {
            stored = 0
            for table in ["logs", "metrics", "deployments"] {
                stored += Int(try await cluster.query("SELECT CAST(COUNT(*) AS TEXT) FROM \(table)").first?.first??.description ?? "0") ?? 0
            }
            if stored >= expected { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(stored == expected, "\(cluster.log("w1"))")
        var rows: [String: String] = [:]
        for table in ["logs", "metrics", "deployments"] {
            for row in try await cluster.query("SELECT CAST(id AS TEXT), org_id FROM \(table)") { rows[row[0] ?? ""] = row[1] ?? "" }
        }
        for (id, organization) in ids { #expect(rows[id] == organization, "event \(id) stored for \(organization)") }
        #expect(rows.values.filter { $0 == "org_123456789" }.count == 10)

        var status = try cluster.adminJSON("status")
        for _ in 0..<50 where status["streams"]!.elements.contains(where: { $0["pending"]?.text != "0" || $0["length"]?.text != "0" }) {
            try await Task.sleep(for: .milliseconds(100))
            status = try cluster.adminJSON("status")
        }
        for stream in status["streams"]!.elements {
            #expect(stream["length"]?.text == "0" && stream["lag"]?.text == "0" && stream["pending"]?.text == "0", "\(stream.jsonText)")
            #expect(Set(stream["consumers"]!.elements.compactMap { $0["name"]?.text }) == ["w1", "w2", "w3"])
        }
        #expect(status["deadLetters"]?.text == "0")

        let organization = try cluster.adminJSON("orgs", "show", "org_123456789")
        #expect(organization["services"] == .array(["api-gateway", "billing-service", "payment-service"]))
        #expect(organization["stored"]?.text == "10" && organization["serviceLimit"]?.text == "100")
        let acme = try cluster.adminJSON("orgs", "show", "acme")
        #expect(acme["stored"]?.text == "2" && acme["keys"]?.text == "1" && acme["services"] == .array(["checkout"]))
        #expect(try cluster.adminJSON("orgs", "set-limit", "acme", "1")["serviceLimit"]?.text == "1")
        #expect(try cluster.adminJSON("orgs", "show", "acme")["limitOverride"] == .bool(true))
        let organizations = try cluster.adminJSON("orgs", "list").elements.compactMap { $0["org"]?.text }
        #expect(Set(organizations).isSuperset(of: ["acme", "globex", "org_123456789"]))
        let table = try cluster.admin("status")
        #expect(table.status == 0 && table.output.contains(cluster.keys.stream(.logs)) && table.output.contains("w2"))
    }
}
