import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Shared

/// Stores events in PostgreSQL through a postgres-nio connection pool: one transaction per batch; per table, the
/// rows go by `COPY … FROM STDIN` (text format) into a temporary table of the same columns, then
/// `INSERT … SELECT … ON CONFLICT (id) DO NOTHING` moves them into the table, so a redelivered event never makes a
/// second row and the database parses each row once, in its fastest load path.
///
/// The pool runs as a service: `run()` must be running (the worker's service group runs it).
final class PostgresSink: EventSink, Service {
    let client: PostgresClient
    /// Each call must finish within this, or the database counts as unavailable (the pool would otherwise
    /// wait a long time for a connection to a server that is down).
    let timeout: Duration
    private let logger = Logger(label: "operyn.postgres")

    /// Versioned migrations; each runs once, in order, under an advisory lock so workers starting together
    /// do not race.
    static let migrations: [String] = [
        """
        CREATE TABLE logs (
            id uuid PRIMARY KEY, org_id text NOT NULL, service text NOT NULL, level text NOT NULL, message text NOT NULL,
            timestamp timestamptz NOT NULL, trace_id text, span_id text, metadata jsonb, received_at timestamptz NOT NULL
        );
        CREATE INDEX logs_org_service_time ON logs (org_id, service, timestamp);
        CREATE INDEX logs_org_time ON logs (org_id, timestamp);
        CREATE TABLE metrics (
            id uuid PRIMARY KEY, org_id text NOT NULL, service text NOT NULL, name text NOT NULL, value double precision NOT NULL,
            unit text NOT NULL, timestamp timestamptz NOT NULL, labels jsonb, received_at timestamptz NOT NULL
        );
        CREATE INDEX metrics_org_service_name_time ON metrics (org_id, service, name, timestamp);
        CREATE TABLE deployments (
            id uuid PRIMARY KEY, org_id text NOT NULL, service text NOT NULL, version text NOT NULL, environment text NOT NULL,
            git_hash text, timestamp timestamptz NOT NULL, metadata jsonb, received_at timestamptz NOT NULL
        );
        CREATE INDEX deployments_org_service_time ON deployments (org_id, service, timestamp);
        """
    ]

    /// Column types of each table, in the order `forEachColumn` visits them.
    static let recordTypes: [EventKind: String] = [
        .logs:
            "id uuid, org_id text, service text, level text, message text, timestamp timestamptz, trace_id text, span_id text, metadata jsonb, received_at timestamptz",
        .metrics:
            "id uuid, org_id text, service text, name text, value double precision, unit text, timestamp timestamptz, labels jsonb, received_at timestamptz",
        .deployments:
            "id uuid, org_id text, service text, version text, environment text, git_hash text, timestamp timestamptz, metadata jsonb, received_at timestamptz",
    ]

