import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Shared
import TestSupport
import Testing

/// Rate limits across gateways, on the built executables and the real Redis.
@Suite("Rate limits across two gateways", .serialized)
struct RateLimitTests {
    static let log = #"{"service":"api","level":"info","message":"m"}"#

    /// Sends `count` single events for `organization` over `connections` connections spread over `ports`, as fast as
    /// answers come; answers the statuses and the single-event latencies (ms) of the accepted ones.
    static func send(
        _ count: Int, organization: String, ports: [Int], connections: Int = 4, pause: Duration = .zero
    ) async throws -> (statuses: [Int: Int], latencies: [Double]) {
        try await withThrowingTaskGroup(of: ([Int: Int], [Double]).self) { group in
            for connection in 0..<connections {
                group.addTask {
                    var statuses: [Int: Int] = [:]
                    var latencies: [Double] = []
                    let client = TestClient(host: "127.0.0.1", port: ports[connection % ports.count], configuration: .init(timeout: .seconds(5)))
                    client.connect()
                    for _ in stride(from: connection, to: count, by: connections) {
                        let started = NIODeadline.now()
                        let response = try await client.post(
                            "/events/logs",
                            headers: [
                                .contentType: "application/json", HTTPField.Name("x-api-key")!: Cluster.serverKey,
                                HTTPField.Name("x-organization-id")!: organization,
                            ],
                            body: ByteBuffer(string: Self.log))
                        statuses[Int(response.status.code), default: 0] += 1
                        if response.status == .accepted { latencies.append(Double((NIODeadline.now() - started).nanoseconds) / 1e6) }
                        if pause > .zero { try await Task.sleep(for: pause) }
                    }
                    try? await client.shutdown()
                    return (statuses, latencies)
                }
            }
            var statuses: [Int: Int] = [:]
            var latencies: [Double] = []
            for try await (some, times) in group {
                statuses.merge(some, uniquingKeysWith: +)
                latencies += times
            }
            return (statuses, latencies)
        }
    }

