import CSQLite

/// Another connection holding an exclusive lock on a database, as a second process would.
public final class SQLiteLock {
    private var database: OpaquePointer?

    public init(path: String) {
        sqlite3_open_v2(path, &database, SQLITE_OPEN_READWRITE, nil)
        sqlite3_exec(database, "BEGIN EXCLUSIVE;", nil, nil, nil)
    }

    public func release() {
        sqlite3_exec(database, "ROLLBACK;", nil, nil, nil)
        sqlite3_close_v2(database)
        database = nil
    }

    deinit { if database != nil { release() } }
}
