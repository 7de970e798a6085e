import Foundation
import PostgresNIO
import Shared

/// Retention in PostgreSQL: whole day partitions dropped past the longest retention in force, shorter retentions
/// (an organization's, or the default under a longer override) expired by bounded deletes.
extension PostgresSink {
    /// The longest a partition drop waits for the table's lock before giving up until the next step: ingestion's
    /// inserts queue behind a waiting `DROP`, so the wait is what they could lose.
    static let dropLockTimeout = "50ms"

    func expire(_ policy: RetentionPolicy, now: Timestamp, stepRows: Int, proceed: @Sendable () async -> Bool) async throws(SinkError)
        -> RetentionOutcome
    {
        var outcome = RetentionOutcome()
        for kind in EventKind.allCases {
            let longest = policy.longest(kind)
            if let longest {
                let cutoff = RetentionPolicy.cutoff(days: longest, now: now)
                for partition in try await partitions(kind, endingBy: cutoff) {
                    guard await proceed() else {
                        outcome.finished = false
                        return outcome
                    }
                    if try await drop(partition, kind: kind) { outcome.droppedPartitions[kind, default: 0] += 1 }
                }
                // What is left before the cutoff: the partition the cutoff falls in, and the default partition.
                guard try await delete(kind, before: cutoff, where: nil, stepRows: stepRows, proceed: proceed, into: &outcome) else { return outcome }
            }
            // Organizations without an override whose default is shorter than a longer override somewhere.
            if let defaultDays = policy.defaultDays, let longest, defaultDays < longest {
                let own = policy.overrides.keys.filter { policy.days(organization: $0, kind: kind) != defaultDays }.sorted()
                let cutoff = RetentionPolicy.cutoff(days: defaultDays, now: now)
                guard try await delete(kind, before: cutoff, where: .except(own), stepRows: stepRows, proceed: proceed, into: &outcome) else {
                    return outcome
                }
            }
            for (organization, days) in policy.shorter(kind) where days != policy.defaultDays || longest == nil {
                let cutoff = RetentionPolicy.cutoff(days: days, now: now)
                guard try await delete(kind, before: cutoff, where: .only(organization), stepRows: stepRows, proceed: proceed, into: &outcome) else {
                    return outcome
                }
            }
        }
        return outcome
    }

    /// Which organizations' rows a delete takes.
    enum Organizations {
        case only(String)
        case except([String])
    }

    /// Deletes `kind`'s rows received before `cutoff` (of `organizations`, or all), `stepRows` at a time, each step
    /// its own statement. False when `proceed` stopped it.
    private func delete(
        _ kind: EventKind, before cutoff: Timestamp, where organizations: Organizations?, stepRows: Int, proceed: @Sendable () async -> Bool,
        into outcome: inout RetentionOutcome
    ) async throws(SinkError) -> Bool {
        let table = kind.rawValue
        var filter = "received_at < $1::timestamptz"
        switch organizations {
        case .only: filter += " AND org_id = $2"
        case .except: filter += " AND org_id <> ALL($2::text[])"
        case nil: break
        }
        let sql =
            "WITH gone AS (DELETE FROM \(table) WHERE (id, received_at) IN (SELECT id, received_at FROM \(table) WHERE \(filter) LIMIT \(stepRows)) RETURNING 1) SELECT count(*)::int8 FROM gone"
        while true {
            guard await proceed() else {
                outcome.finished = false
                return false
            }
            var bindings = PostgresBindings()
            bindings.append(cutoff.iso8601)
            switch organizations {
            case .only(let organization): bindings.append(organization)
            case .except(let organizations): bindings.append(organizations)
            case nil: break
            }
            let query = PostgresQuery(unsafeSQL: sql, binds: bindings)
            let deleted = try await classify { () async throws -> Int in
                var count = 0
                for try await value in try await self.client.query(query, logger: self.logger).decode(Int64.self) { count = Int(value) }
                return count
            }
            outcome.expiredRows[kind, default: 0] += deleted
            if deleted < stepRows { return true }
        }
    }

