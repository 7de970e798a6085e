import CSQLite
import Dispatch
import Foundation
import Shared

/// Stores events in a SQLite file: WAL journal, `synchronous=FULL` (a commit survives power loss, so an
/// XACK after it never loses an event), a busy timeout, one transaction per batch, `INSERT OR IGNORE`.
///
/// `@unchecked Sendable`: the handle and statements are touched only on `queue`, a serial queue of
/// the sink's own, so blocking SQLite calls never run on Swift's cooperative pool.
final class SQLiteSink: EventSink, @unchecked Sendable {
    let path: String
    private let queue = DispatchQueue(label: "operyn.sqlite")
    var database: OpaquePointer?
    private var statements: [EventKind: OpaquePointer] = [:]
    /// One row's text values, written back to back and bound in place (`SQLITE_STATIC`): reused from row to
    /// row, so binding a row allocates nothing.
    private var rowBytes: [UInt8] = []
    private var rowColumns: [Column] = []

    /// Where one bound value is: a text's bytes in `rowBytes`, a number, or NULL.
    private enum Column {
        case text(offset: Int, count: Int)
        case real(Double)
        case null
    }

    /// Versioned migrations; each runs once, in order, in its own transaction.
    static let migrations: [String] = [
        """
        CREATE TABLE logs (
            id TEXT PRIMARY KEY, org_id TEXT NOT NULL, service TEXT NOT NULL, level TEXT NOT NULL, message TEXT NOT NULL,
            timestamp TEXT NOT NULL, trace_id TEXT, span_id TEXT, metadata TEXT, received_at TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX logs_org_service_time ON logs (org_id, service, timestamp);
        CREATE INDEX logs_org_time ON logs (org_id, timestamp);
        CREATE TABLE metrics (
            id TEXT PRIMARY KEY, org_id TEXT NOT NULL, service TEXT NOT NULL, name TEXT NOT NULL, value REAL NOT NULL,
            unit TEXT NOT NULL, timestamp TEXT NOT NULL, labels TEXT, received_at TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX metrics_org_service_name_time ON metrics (org_id, service, name, timestamp);
        CREATE TABLE deployments (
            id TEXT PRIMARY KEY, org_id TEXT NOT NULL, service TEXT NOT NULL, version TEXT NOT NULL, environment TEXT NOT NULL,
            git_hash TEXT, timestamp TEXT NOT NULL, metadata TEXT, received_at TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX deployments_org_service_time ON deployments (org_id, service, timestamp);
        """,
        // 2: retention deletes one organization's oldest rows through (org_id, received_at); logs gain a trace_id
        // lookup; deployments are indexed by service and environment.
        """
        CREATE INDEX logs_org_received ON logs (org_id, received_at);
        CREATE INDEX metrics_org_received ON metrics (org_id, received_at);
        CREATE INDEX deployments_org_received ON deployments (org_id, received_at);
        CREATE INDEX logs_org_trace ON logs (org_id, trace_id) WHERE trace_id IS NOT NULL;
        DROP INDEX deployments_org_service_time;
        CREATE INDEX deployments_org_service_environment_time ON deployments (org_id, service, environment, timestamp);
        """,
    ]

    /// How long a write waits for another connection's lock before the database counts as unavailable.
    let busyTimeoutMilliseconds: Int32

    /// The most pages the file may hold (`PRAGMA max_page_count`; `nil`: SQLite's default, in effect none): writes
    /// past it fail with `SQLITE_FULL`, as on a full disk.
    let maxPageCount: Int?

    init(path: String, busyTimeoutMilliseconds: Int32 = 5_000, maxPageCount: Int? = nil) {
        self.path = path
        self.busyTimeoutMilliseconds = busyTimeoutMilliseconds
        self.maxPageCount = maxPageCount
    }

    deinit {
        for statement in statements.values { sqlite3_finalize(statement) }
        if let database { sqlite3_close_v2(database) }
    }

    func prepare() async throws(SinkError) {
        try await run { () throws(SinkError) in try self.openAndMigrate() }
    }

    func store(_ events: [QueuedEvent]) async throws(SinkError) -> Int {
        guard !events.isEmpty else { return 0 }
        return try await run { () throws(SinkError) in try self.insert(events) }
    }

