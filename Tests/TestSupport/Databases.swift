import CSQLite
import Foundation
import NIOSSL
import PostgresNIO

/// Rows of a query on a SQLite file, every column as text (NULL as nil); no rows when the file is missing.
public func sqliteQuery(path: String, _ sql: String) throws -> [[String?]] {
    var database: OpaquePointer?
    guard sqlite3_open_v2(path, &database, SQLITE_OPEN_READONLY, nil) == SQLITE_OK else {
        sqlite3_close_v2(database)
        return []
    }
    defer { sqlite3_close_v2(database) }
    var statement: OpaquePointer?
    guard sqlite3_prepare_v2(database, sql, -1, &statement, nil) == SQLITE_OK else { return [] }
    defer { sqlite3_finalize(statement) }
    var rows: [[String?]] = []
    while sqlite3_step(statement) == SQLITE_ROW {
        rows.append((0..<sqlite3_column_count(statement)).map { column in sqlite3_column_text(statement, column).map { String(cString: $0) } })
    }
    return rows
}

/// A test setup problem, such as a service the test command should have started.
public struct TestSetupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Fresh databases on the PostgreSQL the test command starts (`OPERYN_TEST_POSTGRES_URL`).
public enum PostgresTestDatabase {
    public static var serverURL: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["OPERYN_TEST_POSTGRES_URL"] else {
                throw TestSetupError("OPERYN_TEST_POSTGRES_URL is not set: run the tests with scripts/test.sh, which starts a PostgreSQL")
            }
            return url
        }
    }

    /// Creates an empty database and returns its URL: on the test command's PostgreSQL, or on the one of `server`
    /// (a URL with its `?sslmode=…`, kept in the answer).
    public static func create(on server: String? = nil) async throws -> String {
        let server = try server ?? serverURL
        let components = try components(of: server)
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        _ = try await query(url: server, "CREATE DATABASE \(name)")
        let query = components.query.map { "?\($0)" } ?? ""
        return "postgres://\(components.user ?? "operyn")@\(components.host!):\(components.port ?? 5432)/\(name)\(query)"
    }

    /// Rows of `sql` on the database at `url`, every column as text; cast non-text columns in the query (results are binary).
    public static func query(url: String, _ sql: String) async throws -> [[String?]] {
        let components = try components(of: url)
        // A URL with an sslmode (the TLS-only server's) is reached over TLS; the test reads, it does not check names.
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .none
        let encrypted = components.queryItems?.contains { $0.name == "sslmode" && $0.value != "disable" } == true
        let configuration = PostgresClient.Configuration(
            host: components.host!, port: components.port ?? 5432, username: components.user ?? "operyn", password: components.password,
            database: String(components.path.dropFirst()), tls: encrypted ? .require(tls) : .disable)
        let client = PostgresClient(configuration: configuration)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            var rows: [[String?]] = []
            for try await row in try await client.query(PostgresQuery(unsafeSQL: sql)) {
                rows.append(row.map { cell in cell.bytes.map { String(buffer: $0) } })
            }
            return rows
        }
    }

    private static func components(of url: String) throws -> URLComponents {
        guard let components = URLComponents(string: url), components.host != nil else { throw TestSetupError("not a PostgreSQL URL: \(url)") }
        return components
    }
}

/// Runs `sql` (statements separated by `;`) on a SQLite file, making it when missing.
public func sqliteExecute(path: String, _ sql: String) throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    var database: OpaquePointer?
    guard sqlite3_open_v2(path, &database, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nil) == SQLITE_OK else {
        sqlite3_close_v2(database)
        throw TestSetupError("cannot open \(path)")
    }
    defer { sqlite3_close_v2(database) }
    var message: UnsafeMutablePointer<CChar>?
    guard sqlite3_exec(database, sql, nil, nil, &message) == SQLITE_OK else {
        let text = message.map { String(cString: $0) } ?? "?"
        sqlite3_free(message)
        throw TestSetupError("SQLite: \(text)")
    }
}