    /// `kind`'s partitions whose range ends at or before `cutoff`, oldest first.
    private func partitions(_ kind: EventKind, endingBy cutoff: Timestamp) async throws(SinkError) -> [String] {
        try await classify { () async throws -> [String] in
            var names: [String] = []
            for try await name in try await self.client.query(
                "SELECT name FROM operyn_partitions WHERE parent = \(kind.rawValue) AND upper <= \(cutoff.iso8601)::timestamptz ORDER BY lower",
                logger: self.logger
            ).decode(String.self) {
                names.append(name)
            }
            return names
        }
    }

    /// Drops one partition and its catalog row, waiting at most `dropLockTimeout` for the lock. False when the lock
    /// was not had in time (the next run tries again).
    private func drop(_ partition: String, kind: EventKind) async throws(SinkError) -> Bool {
        let started = ContinuousClock.now
        do throws(SinkError) {
            try await classify {
                try await self.client.withTransaction(logger: self.logger) { connection in
                    try await connection.query(PostgresQuery(unsafeSQL: "SET LOCAL lock_timeout = '\(Self.dropLockTimeout)'"), logger: self.logger)
                    try await connection.query(PostgresQuery(unsafeSQL: "DROP TABLE IF EXISTS \(Self.quoted(partition))"), logger: self.logger)
                    try await connection.query("DELETE FROM operyn_partitions WHERE name = \(partition)", logger: self.logger)
                }
            }
        } catch {
            guard error.message.contains("55P03") else { throw error }
            logger.info("partition drop waited too long for its lock; next run", metadata: ["partition": "\(partition)"])
            return false
        }
        if let day = Self.day(ofPartition: partition) { partitionedDays.withLock { _ = $0[kind]?.remove(day) } }
        logger.info("partition dropped", metadata: ["partition": "\(partition)", "took": "\(ContinuousClock.now - started)"])
        return true
    }

    /// `name` as an SQL identifier.
    static func quoted(_ name: String) -> String { "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

    /// The day (since 1970-01-01) of a day partition's name (`logs_p20261206`).
    static func day(ofPartition name: String) -> Int64? {
        guard let range = name.range(of: "_p", options: .backwards) else { return nil }
        let digits = name[range.upperBound...]
        guard digits.count == 8, let date = Timestamp(iso8601: "\(digits.prefix(4))-\(digits.dropFirst(4).prefix(2))-\(digits.suffix(2))") else { return nil }
        return date.milliseconds / 86_400_000
    }

    func storage() async throws(SinkError) -> [EventKind: StorageReport] {
        var reports: [EventKind: StorageReport] = [:]
        for kind in EventKind.allCases {
            reports[kind] = try await classify { () async throws -> StorageReport in
                var partitions: [(name: String, day: String)] = []
                for try await (name, day) in try await self.client.query(
                    "SELECT name, to_char(lower AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM operyn_partitions WHERE parent = \(kind.rawValue) ORDER BY lower",
                    logger: self.logger
                ).decode((String, String).self) {
                    partitions.append((name, day))
                }
                var bytes: Int64 = 0
                for try await size in try await self.client.query(
                    "SELECT (COALESCE(sum(pg_total_relation_size(name::regclass)), 0) + pg_total_relation_size(\(kind.rawValue + "_default")::regclass))::int8 FROM operyn_partitions WHERE parent = \(kind.rawValue)",
                    logger: self.logger
                ).decode(Int64.self) {
                    bytes = size
                }
                // The oldest day: the default partition's oldest row (it is normally empty), else the first
                // partition holding a row (a partition's lower bound is its first day).
                var oldest: String?
                for try await date in try await self.client.query(
                    PostgresQuery(unsafeSQL: "SELECT to_char(min(received_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM \(kind.rawValue)_default"),
                    logger: self.logger
                ).decode(String?.self) {
                    oldest = date
                }
                for partition in partitions {
                    if let oldest, oldest <= partition.day { break }
                    var holdsRows = false
                    for try await _ in try await self.client.query(
                        PostgresQuery(unsafeSQL: "SELECT 1 FROM \(Self.quoted(partition.name)) LIMIT 1"), logger: self.logger)
                    {
                        holdsRows = true
                    }
                    if holdsRows {
                        oldest = partition.day
                        break
                    }
                }
                return StorageReport(oldestDay: oldest, partitions: partitions.count, bytes: bytes)
            }
        }
        return reports
    }
}
