import Shared

/// Where the worker stores events. Both implementations (SQLite, PostgreSQL) pass the same tests.
protocol EventSink: Sendable {
    /// Creates the schema or migrates it to the latest version.
    func prepare() async throws(SinkError)
    /// Stores `events` in one transaction, skipping ids already stored; returns how many rows were new.
    func store(_ events: [QueuedEvent]) async throws(SinkError) -> Int
    /// Closes connections; later calls fail.
    func close() async
}

/// Why a store failed.
struct SinkError: Error, Sendable, CustomStringConvertible {
    /// Whether retrying later can help.
    enum Code: Sendable {
        /// The database is down, locked, full or unreachable: retry the same events later.
        case unavailable
        /// The database refused these events: retrying the same events will fail again.
        case rejected
    }

    var code: Code
    var message: String

    var description: String { "SinkError(\(code)): \(message)" }
}

/// Picks the sink from `OPERYN_DATABASE_URL`.
enum SinkFactory {
    static func make(url: String) throws(SinkError) -> any EventSink {
        if url.hasPrefix("sqlite:") {
            var path = String(url.dropFirst("sqlite:".count))
            if path.hasPrefix("//") { path.removeFirst(2) }
            guard !path.isEmpty else { throw SinkError(code: .rejected, message: "OPERYN_DATABASE_URL sqlite: needs a path") }
            return SQLiteSink(path: path)
        }
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            return try PostgresSink(url: url)
        }
        throw SinkError(code: .rejected, message: "OPERYN_DATABASE_URL must start with sqlite: or postgres://")
    }
}

/// The columns of each table, in order; both sinks use them.
enum Schema {
    static let logs = ["id", "org_id", "service", "level", "message", "timestamp", "trace_id", "span_id", "metadata", "received_at"]
    static let metrics = ["id", "org_id", "service", "name", "value", "unit", "timestamp", "labels", "received_at"]
    static let deployments = ["id", "org_id", "service", "version", "environment", "git_hash", "timestamp", "metadata", "received_at"]
}
