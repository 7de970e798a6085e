import Foundation
import ServiceLifecycle
import Shared

/// Where the worker stores events. Both implementations (SQLite, PostgreSQL) pass the same tests.
public protocol EventSink: Sendable {
    /// Creates the schema or migrates it to the latest version.
    func prepare() async throws(SinkError)
    /// Stores `events` in one transaction, skipping ids already stored; returns how many rows were new.
    func store(_ events: [QueuedEvent]) async throws(SinkError) -> Int
    /// Closes connections; later calls fail.
    func close() async
    /// Makes sure the days around `now` can take rows without waiting (PostgreSQL's day partitions: yesterday to
    /// the day after tomorrow); nothing to do in SQLite.
    func prepareDays(around now: Timestamp) async throws(SinkError)
    /// Removes what has expired by `policy` at `now`, in steps of at most `stepRows` rows or one partition, each
    /// its own short transaction, asking `proceed` before each: when it answers false (the lease is lost, the
    /// worker stops), the run ends there and the next one goes on from where it is.
    func expire(_ policy: RetentionPolicy, now: Timestamp, stepRows: Int, proceed: @Sendable () async -> Bool) async throws(SinkError)
        -> RetentionOutcome
    /// What each kind's table holds now.
    func storage() async throws(SinkError) -> [EventKind: StorageReport]
    /// Runs what the sink needs while the worker runs (PostgreSQL's connection pool) until the worker shuts down
    /// gracefully; the worker runs it first among its services, so it stops after the consumer has finished its batch.
    /// A sink with nothing to run waits for the shutdown.
    func run() async throws
}

extension EventSink {
    public func run() async throws {
        try? await gracefulShutdown()
    }
}

/// A sink's lifecycle (`EventSink.run`) as one of the worker's services.
public struct SinkService: Service {
    public let sink: any EventSink

    public init(_ sink: any EventSink) { self.sink = sink }

    public func run() async throws { try await sink.run() }
}

/// What one retention run removed.
public struct RetentionOutcome: Sendable, Equatable {
    /// Rows deleted, by kind (rows in dropped partitions are not counted here).
    public var expiredRows: [EventKind: Int] = [:]
    /// Day partitions dropped, by kind.
    public var droppedPartitions: [EventKind: Int] = [:]
    /// Whether the run got through everything (false: `proceed` stopped it).
    public var finished = true

    public init() {}
}

/// Why a store failed.
public struct SinkError: Error, Sendable, CustomStringConvertible {
    /// Whether retrying later can help.
    public enum Code: Sendable {
        /// The database is down, locked, full or unreachable: retry the same events later.
        case unavailable
        /// The database refused these events: retrying the same events will fail again.
        case rejected
    }

    /// Whether retrying later can help.
    public var code: Code
    /// What the database said, for logs and the dead-letter stream.
    public var message: String

    /// An error of `code` saying `message`.
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "SinkError(\(code)): \(message)" }
}

/// Picks the sink from `OPERYN_DATABASE_URL`.
public enum SinkFactory {
    /// The sink of `url`; `password` (from `OPERYN_DATABASE_PASSWORD_FILE`) wins over a PostgreSQL URL's own.
    public static func make(url: String, password: String? = nil) throws(SinkError) -> any EventSink {
        if url.hasPrefix("sqlite:") {
            var path = String(url.dropFirst("sqlite:".count))
            if path.hasPrefix("//") { path.removeFirst(2) }
            guard !path.isEmpty else { throw SinkError(code: .rejected, message: "OPERYN_DATABASE_URL sqlite: needs a path") }
            return SQLiteSink(path: path)
        }
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            return try PostgresSink(url: url, password: password)
        }
        throw SinkError(code: .rejected, message: "OPERYN_DATABASE_URL must start with sqlite: or postgres://")
    }
}

extension SinkFactory {
    /// `url` without its password, for messages and logs.
    public static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "***"
        return components.string ?? url
    }
}

/// The columns of each table, in order, from each kind's description (`EventKind.fields`); both sinks use them.
enum Schema {
    static let logs = EventKind.logs.columns
    static let metrics = EventKind.metrics.columns
    static let deployments = EventKind.deployments.columns
}

/// One stored value of a row.
enum ColumnValue {
    case text(String?)
    case real(Double)
    /// Stored as ISO 8601 UTC text with milliseconds (SQLite) or `timestamptz` (PostgreSQL).
    case timestamp(Timestamp)
    /// Stored as compact JSON (SQLite text, PostgreSQL `jsonb`).
    case json(JSONValue?)
}

extension QueuedEvent {
    /// Calls `visit` with each column of this event's row, in `Schema`'s order: the one place both sinks take a
    /// row's values from.
    func forEachColumn(_ visit: (_ name: StaticString, _ value: ColumnValue) -> Void) {
        visit("id", .text(id))
        visit("org_id", .text(org))
        switch event {
        case .log(let event):
            visit("service", .text(event.service))
            visit("level", .text(event.level.rawValue))
            visit("message", .text(event.message))
            visit("timestamp", .timestamp(event.timestamp))
            visit("trace_id", .text(event.traceId))
            visit("span_id", .text(event.spanId))
            visit("metadata", .json(event.metadata))
        case .metric(let event):
            visit("service", .text(event.service))
            visit("name", .text(event.name))
            visit("value", .real(event.value))
            visit("unit", .text(event.unit))
            visit("timestamp", .timestamp(event.timestamp))
            visit("labels", .json(event.labelsObject))
        case .deployment(let event):
            visit("service", .text(event.service))
            visit("version", .text(event.version))
            visit("environment", .text(event.environment))
            visit("git_hash", .text(event.gitHash))
            visit("timestamp", .timestamp(event.timestamp))
            visit("metadata", .json(event.metadata))
        }
        visit("received_at", .timestamp(receivedAt))
    }
}