    /// A sink for `postgres://user:password@host:port/database`.
    init(url: String, timeout: Duration = .seconds(10)) throws(SinkError) {
        self.timeout = timeout
        guard let components = URLComponents(string: url), let host = components.host, !host.isEmpty else {
            throw SinkError(code: .rejected, message: "OPERYN_DATABASE_URL is not a postgres://user:password@host:port/database URL")
        }
        let database = String(components.path.drop { $0 == "/" })
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: components.user ?? "postgres", password: components.password,
            database: database.isEmpty ? nil : database, tls: .disable)
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.maximumConnections = 4
        client = PostgresClient(configuration: configuration)
    }

    func run() async throws {
        await cancelWhenGracefulShutdown { await self.client.run() }
    }

    func prepare() async throws(SinkError) {
        try await classify {
            try await self.client.withConnection { connection in
                try await connection.query("SELECT pg_advisory_lock(4242001)", logger: self.logger)
                do {
                    try await connection.query(
                        "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                        logger: self.logger)
                    var applied = 0
                    for try await version in try await connection.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", logger: self.logger)
                        .decode(Int.self)
                    {
                        applied = version
                    }
                    for (index, migration) in Self.migrations.enumerated() where index + 1 > applied {
                        try await connection.withTransaction(logger: self.logger) { transaction in
                            for statement in migration.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespacesAndNewlines) })
                            where !statement.isEmpty {
                                try await transaction.query(PostgresQuery(unsafeSQL: statement), logger: self.logger)
                            }
                            try await transaction.query("INSERT INTO schema_migrations (version) VALUES (\(index + 1))", logger: self.logger)
                        }
                    }
                } catch {
                    _ = try? await connection.query("SELECT pg_advisory_unlock(4242001)", logger: self.logger)
                    throw error
                }
                try await connection.query("SELECT pg_advisory_unlock(4242001)", logger: self.logger)
            }
        }
    }

    /// Column names of each table, in the order `forEachColumn` visits them.
    static let columns: [EventKind: [String]] = recordTypes.mapValues { types in
        types.split(separator: ",").map { String($0.split(separator: " ", omittingEmptySubsequences: true)[0]) }
    }

    func store(_ events: [QueuedEvent]) async throws(SinkError) -> Int {
        guard !events.isEmpty else { return 0 }
        var byKind: [EventKind: [UInt8]] = [:]
        for event in events {
            // Appended in place: a copy of the array out of the dictionary would copy all the rows per event.
            Self.appendRow(event, to: &byKind[event.event.kind, default: []])
        }
        let batches = byKind.sorted { $0.key.rawValue < $1.key.rawValue }
        let logger = logger
        return try await classify {
            try await self.client.withTransaction(logger: logger) { connection in
                var inserted = 0
                for (kind, rows) in batches {
                    let table = kind.rawValue
                    let incoming = "incoming_\(table)"
                    let columns = Self.columns[kind]!.joined(separator: ", ")
                    // Per session, emptied at every commit: no catalog change per batch.
                    try await connection.query(
                        PostgresQuery(
                            unsafeSQL: "CREATE TEMP TABLE IF NOT EXISTS \(incoming) (LIKE \(table) INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"),
                        logger: logger)
                    try await connection.copyFrom(table: incoming, columns: Self.columns[kind]!, logger: logger) { writer in
                        try await writer.write(ByteBuffer(bytes: rows))
                    }
                    let insert = PostgresQuery(
                        unsafeSQL: "INSERT INTO \(table) (\(columns)) SELECT \(columns) FROM \(incoming) ON CONFLICT (id) DO NOTHING RETURNING 1")
                    for try await _ in try await connection.query(insert, logger: logger) { inserted += 1 }
                }
                return inserted
            }
        }
    }

    func close() async {}

    /// Appends one event as a line of `COPY`'s text format: the table's columns separated by tabs, `\N` for null,
    /// backslash, tab, newline and carriage return escaped; `metadata`/`labels` as compact JSON text.
    static func appendRow(_ queued: QueuedEvent, to output: inout [UInt8]) {
        var first = true
        queued.forEachColumn { _, value in
            if !first { output.append(UInt8(ascii: "\t")) }
            first = false
            switch value {
            case .text(nil), .json(nil): output.append(contentsOf: #"\N"#.utf8)
            case .text(let text?):
                var text = text
                text.withUTF8 { appendEscaped($0, to: &output) }
            case .real(let number): output.append(contentsOf: "\(number)".utf8)
            case .timestamp(let timestamp): timestamp.appendISO8601(to: &output)
            case .json(let json?):
                var encoded: [UInt8] = []
                json.encode(into: &encoded)
                encoded.withUnsafeBufferPointer { appendEscaped($0, to: &output) }
            }
        }
        output.append(UInt8(ascii: "\n"))
    }

    /// Appends `bytes` escaped for `COPY`'s text format, copying runs that need no escape at once.
    private static func appendEscaped(_ bytes: UnsafeBufferPointer<UInt8>, to output: inout [UInt8]) {
        var start = 0
        for index in bytes.indices {
            let escaped: UInt8
            switch bytes[index] {
            case UInt8(ascii: "\\"): escaped = UInt8(ascii: "\\")
            case UInt8(ascii: "\t"): escaped = UInt8(ascii: "t")
            case UInt8(ascii: "\n"): escaped = UInt8(ascii: "n")
            case UInt8(ascii: "\r"): escaped = UInt8(ascii: "r")
            default: continue
            }
            output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
            output.append(UInt8(ascii: "\\"))
            output.append(escaped)
            start = index + 1
        }
        output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start...]))
    }

    /// Runs `body` within the timeout, turning what fails into a `SinkError` by `PostgresFailure`. An error that
    /// says nothing of its cause (and a timeout) is settled by the database itself: when `SELECT 1` answers and
    /// the batch fails again, the database is up and the events are what it refuses (`rejected`: the worker
    /// splits the batch and counts attempts); otherwise the database is `unavailable`. So no misread error can
    /// hold a batch forever.
    private func classify<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws(SinkError) -> T {
        var failure = await attempt(body)
        if case .success(let value) = failure { return value }
        if case .failure(.unknown) = failure, await probe() {
            // The database answers. It may have just come back: one more try tells a refusal from a recovery.
            failure = await attempt(body)
            if case .success(let value) = failure { return value }
            if case .failure(.unknown(let message)) = failure {
                throw SinkError(code: .rejected, message: "\(message); the database answers SELECT 1, so the rows are taken as refused")
            }
        }
        switch failure {
        case .success(let value): return value
        case .failure(.rejected(let message)): throw SinkError(code: .rejected, message: message)
        case .failure(.unavailable(let message)), .failure(.unknown(let message)): throw SinkError(code: .unavailable, message: message)
        }
    }

    /// Runs `body` within the timeout.
    private func attempt<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async -> Result<T, PostgresFailure> {
        do {
            if let value = try await withTimeout(timeout, body) { return .success(value) }
            return .failure(.unknown("PostgreSQL did not answer within \(timeout)"))
        } catch {
            return .failure(PostgresFailure(error))
        }
    }

    /// Whether the database answers `SELECT 1` within the timeout.
    func probe() async -> Bool {
        let answered = try? await withTimeout(timeout) { () async throws -> Bool in
            for try await _ in try await self.client.query("SELECT 1", logger: self.logger) {}
            return true
        }
        return answered == true
    }

    /// `body`'s value, or `nil` when it takes longer than `timeout` (it is then cancelled).
    private func withTimeout<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T? {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }
}
