import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Shared
import Synchronization

/// Stores events in PostgreSQL through a postgres-nio connection pool: one transaction per batch, one
/// `INSERT … SELECT … FROM unnest($1::text[], …) … ON CONFLICT (id, received_at) DO NOTHING` per table with a binary `text[]`
/// parameter per column, so a batch of any size is one round trip per kind, the database reads each value with its
/// type's input function (as `COPY` does) and a redelivered event never makes a second row.
///
/// The pool runs as a service: `run()` must be running (the worker's service group runs it).
final class PostgresSink: EventSink {
    let client: PostgresClient
    /// One connection's configuration, to learn why connecting fails while the pool only waits.
    private let direct: PostgresConnection.Configuration
    /// Each call must finish within this, or the database counts as unavailable (the pool would otherwise
    /// wait a long time for a connection to a server that is down).
    let timeout: Duration
    let logger = Logger(label: "operyn.postgres")

    /// Versioned migrations, each a list of statements; each runs once, in order, in one transaction, under an
    /// advisory lock so workers starting together do not race.
    static let migrations: [[String]] = [
        statements(
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
            """),
        // 2: each kind's table partitioned by the UTC day of `received_at`, the unique key `(id, received_at)`. The
        // table of migration 1 becomes the partition of the days its rows span (no row is copied; a table without
        // rows is dropped), and a default partition catches what no day partition takes (a safety net: workers make
        // each day's partition before a batch needs it). Logs gain a `trace_id` index; deployments are indexed by
        // service and environment.
        [PartitionSQL.catalog, PartitionSQL.ensure, PartitionSQL.adopt]
            + EventKind.allCases.flatMap { kind in
                PartitionSQL.partitioned(kind, indexes: PartitionSQL.indexes[kind]!, before: PartitionSQL.formerIndexes[kind]!)
            },
    ]

    /// The statements of `sql`, split at each `;`.
    private static func statements(_ sql: String) -> [String] {
        sql.split(separator: ";").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
    }

    /// Column types of each table, in the order `forEachColumn` visits them, from each kind's description.
    static let recordTypes: [EventKind: String] = Dictionary(
        uniqueKeysWithValues: EventKind.allCases.map { kind in
            (kind, kind.fields.map { "\($0.column) \(type(of: $0))" }.joined(separator: ", "))
        })

    /// The PostgreSQL type a described field is stored as.
    static func type(of field: EventField) -> String {
        switch field.type {
        case .uuid: "uuid"
        case .text: "text"
        case .double: "double precision"
        case .timestamp: "timestamptz"
        case .json: "jsonb"
        }
    }

    /// A sink for `postgres://user:password@host:port/database[?sslmode=…]` (`PostgresURL`); `password` (from
    /// `OPERYN_DATABASE_PASSWORD_FILE`) wins over the URL's.
    init(url: String, password: String? = nil, timeout: Duration = .seconds(10)) throws(SinkError) {
        self.timeout = timeout
        let parsed = try PostgresURL(url, password: password)
        var configuration = parsed.configuration
        if configuration.options.connectTimeout == .seconds(10) { configuration.options.connectTimeout = .seconds(5) }
        direct = parsed.connection
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
                            for statement in migration {
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

    /// `INSERT INTO <table> (<columns>) SELECT <each column cast to its type> FROM unnest($1::text[], …) AS r(<columns>)
    /// ON CONFLICT (id, received_at) DO NOTHING`: one binary `text[]` parameter per column.
    static let insertStatements: [EventKind: String] = Dictionary(
        uniqueKeysWithValues: EventKind.allCases.map { kind in
            let typed = recordTypes[kind]!.split(separator: ",").map { $0.split(separator: " ", maxSplits: 1).map(String.init) }
            let names = typed.map { $0[0] }.joined(separator: ", ")
            let casts = typed.map { $0[1] == "text" ? $0[0] : "\($0[0])::\($0[1])" }.joined(separator: ", ")
            let parameters = typed.indices.map { "$\($0 + 1)::text[]" }.joined(separator: ", ")
            return (
                kind,
                "INSERT INTO \(kind.rawValue) (\(names)) SELECT \(casts) FROM unnest(\(parameters)) AS r(\(names)) ON CONFLICT (id, received_at) DO NOTHING RETURNING 1"
            )
        })

    func store(_ events: [QueuedEvent]) async throws(SinkError) -> Int {
        guard !events.isEmpty else { return 0 }
        var byKind: [EventKind: [TextArray]] = [:]
        for event in events {
            let kind = event.event.kind
            if byKind[kind] == nil { byKind[kind] = Self.columns[kind]!.map { _ in TextArray() } }
            var column = 0
            // Appended in place: a copy of the columns out of the dictionary would copy them all per event.
            event.forEachColumn { _, value in
                byKind[kind]![column].append(value)
                column += 1
            }
        }
        let statements = byKind.sorted { $0.key.rawValue < $1.key.rawValue }.map { kind, columns -> PostgresQuery in
            var bindings = PostgresBindings(capacity: columns.count)
            for column in columns { bindings.append(column) }
            return PostgresQuery(unsafeSQL: Self.insertStatements[kind]!, binds: bindings)
        }
        try await ensurePartitions(for: events)
        return try await classify {
            try await self.client.withTransaction(logger: self.logger) { connection in
                var inserted = 0
                for statement in statements {
                    for try await _ in try await connection.query(statement, logger: self.logger) { inserted += 1 }
                }
                return inserted
            }
        }
    }

    func close() async {}

    // MARK: Day partitions

    /// The UTC days (days since 1970-01-01) each kind is known to have a partition for.
    let partitionedDays = Mutex<[EventKind: Set<Int64>]>([:])

    /// Makes the partitions `events` need that are not known to exist: a worker draining an old backlog makes
    /// past days' partitions as its batches reach them. Each is made in its own short transaction, before the
    /// batch's, so the batch's transaction takes no lock that partition creation needs.
    private func ensurePartitions(for events: [QueuedEvent]) async throws(SinkError) {
        var needed: [(EventKind, Int64)] = []
        partitionedDays.withLock { known in
            var last: (EventKind, Int64)?
            for event in events {
                let day = event.receivedAt.milliseconds >= 0 ? event.receivedAt.milliseconds / 86_400_000 : (event.receivedAt.milliseconds + 1) / 86_400_000 - 1
                let kind = event.event.kind
                if let last, last.0 == kind, last.1 == day { continue }
                last = (kind, day)
                if known[kind]?.contains(day) != true, !needed.contains(where: { $0 == (kind, day) }) { needed.append((kind, day)) }
            }
        }
        for (kind, day) in needed { try await ensurePartition(kind, day: day) }
    }

    /// Makes `kind`'s partition of `day` (days since 1970-01-01) unless one covers it.
    private func ensurePartition(_ kind: EventKind, day: Int64) async throws(SinkError) {
        let date = String(Timestamp(milliseconds: day * 86_400_000).iso8601.prefix(10))
        let made = try await classify { () async throws -> Bool in
            var made = false
            for try await value in try await self.client.query(
                "SELECT operyn_ensure_partition(\(kind.rawValue), \(date)::date)", logger: self.logger
            ).decode(Bool.self) {
                made = value
            }
            return made
        }
        if made { logger.info("partition made", metadata: ["kind": "\(kind.rawValue)", "day": "\(date)"]) }
        partitionedDays.withLock { _ = $0[kind, default: []].insert(day) }
    }

    func prepareDays(around now: Timestamp) async throws(SinkError) {
        let today = now.milliseconds / 86_400_000
        for kind in EventKind.allCases {
            for day in (today - 1)...(today + 2) { try await ensurePartition(kind, day: day) }
        }
    }

    /// Runs `body` within the timeout, turning what fails into a `SinkError` by `PostgresFailure`. An error that
    /// says nothing of its cause (and a timeout) is settled by the database itself: when `SELECT 1` answers and
    /// the batch fails again, the database is up and the events are what it refuses (`rejected`: the worker
    /// splits the batch and counts attempts); otherwise the database is `unavailable`. So no misread error can
    /// hold a batch forever.
    func classify<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws(SinkError) -> T {
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
            return .failure(await diagnosis() ?? .unknown("PostgreSQL did not answer within \(timeout)"))
        } catch {
            return .failure(PostgresFailure(error))
        }
    }

    /// Why no connection could be had, learned from one connection of its own (the pool retries quietly and
    /// callers only wait): a refused or failed TLS handshake, a refused password, an unreachable host. `nil` when
    /// that connection works, or takes longer than the timeout (at most 5 s) too.
    private func diagnosis() async -> PostgresFailure? {
        let configuration = direct
        let logger = logger
        let outcome = try? await withTimeout(min(timeout, .seconds(5))) { () async -> PostgresFailure? in
            do {
                let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
                try? await connection.close()
                return nil
            } catch {
                return PostgresFailure(error)
            }
        }
        return outcome ?? nil
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
        try await Deadline.run(within: timeout, body)
    }
}

/// One column of a batch as a binary `text[]` parameter, nulls included (postgres-nio's arrays have no null
/// elements): PostgreSQL's array wire format, written as values are appended.
struct TextArray: PostgresNonThrowingEncodable {
    static var psqlType: PostgresDataType { .textArray }
    static var psqlFormat: PostgresFormat { .binary }

    private var count: Int32 = 0
    private var hasNull = false
    /// The elements: each a 4-byte length (-1 for null) and its bytes.
    private var elements = ByteBuffer()

    init() {}

    mutating func append(_ value: ColumnValue) {
        count += 1
        switch value {
        case .text(nil), .json(nil):
            hasNull = true
            elements.writeInteger(Int32(-1))
        case .text(let text?):
            let length = elements.writerIndex
            elements.writeInteger(Int32(0))
            let written = elements.writeString(text)
            elements.setInteger(Int32(written), at: length)
        case .real(let number): appendBytes(Array("\(number)".utf8))
        case .timestamp(let timestamp):
            var bytes: [UInt8] = []
            timestamp.appendISO8601(to: &bytes)
            appendBytes(bytes)
        case .json(let json?):
            var bytes: [UInt8] = []
            json.encode(into: &bytes)
            appendBytes(bytes)
        }
    }

    private mutating func appendBytes(_ bytes: [UInt8]) {
        elements.writeInteger(Int32(bytes.count))
        elements.writeBytes(bytes)
    }

    func encode<JSONEncoder: PostgresJSONEncoder>(into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        byteBuffer.writeInteger(Int32(1))  // dimensions
        byteBuffer.writeInteger(Int32(hasNull ? 1 : 0))
        byteBuffer.writeInteger(PostgresDataType.text.rawValue)  // element type
        byteBuffer.writeInteger(count)  // elements in the one dimension
        byteBuffer.writeInteger(Int32(1))  // its lower bound
        byteBuffer.writeImmutableBuffer(elements)
    }
}
