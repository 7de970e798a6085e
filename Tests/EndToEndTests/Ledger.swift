import Foundation
import Shared
import Synchronization

/// Every event a fault test sent, by its unique marker, with the class of the answer its request got: 202 accepted,
/// 4xx refused, anything else (5xx, timeout, reset) unknown. Checked against the database once the system drained.
final class Ledger: Sendable {
    enum Outcome: Sendable { case accepted, refused, unknown }

    struct Entry: Sendable {
        var organization: String
        var outcome: Outcome
    }

    /// Unique per ledger, so a database shared with other tests is read for this run's events only.
    let run = UUID().uuidString.prefix(8).lowercased()
    private let entries = Mutex<[String: Entry]>([:])
    private let sequence = Atomic<Int>(0)

    /// A new marker, carried as the event's `message`.
    func marker() -> String { "ledger:\(run):\(sequence.add(1, ordering: .relaxed).newValue)" }

    /// The `LIKE` pattern of this run's markers.
    var pattern: String { "ledger:\(run):%" }

    func record(_ markers: [String], organization: String, _ outcome: Outcome) {
        entries.withLock { entries in
            for marker in markers { entries[marker] = Entry(organization: organization, outcome: outcome) }
        }
    }

    var counts: (accepted: Int, refused: Int, unknown: Int) {
        entries.withLock { entries in
            var counts = (accepted: 0, refused: 0, unknown: 0)
            for entry in entries.values {
                switch entry.outcome {
                case .accepted: counts.accepted += 1
                case .refused: counts.refused += 1
                case .unknown: counts.unknown += 1
                }
            }
            return counts
        }
    }

    /// Compares the ledger with the stored rows (`marker`, `org_id`).
    func verify(stored rows: [(marker: String, organization: String)]) -> LedgerReport {
        let entries = entries.withLock { $0 }
        var report = LedgerReport()
        var storedCount: [String: Int] = [:]
        for row in rows { storedCount[row.marker, default: 0] += 1 }
        report.stored = rows.count
        report.duplicated = storedCount.values.filter { $0 > 1 }.count
        for row in rows {
            guard let entry = entries[row.marker] else {
                report.strangers += 1
                continue
            }
            if entry.organization != row.organization { report.wrongOrganization += 1 }
        }
        for (marker, entry) in entries {
            let isStored = storedCount[marker] != nil
            switch entry.outcome {
            case .accepted:
                report.accepted += 1
                if !isStored { report.lost += 1 }
            case .refused:
                report.refused += 1
                if isStored { report.unexpected += 1 }
            case .unknown:
                report.unknown += 1
                if isStored { report.unknownStored += 1 }
            }
        }
        return report
    }
}

/// The ledger's verdict: `lost`, `duplicated`, `unexpected`, `wrongOrganization` and `strangers` must all be 0.
struct LedgerReport: CustomStringConvertible {
    var accepted = 0
    var refused = 0
    var unknown = 0
    var stored = 0
    var lost = 0
    var duplicated = 0
    var unexpected = 0
    var unknownStored = 0
    var wrongOrganization = 0
    var strangers = 0

    var isClean: Bool { lost == 0 && duplicated == 0 && unexpected == 0 && wrongOrganization == 0 && strangers == 0 }

    var description: String {
        "ledger: accepted \(accepted), refused \(refused), unknown \(unknown) (stored \(unknownStored)), rows \(stored) | "
            + "lost \(lost), duplicated \(duplicated), unexpected \(unexpected), wrong organization \(wrongOrganization), strangers \(strangers)"
    }
}