    func close() async {
        try? await run { () throws(SinkError) in
            for statement in self.statements.values { sqlite3_finalize(statement) }
            self.statements = [:]
            if let database = self.database { sqlite3_close_v2(database) }
            self.database = nil
        }
    }

    func run<T: Sendable>(_ body: @escaping @Sendable () throws(SinkError) -> T) async throws(SinkError) -> T {
        let result: Result<T, SinkError> = await withCheckedContinuation { continuation in
            queue.async {
                do throws(SinkError) {
                    continuation.resume(returning: .success(try body()))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try result.get()
    }

    /// The operating system's words for a file error.
    private static func cause(of error: any Error) -> String {
        let underlying = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError
        if let code = underlying?.code, underlying?.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(code))) }
        return error.localizedDescription
    }

    // MARK: On `queue`

    func openAndMigrate() throws(SinkError) {
        if database == nil {
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                // A folder that cannot be made or written will not become writable by waiting: say so at once.
                do {
                    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                } catch {
                    throw SinkError(code: .rejected, message: "cannot create the folder \(directory) for the SQLite database: \(Self.cause(of: error))")
                }
                guard access(directory, W_OK) == 0 else {
                    throw SinkError(
                        code: .rejected, message: "cannot write the folder \(directory) for the SQLite database: \(String(cString: strerror(errno)))")
                }
            }
            var handle: OpaquePointer?
            let status = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil)
            guard status == SQLITE_OK, let handle else {
                if let handle { sqlite3_close_v2(handle) }
                throw SinkError(code: .unavailable, message: "cannot open SQLite database at \(path): \(String(cString: sqlite3_errstr(status)))")
            }
            database = handle
            sqlite3_busy_timeout(handle, busyTimeoutMilliseconds)
            // A new file releases the pages retention frees (`PRAGMA incremental_vacuum`); this must be said before
            // its first table.
            if try integer("SELECT count(*) FROM sqlite_master") == 0 { try execute("PRAGMA auto_vacuum=INCREMENTAL;") }
            // A 64 MiB page cache and memory-mapped reads keep index pages in memory between batches.
            try execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-65536; PRAGMA mmap_size=268435456;")
            if let maxPageCount { try execute("PRAGMA max_page_count=\(maxPageCount);") }
        }
        try execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);")
        let applied = try currentVersion()
        for (index, migration) in Self.migrations.enumerated() where index + 1 > applied {
            try execute("BEGIN IMMEDIATE;")
            do throws(SinkError) {
                // Another worker starting at the same time may have applied it while this one waited for the lock.
                guard try currentVersion() < index + 1 else {
                    try execute("COMMIT;")
                    continue
                }
                try execute(migration)
                try execute("INSERT INTO schema_migrations (version, applied_at) VALUES (\(index + 1), '\(Timestamp.now.iso8601)');")
                try execute("COMMIT;")
            } catch {
                try? execute("ROLLBACK;")
                throw error
            }
        }
        // A file made before retention did not release freed pages: one VACUUM turns that on (it rewrites the
        // file, so it runs once, at the first start of this release; freed pages are reused meanwhile).
        if try integer("PRAGMA auto_vacuum") == 0 {
            do throws(SinkError) {
                try execute("PRAGMA auto_vacuum=INCREMENTAL; VACUUM;")
            } catch {
                FileHandle.standardError.write(Data("operyn-worker: SQLite VACUUM for incremental vacuum postponed: \(error.message)\n".utf8))
            }
        }
    }

    /// The first column of the first row of `sql`, as an integer.
    func integer(_ sql: String) throws(SinkError) -> Int {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(database, sql, -1, &statement, nil) == SQLITE_OK else { throw failure("run \(sql)") }
        defer { sqlite3_finalize(statement) }
        guard sqlite3_step(statement) == SQLITE_ROW else { throw failure("run \(sql)") }
        return Int(sqlite3_column_int64(statement, 0))
    }

    private func currentVersion() throws(SinkError) -> Int {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(database, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", -1, &statement, nil) == SQLITE_OK else {
            throw failure("read schema version")
        }
        defer { sqlite3_finalize(statement) }
        guard sqlite3_step(statement) == SQLITE_ROW else { throw failure("read schema version") }
        return Int(sqlite3_column_int64(statement, 0))
    }

    private func insert(_ events: [QueuedEvent]) throws(SinkError) -> Int {
        if database == nil { try openAndMigrate() }
        try execute("BEGIN IMMEDIATE;")
        var inserted = 0
        do throws(SinkError) {
            for queued in events {
                let statement = try statement(for: queued.event.kind)
                collect(queued)
                let status = rowBytes.withUnsafeBufferPointer { bytes in
                    bind(to: statement, from: bytes)
                    return sqlite3_step(statement)
                }
                sqlite3_reset(statement)
                sqlite3_clear_bindings(statement)
                guard status == SQLITE_DONE else { throw failure("insert event \(queued.id)", status: status) }
                inserted += Int(sqlite3_changes(database))
            }
            try execute("COMMIT;")
        } catch {
            try? execute("ROLLBACK;")
            throw error
        }
        return inserted
    }

    private func statement(for kind: EventKind) throws(SinkError) -> OpaquePointer {
        if let statement = statements[kind] { return statement }
        let columns: [String]
        switch kind {
        case .logs: columns = Schema.logs
        case .metrics: columns = Schema.metrics
        case .deployments: columns = Schema.deployments
        }
        let sql = "INSERT OR IGNORE INTO \(kind.rawValue) (\(columns.joined(separator: ", "))) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))"
        var statement: OpaquePointer?
        guard sqlite3_prepare_v3(database, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil) == SQLITE_OK, let statement else {
            throw failure("prepare insert into \(kind.rawValue)")
        }
        statements[kind] = statement
        return statement
    }

    /// Writes `queued`'s column values, in the insert's order, into `rowBytes` and `rowColumns`.
    private func collect(_ queued: QueuedEvent) {
        rowBytes.removeAll(keepingCapacity: true)
        rowColumns.removeAll(keepingCapacity: true)
        queued.forEachColumn { _, value in
            let offset = rowBytes.count
            switch value {
            case .text(nil), .json(nil): return rowColumns.append(.null)
            case .real(let number): return rowColumns.append(.real(number))
            case .text(let text?): rowBytes.append(contentsOf: text.utf8)
            case .timestamp(let timestamp): timestamp.appendISO8601(to: &rowBytes)
            case .json(let json?): json.encode(into: &rowBytes)
            }
            rowColumns.append(.text(offset: offset, count: rowBytes.count - offset))
        }
    }

    /// Binds the collected row. SQLite keeps pointers into `bytes` (`rowBytes`, `SQLITE_STATIC`): the caller
    /// steps the statement before `bytes` goes away and resets it after.
    private func bind(to statement: OpaquePointer, from bytes: UnsafeBufferPointer<UInt8>) {
        for (position, column) in rowColumns.enumerated() {
            let index = Int32(position + 1)
            switch column {
            case .text(let offset, let count):
                // Never a NULL pointer, even for an empty text (which NULL would turn into SQL NULL).
                let start = UnsafeRawPointer(bytes.baseAddress! + offset).assumingMemoryBound(to: CChar.self)
                sqlite3_bind_text(statement, index, start, Int32(count), nil)
            case .real(let value):
                sqlite3_bind_double(statement, index, value)
            case .null:
                sqlite3_bind_null(statement, index)
            }
        }
    }

    func execute(_ sql: String) throws(SinkError) {
        var message: UnsafeMutablePointer<CChar>?
        let status = sqlite3_exec(database, sql, nil, nil, &message)
        if status != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(status))
            sqlite3_free(message)
            throw SinkError(code: Self.code(status), message: "SQLite: \(text)")
        }
    }

    func failure(_ action: String, status: Int32? = nil) -> SinkError {
        let code = status ?? sqlite3_errcode(database)
        return SinkError(code: Self.code(code), message: "SQLite could not \(action): \(String(cString: sqlite3_errmsg(database)))")
    }

    /// Busy, locked, I/O, full, unopenable, read-only and out-of-memory pass; anything else is about the data.
    private static func code(_ status: Int32) -> SinkError.Code {
        switch status & 0xFF {
        case SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_NOMEM, SQLITE_PROTOCOL: .unavailable
        default: .rejected
        }
    }
}
