import CSQLite

/// Another connection holding an exclusive lock on a database, as a second process would.
public final class SQLiteLock {
    private var database: OpaquePointer?

    /// Whether the lock is held (`BEGIN EXCLUSIVE` succeeded within the busy timeout).
    public private(set) var acquired = false

    /// Takes the lock, waiting up to 10 s for a writer that holds it now (a worker in the middle of a batch).
    public init(path: String) {
        sqlite3_open_v2(path, &database, SQLITE_OPEN_READWRITE, nil)
        sqlite3_busy_timeout(database, 10_000)
        acquired = sqlite3_exec(database, "BEGIN EXCLUSIVE;", nil, nil, nil) == SQLITE_OK
    }

    public func release() {
        sqlite3_exec(database, "ROLLBACK;", nil, nil, nil)
        sqlite3_close_v2(database)
        database = nil
    }

    deinit { if database != nil { release() } }
}
