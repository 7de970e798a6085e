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
}
