import Foundation
import Shared
import TestSupport
import Testing

/// PostgreSQL as the sink with poison mixed into normal load: the gateway refuses what no sink can store (the load's
/// invalid events), and entries an earlier gateway queued that PostgreSQL refuses are dead-lettered with its message
/// while everything around them is stored once.
@Suite("Poison under load on PostgreSQL, with a ledger of every event", .serialized)
struct PoisonLedgerTests {
    @Test func poisonIsRefusedOrDeadLetteredAndNothingWaitsBehindIt() async throws {
        let cluster = try await Cluster(store: .postgres)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let port = try await cluster.startGateway()
        let claimIdle = 1_000
        let attempts = 2
        for name in ["w1", "w2"] {
            try cluster.startWorker(name, ["OPERYN_CLAIM_IDLE_MS": "\(claimIdle)", "OPERYN_MAX_ATTEMPTS": "\(attempts)"])
        }
        let redis = try cluster.redis()
        defer { redis.shutdown() }
        let poison = Self.entriesAnEarlierGatewayAccepted()
        let report = try await cluster.ledgerRun(ports: [port], drainSeconds: 30) { load, ledger in
            try await Task.sleep(for: .milliseconds(1_000))
            for event in poison {
                _ = try await redis.send(XADD(cluster.keys.stream(.logs), fields: StreamEntryCodec.encode(event)))
                try await Task.sleep(for: .milliseconds(300))
            }
            let before = ledger.counts.accepted
            try await Task.sleep(for: .milliseconds(2_000))
            #expect(ledger.counts.accepted > before, "accepting goes on")
        }
        #expect(report.refused > 0, "the load's poison is refused at the gateway: \(report)")
        let letters = try await redis.send(RawCommand("XRANGE", cluster.keys.deadLetterStream, "-", "+")).array ?? []
        var reasons: [String: String] = [:]
        for letter in letters {
            let fields = (letter.array?[1].array ?? []).compactMap(\.string)
            func field(_ name: String) -> String? { fields.firstIndex(of: name).map { fields[$0 + 1] } }
            if let id = field("id") { reasons[id] = field("dlq_reason") }
        }
        #expect(Set(reasons.keys) == Set(poison.map(\.id)), "each poison entry is dead-lettered once")
        #expect(reasons.values.allSatisfy { $0.hasPrefix("PostgreSQL 22") }, "with the database's message: \(reasons)")
        let stored = try await cluster.query("SELECT CAST(COUNT(*) AS TEXT) FROM logs WHERE message LIKE 'poison:%'")
        #expect(stored.first?.first == "0")
        passed = report.isClean
    }

    /// Log events an earlier gateway accepted and PostgreSQL refuses.
    static func entriesAnEarlierGatewayAccepted() -> [QueuedEvent] {
        let yearZero = Timestamp(milliseconds: Timestamp.storable.lowerBound.milliseconds - 7_200_000)
        let events = [
            LogEvent(service: "ledger-svc", level: .info, message: "poison:nul\u{0}", timestamp: .now),
            LogEvent(service: "ledger-svc", level: .info, message: "poison:key", timestamp: .now, metadata: .object([("k\u{0}", .number("1"))])),
            LogEvent(service: "ledger-svc", level: .info, message: "poison:number", timestamp: .now, metadata: .object([("n", .number("1e131072"))])),
            LogEvent(service: "ledger-svc", level: .info, message: "poison:year", timestamp: yearZero),
        ]
        return events.map { QueuedEvent(id: UUID().uuidString.lowercased(), org: "org-a", receivedAt: .now, event: .log($0)) }
    }
}
