import Shared

/// The SQL of PostgreSQL's day partitions: the catalog of partitions, the function that makes one, and migration 2,
/// which partitions the tables of migration 1.
///
/// Each kind's table is partitioned by range on `received_at`, one partition per UTC day (`logs_p20261206`), plus
/// `<kind>_default` for rows no partition takes. `operyn_partitions` lists every partition with its range, so that
/// retention finds what it may drop without reading PostgreSQL's bound expressions.
enum PartitionSQL {
    /// The catalog: one row per partition (the default partition excepted).
    static let catalog = """
        CREATE TABLE operyn_partitions (
            name text PRIMARY KEY, parent text NOT NULL, lower timestamptz NOT NULL, upper timestamptz NOT NULL
        )
        """

    /// `operyn_ensure_partition(kind, day)`: makes `kind`'s partition of the UTC `day` unless a partition already
    /// covers it; true when it made one. Under a transaction-scoped advisory lock, so workers making the same day
    /// at once make it once. Rows of that day already in the default partition move into the new one in the same
    /// transaction (creating the partition would fail otherwise).
    static let ensure = """
        CREATE FUNCTION operyn_ensure_partition(kind text, day date) RETURNS boolean LANGUAGE plpgsql AS $fn$
        DECLARE
            part text := kind || '_p' || to_char(day, 'YYYYMMDD');
            low timestamptz := day::timestamp AT TIME ZONE 'UTC';
            high timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
            waiting boolean;
        BEGIN
            IF EXISTS (SELECT 1 FROM operyn_partitions p WHERE p.parent = kind AND p.lower < high AND p.upper > low) THEN
                RETURN false;
            END IF;
            PERFORM pg_advisory_xact_lock(4242002);
            IF EXISTS (SELECT 1 FROM operyn_partitions p WHERE p.parent = kind AND p.lower < high AND p.upper > low) THEN
                RETURN false;
            END IF;
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE received_at >= %L AND received_at < %L)', kind || '_default', low, high)
                INTO waiting;
            IF waiting THEN
                EXECUTE format('CREATE TEMPORARY TABLE operyn_moving (LIKE %I) ON COMMIT DROP', kind);
                EXECUTE format(
                    'WITH moved AS (DELETE FROM %I WHERE received_at >= %L AND received_at < %L RETURNING *) INSERT INTO operyn_moving SELECT * FROM moved',
                    kind || '_default', low, high);
            END IF;
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)', part, kind, low, high);
            IF waiting THEN
                EXECUTE format('INSERT INTO %I SELECT * FROM operyn_moving', kind);
                DROP TABLE operyn_moving;
            END IF;
            INSERT INTO operyn_partitions (name, parent, lower, upper) VALUES (part, kind, low, high);
            RETURN true;
        END
        $fn$
        """

    /// `operyn_adopt_unpartitioned(kind)`: attaches `<kind>_before_partitions` (migration 1's table, renamed) as the
    /// partition of the whole UTC days its rows span, or drops it when it holds none. Attaching copies no row: it
    /// builds the `(id, received_at)` key and the new indexes, and checks the range, each in one pass.
    static let adopt = """
        CREATE FUNCTION operyn_adopt_unpartitioned(kind text) RETURNS void LANGUAGE plpgsql AS $fn$
        DECLARE
            old text := kind || '_before_partitions';
            first date;
            last date;
        BEGIN
            EXECUTE format('SELECT (min(received_at) AT TIME ZONE ''UTC'')::date, (max(received_at) AT TIME ZONE ''UTC'')::date FROM %I', old)
                INTO first, last;
            IF first IS NULL THEN
                EXECUTE format('DROP TABLE %I', old);
                RETURN;
            END IF;
            -- Its key was (id); a partition's is the table's, (id, received_at), which attaching builds.
            EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', old, old || '_pkey');
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', kind, old,
                first::timestamp AT TIME ZONE 'UTC', (last + 1)::timestamp AT TIME ZONE 'UTC');
            INSERT INTO operyn_partitions (name, parent, lower, upper)
                VALUES (old, kind, first::timestamp AT TIME ZONE 'UTC', (last + 1)::timestamp AT TIME ZONE 'UTC');
        END
        $fn$
        """

    /// Each kind's columns at migration 2, as migration 1 made them (a migration's text never changes).
    static let columns: [EventKind: String] = [
        .logs: """
        id uuid NOT NULL, org_id text NOT NULL, service text NOT NULL, level text NOT NULL, message text NOT NULL,
        timestamp timestamptz NOT NULL, trace_id text, span_id text, metadata jsonb, received_at timestamptz NOT NULL
        """,
        .metrics: """
        id uuid NOT NULL, org_id text NOT NULL, service text NOT NULL, name text NOT NULL, value double precision NOT NULL,
        unit text NOT NULL, timestamp timestamptz NOT NULL, labels jsonb, received_at timestamptz NOT NULL
        """,
        .deployments: """
        id uuid NOT NULL, org_id text NOT NULL, service text NOT NULL, version text NOT NULL, environment text NOT NULL,
        git_hash text, timestamp timestamptz NOT NULL, metadata jsonb, received_at timestamptz NOT NULL
        """,
    ]

    /// Migration 1's index names of each kind, renamed with its table.
    static let formerIndexes: [EventKind: [String]] = [
        .logs: ["logs_pkey", "logs_org_service_time", "logs_org_time"],
        .metrics: ["metrics_pkey", "metrics_org_service_name_time"],
        .deployments: ["deployments_pkey", "deployments_org_service_time"],
    ]

    /// Each kind's indexes at migration 2: name and definition. Every one leads with `org_id` (readers ask for one
    /// organization's events, and retention deletes one organization's); `received_at` has a BRIN index, a few
    /// pages per partition, for expiring every organization's rows of the day the cutoff falls in.
    static let indexes: [EventKind: [(String, String)]] = [
        .logs: [
            ("logs_org_service_time", "(org_id, service, timestamp)"), ("logs_org_time", "(org_id, timestamp)"),
            ("logs_org_trace", "(org_id, trace_id) WHERE trace_id IS NOT NULL"), ("logs_received", "USING brin (received_at)"),
        ],
        .metrics: [("metrics_org_service_name_time", "(org_id, service, name, timestamp)"), ("metrics_received", "USING brin (received_at)")],
        .deployments: [
            ("deployments_org_service_environment_time", "(org_id, service, environment, timestamp)"),
            ("deployments_received", "USING brin (received_at)"),
        ],
    ]

    /// Migration 2's statements for `kind`: the old table renamed, the partitioned one made with its indexes and
    /// default partition, the old one adopted.
    static func partitioned(_ kind: EventKind, indexes: [(String, String)], before: [String]) -> [String] {
        let name = kind.rawValue
        let old = "\(name)_before_partitions"
        return ["ALTER TABLE \(name) RENAME TO \(old)"]
            + before.map { "ALTER INDEX \($0) RENAME TO \(old)\($0.dropFirst(name.count))" }
            + ["CREATE TABLE \(name) (\(columns[kind]!), PRIMARY KEY (id, received_at)) PARTITION BY RANGE (received_at)"]
            + indexes.map { index, definition in "CREATE INDEX \(index) ON \(name) \(definition)" }
            + ["CREATE TABLE \(name)_default PARTITION OF \(name) DEFAULT", "SELECT operyn_adopt_unpartitioned('\(name)')"]
    }
}