    static func percentile(_ values: [Double], _ fraction: Double) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
    }

    /// 50 events a second with a burst of 50, one budget for the organization whichever gateway a request reaches.
    @Test func twoGatewaysShareOneBudgetAndOverridesArriveWithinTheCacheTime() async throws {
        let cluster = try await Cluster(store: .sqlite)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let settings = ["OPERYN_RATE_EVENTS_PER_SECOND": "50", "OPERYN_RATE_EVENTS_BURST": "50", "OPERYN_RATE_LIMIT_CACHE_MS": "300"]
        let ports = [try await cluster.startGateway(settings), try await cluster.startGateway(settings)]
        try cluster.startWorker("w1")

        let started = NIODeadline.now()
        let flood = try await Self.send(600, organization: "acme", ports: ports)
        let seconds = Double((NIODeadline.now() - started).nanoseconds) / 1e9
        let accepted = flood.statuses[202] ?? 0
        print("[rate limits] 600 requests over two gateways in \(seconds) s: \(flood.statuses)")
        #expect(accepted + (flood.statuses[429] ?? 0) == 600, "\(flood.statuses)")
        #expect(accepted >= 50, "at least the burst")
        #expect(Double(accepted) <= 50 + 50 * seconds + 5, "one budget for both gateways: \(accepted) in \(seconds) s")

        // An override from operyn-admin reaches both gateways within their cache time.
        #expect(try cluster.admin("orgs", "set-rate", "acme", "--events-per-second", "100000", "--events-burst", "100000").status == 0)
        #expect(try cluster.adminJSON("orgs", "show", "acme")["rateLimit"]?["eventsPerSecond"] == .number("100000"))
        try await Task.sleep(for: .milliseconds(400))
        #expect(try await Self.send(300, organization: "acme", ports: ports).statuses == [202: 300])
        #expect(try cluster.admin("orgs", "set-rate", "acme", "--clear").status == 0)
        try await Task.sleep(for: .milliseconds(400))
        #expect((try await Self.send(300, organization: "acme", ports: ports).statuses[429] ?? 0) > 0, "the default again")

        // Only accepted events are stored.
        var stored = 0
        for _ in 0..<100 {
            stored = Int(try await cluster.query("SELECT CAST(COUNT(*) AS TEXT) FROM logs").first?.first??.description ?? "0") ?? 0
            if stored >= accepted + 300 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(stored >= accepted + 300 && stored <= accepted + 600)
        passed = true
    }

    /// One organization flooding far past its limit does not change another's acceptance, and its latency stays low.
    @Test func aFloodingOrganizationLeavesTheOthersAlone() async throws {
        let cluster = try await Cluster(store: .sqlite)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let port = try await cluster.startGateway(["OPERYN_RATE_EVENTS_PER_SECOND": "100", "OPERYN_RATE_EVENTS_BURST": "100"])
        try cluster.startWorker("w1")

        _ = try await Self.send(40, organization: "calm", ports: [port], connections: 2)  // connections and caches warm
        let quiet = try await Self.send(200, organization: "calm", ports: [port], connections: 2, pause: .milliseconds(20))
        async let flood = Self.send(8_000, organization: "noisy", ports: [port], connections: 8)
        try await Task.sleep(for: .milliseconds(300))
        let during = try await Self.send(200, organization: "calm", ports: [port], connections: 2, pause: .milliseconds(20))
        let flooded = try await flood
        let (before, after) = (Self.percentile(quiet.latencies, 0.99), Self.percentile(during.latencies, 0.99))
        print("[rate limits] calm p99 \(before) ms alone, \(after) ms beside a flood \(flooded.statuses)")
        #expect((flooded.statuses[429] ?? 0) > 4_000, "the flood was limited: \(flooded.statuses)")
        #expect(quiet.statuses == [202: 200] && during.statuses == [202: 200], "every calm request accepted, flood or not")
        #expect(after < max(50, before * 5), "calm p99 \(after) ms beside the flood, \(before) ms alone")
        passed = true
    }
    /// `GET /usage` and `operyn-admin orgs show` agree with what was sent and stored: accepted, rate-limited,
    /// quota-rejected and stored, by kind, today.
    @Test func usageAgreesWithWhatWasSentAndStored() async throws {
        let cluster = try await Cluster(store: .sqlite)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let port = try await cluster.startGateway(["OPERYN_RATE_LIMIT_CACHE_MS": "100"])
        try cluster.startWorker("w1")
        #expect(try cluster.admin("orgs", "set-rate", "limited", "--events-per-second", "1", "--events-burst", "5").status == 0)
        try await Task.sleep(for: .milliseconds(200))

        let busy = try await Self.send(40, organization: "busy", ports: [port])
        let limited = try await Self.send(30, organization: "limited", ports: [port], connections: 1)
        var defaultStatuses: [Int: Int] = [:]
        for index in 1...7 {
            let answer = try cluster.post(
                port: port, "/events/logs", #"{"service":"svc-\#(index)","level":"info","message":"m"}"#, headers: ["x-api-key": Cluster.serverKey])
            defaultStatuses[answer.status, default: 0] += 1
        }
        let metric = try cluster.post(
            port: port, "/events/metrics", #"{"service":"api","name":"n","value":1,"unit":"count"}"#,
            headers: ["x-api-key": Cluster.serverKey, "x-organization-id": "busy"])
        #expect(busy.statuses == [202: 40] && defaultStatuses == [202: 7] && metric.status == 202)
        let limitedAccepted = limited.statuses[202] ?? 0
        #expect(limitedAccepted >= 5 && limitedAccepted < 30 && limitedAccepted + (limited.statuses[429] ?? 0) == 30, "\(limited.statuses)")

        // Drained: 40 + 1 + accepted of limited + 5 of the default organization's 7 (two services over its quota).
        let expected = 41 + limitedAccepted + 5
        var stored = 0
        for _ in 0..<100 {
            stored = 0
            for table in ["logs", "metrics"] {
                stored += Int(try await cluster.query("SELECT CAST(COUNT(*) AS TEXT) FROM \(table)").first?.first??.description ?? "0") ?? 0
            }
            if stored >= expected { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(stored == expected)
        try await Task.sleep(for: .milliseconds(300))  // the last acknowledgements

        func usage(_ organization: String) throws -> JSONValue {
            let answer = try cluster.get(port: port, "/usage", headers: ["x-api-key": Cluster.serverKey, "x-organization-id": organization])
            #expect(answer.status == 200, "\(answer.body)")
            return try JSONParser.parse(Array(answer.body.utf8))
        }
        let busyUsage = try usage("busy")
        let today = try #require(busyUsage["days"]?.elements.first)
        #expect(busyUsage["days"]?.elements.count == 31 && busyUsage["org"] == .string("busy"))
        #expect(today["accepted"]?["logs"] == .number("40") && today["accepted"]?["metrics"] == .number("1"))
        #expect(today["stored"]?["logs"] == .number("40") && today["stored"]?["metrics"] == .number("1"))
        #expect(today["rateLimited"]?["logs"] == .number("0") && busyUsage["rateLimit"] == .null)
        #expect(busyUsage["services"]?["used"] == .array([.string("api")]) && busyUsage["services"]?["limit"] == .number("100"))

        let limitedUsage = try usage("limited")
        let limitedToday = try #require(limitedUsage["days"]?.elements.first)
        #expect(limitedToday["accepted"]?["logs"] == .number(String(limitedAccepted)))
        #expect(limitedToday["rateLimited"]?["logs"] == .number(String(30 - limitedAccepted)))
        #expect(limitedUsage["rateLimit"]?["eventsPerSecond"] == .number("1") && limitedUsage["rateLimit"]?["remaining"]?["events"] != nil)

        let defaultUsage = try usage("default")
        let defaultToday = try #require(defaultUsage["days"]?.elements.first)
        #expect(defaultToday["accepted"]?["logs"] == .number("7") && defaultToday["stored"]?["logs"] == .number("5"))
        #expect(defaultToday["quotaRejected"]?["logs"] == .number("2"))
        #expect(defaultUsage["services"]?["limit"] == .number("5") && defaultUsage["services"]?["used"]?.elements.count == 5)

        // operyn-admin prints the same.
        let shown = try cluster.adminJSON("orgs", "show", "limited")
        #expect(shown["usage"]?.elements.first?["rateLimited"]?["logs"] == .number(String(30 - limitedAccepted)))
        #expect(try cluster.admin("orgs", "show", "default").output.contains("DEAD-LETTERED"))
        // orgs list names organizations, not the keys of their usage, budgets or idempotency records.
        let listed = try cluster.adminJSON("orgs", "list").elements.compactMap { $0["org"]?.text }
        #expect(Set(listed) == ["busy", "default", "limited"], "\(listed)")
        // Authenticated as the ingestion routes.
        #expect(try cluster.get(port: port, "/usage", headers: [:]).status == 401)
        passed = true
    }
}
