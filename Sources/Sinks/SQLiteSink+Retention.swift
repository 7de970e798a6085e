import CSQLite
import Shared

/// Retention in SQLite: each organization's expired rows deleted through `(org_id, received_at)`, a bounded step at a
/// time, each its own short transaction on the sink's queue (so inserts interleave), then the freed pages released
/// by incremental vacuum, a bounded number at a time.
extension SQLiteSink {
    /// Pages released per incremental vacuum step (4 KiB pages: 8 MiB).
    static let vacuumStepPages = 2_048

    func prepareDays(around now: Timestamp) async throws(SinkError) {}

    func expire(_ policy: RetentionPolicy, now: Timestamp, stepRows: Int, proceed: @Sendable () async -> Bool) async throws(SinkError)
        -> RetentionOutcome
    {
        var outcome = RetentionOutcome()
        for kind in EventKind.allCases {
            let organizations = try await run { () throws(SinkError) in try self.organizations(kind) }
            for organization in organizations {
                guard let days = policy.days(organization: organization, kind: kind) else { continue }
                let cutoff = RetentionPolicy.cutoff(days: days, now: now).iso8601
                while true {
                    guard await proceed() else {
                        outcome.finished = false
                        return outcome
                    }
                    let deleted = try await run { () throws(SinkError) in try self.deleteStep(kind, organization: organization, before: cutoff, rows: stepRows)
                    }
                    outcome.expiredRows[kind, default: 0] += deleted
                    if deleted < stepRows { break }
                }
            }
        }
        while await proceed() {
            let released = try await run { () throws(SinkError) -> Int in
                let free = try self.integer("PRAGMA freelist_count")
                guard free > 0 else { return 0 }
                try self.execute("PRAGMA incremental_vacuum(\(Self.vacuumStepPages));")
                return min(free, Self.vacuumStepPages)
            }
            if released < Self.vacuumStepPages { break }
        }
        return outcome
    }

    func storage() async throws(SinkError) -> [EventKind: StorageReport] {
        try await run { () throws(SinkError) -> [EventKind: StorageReport] in
            if self.database == nil { try self.openAndMigrate() }
            let used = Int64(try self.integer("PRAGMA page_count") - self.integer("PRAGMA freelist_count")) * Int64(try self.integer("PRAGMA page_size"))
            var reports: [EventKind: StorageReport] = [:]
            for kind in EventKind.allCases {
                var oldest: String?
                for organization in try self.organizations(kind) {
                    if let first = try self.text(
                        "SELECT min(received_at) FROM \(kind.rawValue) WHERE org_id = ?1", organization)
                    {
                        oldest = min(oldest ?? first, first)
                    }
                }
                reports[kind] = StorageReport(oldestDay: oldest.map { String($0.prefix(10)) }, partitions: 0, bytes: used)
            }
            return reports
        }
    }

    // MARK: On the sink's queue

    /// The organizations with rows of `kind`: a walk of the `(org_id, received_at)` index, one seek per organization.
    private func organizations(_ kind: EventKind) throws(SinkError) -> [String] {
        if database == nil { try openAndMigrate() }
        let table = kind.rawValue
        let sql = """
            WITH RECURSIVE o(org) AS (SELECT min(org_id) FROM \(table) UNION ALL SELECT (SELECT min(org_id) FROM \(table) WHERE org_id > o.org) FROM o WHERE o.org IS NOT NULL)
            SELECT org FROM o WHERE org IS NOT NULL
            """
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(database, sql, -1, &statement, nil) == SQLITE_OK else { throw failure("list the organizations of \(table)") }
        defer { sqlite3_finalize(statement) }
        var organizations: [String] = []
        while true {
            let status = sqlite3_step(statement)
            if status == SQLITE_DONE { break }
            guard status == SQLITE_ROW else { throw failure("list the organizations of \(table)", status: status) }
            organizations.append(String(cString: sqlite3_column_text(statement, 0)))
        }
        return organizations
    }

    /// Deletes at most `rows` of `organization`'s rows of `kind` received before `cutoff`; answers how many went.
    private func deleteStep(_ kind: EventKind, organization: String, before cutoff: String, rows: Int) throws(SinkError) -> Int {
        if database == nil { try openAndMigrate() }
        let table = kind.rawValue
        let sql = "DELETE FROM \(table) WHERE id IN (SELECT id FROM \(table) WHERE org_id = ?1 AND received_at < ?2 LIMIT \(rows))"
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(database, sql, -1, &statement, nil) == SQLITE_OK else { throw failure("expire rows of \(table)") }
        defer { sqlite3_finalize(statement) }
        sqlite3_bind_text(statement, 1, organization, -1, CSQLite_transient())
        sqlite3_bind_text(statement, 2, cutoff, -1, CSQLite_transient())
        let status = sqlite3_step(statement)
        guard status == SQLITE_DONE else { throw failure("expire rows of \(table)", status: status) }
        return Int(sqlite3_changes(database))
    }

    /// The text of the first column of `sql`'s first row, with `argument` bound to ?1.
    private func text(_ sql: String, _ argument: String) throws(SinkError) -> String? {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(database, sql, -1, &statement, nil) == SQLITE_OK else { throw failure("read \(sql)") }
        defer { sqlite3_finalize(statement) }
        sqlite3_bind_text(statement, 1, argument, -1, CSQLite_transient())
        guard sqlite3_step(statement) == SQLITE_ROW, let text = sqlite3_column_text(statement, 0) else { return nil }
        return String(cString: text)
    }
}
