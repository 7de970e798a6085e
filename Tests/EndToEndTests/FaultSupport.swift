import Foundation
import NIOCore
import Shared
import TestSupport
import Testing

/// Whether the whole fault suite runs (`OPERYN_FAULT_SUITE=full`, set by `scripts/fault-suite.sh`); the README's test
/// command runs only its fast part.
let fullFaultSuite = ProcessInfo.processInfo.environment["OPERYN_FAULT_SUITE"] == "full"

extension Cluster {
    /// Waits until every stream's group has nothing undelivered or pending (twice in a row), then reads this ledger's
    /// rows and answers the verdict. Fails the test when the backlog does not drain within `seconds`.
    func drainAndVerify(_ ledger: Ledger, seconds: Int = 90) async throws -> LedgerReport {
        let redis = try redis()
        defer { redis.shutdown() }
        let deadline = NIODeadline.now() + .milliseconds(Int64(seconds * 1_000))
        var emptyReadings = 0
        var last: StreamBacklog?
        while emptyReadings < 2 {
            guard NIODeadline.now() < deadline else {
                Issue.record("backlog did not drain in \(seconds) s: \(String(describing: last))")
                break
            }
            do {
                last = try await StreamBacklog.read(redis: redis, keys: keys)
                emptyReadings = last?.total == 0 ? emptyReadings + 1 : 0
            } catch {
                emptyReadings = 0
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        let rows = try await query("SELECT message, org_id FROM logs WHERE message LIKE '\(ledger.pattern)'")
        let report = ledger.verify(stored: rows.map { (marker: $0[0] ?? "", organization: $0[1] ?? "") })
        print("[\(Test.current?.name ?? "fault")] \(report)")
        return report
    }
}

/// Runs `load` in the background while `faults` runs, then stops the load and waits for it.
func underLoad(_ load: LoadGenerator, _ faults: () async throws -> Void) async throws {
    let traffic = Task { await load.run() }
    do {
        try await faults()
    } catch {
        load.stop()
        await traffic.value
        throw error
    }
    load.stop()
    await traffic.value
}

/// Resident memory of a process in MB, from `/proc/<pid>/status`.
func residentMegabytes(_ pid: pid_t) -> Double {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
    else { return 0 }
    let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    return kilobytes / 1_024
}

extension Cluster {
    /// Runs `faults` under ledger traffic to the gateways on `ports`, lets the system drain, checks the ledger
    /// (lost, duplicated, unexpected, wrong organization: all 0) and answers its report.
    func ledgerRun(
        ports: [Int], drainSeconds: Int = 90, organizations: [String] = LoadGenerator.defaultOrganizations,
        _ faults: (LoadGenerator, Ledger) async throws -> Void
    ) async throws -> LedgerReport {
        let ledger = Ledger()
        let load = LoadGenerator(ledger: ledger, ports: ports, organizations: organizations, apiKey: Cluster.serverKey)
        try await underLoad(load) { try await faults(load, ledger) }
        let report = try await drainAndVerify(ledger, seconds: drainSeconds)
        #expect(report.isClean, "\(report)")
        return report
    }
}
