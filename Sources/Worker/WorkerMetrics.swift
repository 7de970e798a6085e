import Metrics
import NIOCore
import Shared
import Synchronization

/// The worker's metric objects; per-organization counters are made on first use and kept, for at most
/// `OPERYN_METRICS_MAX_ORGS` organizations (`OrganizationLabels`): the others count under `org="other"`, so a
/// million organizations make a bounded scrape. Exact per-organization numbers are Redis's counters.
final class WorkerMetrics: Sendable {
    private let factory: any MetricsFactory
    private let counters = Mutex<[String: Counter]>([:])
    /// Which organizations have series of their own.
    let organizations: OrganizationLabels
    /// `operyn_worker_dead_lettered_total`.
    let deadLettered: Counter
    /// `operyn_worker_batch_duration_seconds`: one batch from read to acknowledgement.
    let batchDuration: Timer
    /// `operyn_worker_commit_duration_seconds`: one database transaction.
    let commitDuration: Timer
    /// `operyn_stream_lag{kind}` and `operyn_stream_pending{kind}`, in entries.
    /// Rows removed by retention's deletes, and day partitions it dropped, by kind.
    let retentionExpiredRows: [EventKind: Counter]
    let retentionDroppedPartitions: [EventKind: Counter]
    /// Retention runs this worker finished (`outcome="finished"`), stopped (`"stopped"`) or failed (`"failed"`).
    let retentionRuns: [String: Counter]
    let lag: [EventKind: Gauge]
    let pending: [EventKind: Gauge]
    /// `operyn_stream_backlog_events{kind}`: lag plus pending in events (estimated from the newest entries' counts).
    let backlogEvents: [EventKind: Gauge]
    /// `operyn_worker_event_age_seconds{kind}`: each event's age when its transaction committed (now − `received_at`):
    /// accepted → stored, as a user sees it.
    let eventAge: [EventKind: Timer]
    /// `operyn_overflow_organizations`: organizations whose new events go to their partition's overflow stream.
    let overflowOrganizations: Gauge
    /// `operyn_overflow_entered_total{reason}`: organizations this worker sent to overflow, by reason (`backlog`,
    /// `rate`), while it decided the overflow.
    let overflowEntered: [OverflowTenant.Reason: Counter]

    init(factory: any MetricsFactory, organizations: OrganizationLabels = OrganizationLabels()) {
        self.factory = factory
        self.organizations = organizations
        deadLettered = Counter(label: "operyn_worker_dead_lettered_total", dimensions: [], factory: factory)
        batchDuration = Timer(label: "operyn_worker_batch_duration_seconds", dimensions: [], factory: factory)
        commitDuration = Timer(label: "operyn_worker_commit_duration_seconds", dimensions: [], factory: factory)
        var expired: [EventKind: Counter] = [:]
        var dropped: [EventKind: Counter] = [:]
        for kind in EventKind.allCases {
            expired[kind] = Counter(label: "operyn_worker_retention_expired_rows_total", dimensions: [("kind", kind.rawValue)], factory: factory)
            dropped[kind] = Counter(label: "operyn_worker_retention_dropped_partitions_total", dimensions: [("kind", kind.rawValue)], factory: factory)
        }
        retentionExpiredRows = expired
        retentionDroppedPartitions = dropped
        retentionRuns = Dictionary(
            uniqueKeysWithValues: ["finished", "stopped", "failed"].map {
                ($0, Counter(label: "operyn_worker_retention_runs_total", dimensions: [("outcome", $0)], factory: factory))
            })
        var lag: [EventKind: Gauge] = [:]
        var pending: [EventKind: Gauge] = [:]
        var backlogEvents: [EventKind: Gauge] = [:]
        for kind in EventKind.allCases {
            backlogEvents[kind] = Gauge(label: "operyn_stream_backlog_events", dimensions: [("kind", kind.rawValue)], factory: factory)
            lag[kind] = Gauge(label: "operyn_stream_lag", dimensions: [("kind", kind.rawValue)], factory: factory)
            pending[kind] = Gauge(label: "operyn_stream_pending", dimensions: [("kind", kind.rawValue)], factory: factory)
        }
        self.lag = lag
        self.pending = pending
        self.backlogEvents = backlogEvents
        eventAge = Dictionary(
            uniqueKeysWithValues: EventKind.allCases.map {
                ($0, Timer(label: "operyn_worker_event_age_seconds", dimensions: [("kind", $0.rawValue)], factory: factory))
            })
        overflowOrganizations = Gauge(label: "operyn_overflow_organizations", dimensions: [], factory: factory)
        overflowEntered = Dictionary(
            uniqueKeysWithValues: [OverflowTenant.Reason.backlog, .rate].map {
                ($0, Counter(label: "operyn_overflow_entered_total", dimensions: [("reason", $0.rawValue)], factory: factory))
            })
    }

    /// Counts `events` stored events of `kind` for `org`: `operyn_worker_events_stored_total{kind,org}`.
    func stored(kind: EventKind, org: String, events: Int) {
        counter("operyn_worker_events_stored_total", kind, organizations.label(for: org, events: events)).increment(by: Int64(events))
    }

    /// Counts `events` events of `kind` over `org`'s service quota:
    /// `operyn_worker_events_rejected_total{kind,org,reason="service_quota_exceeded"}`.
    func rejected(kind: EventKind, org: String, events: Int = 1) {
        counter("operyn_worker_events_rejected_total", kind, organizations.label(for: org, events: events)).increment(by: Int64(events))
    }

    private func counter(_ label: String, _ kind: EventKind, _ org: String) -> Counter {
        counters.withLock { counters in
            let key = "\(label)|\(kind.rawValue)|\(org)"
            if let counter = counters[key] { return counter }
            var dimensions = [("kind", kind.rawValue), ("org", org)]
            if label.contains("rejected") { dimensions.append(("reason", "service_quota_exceeded")) }
            let counter = Counter(label: label, dimensions: dimensions, factory: factory)
            counters[key] = counter
            return counter
        }
    }
}

/// Which organizations get Prometheus series of their own: the first `capacity` (`OPERYN_METRICS_MAX_ORGS`, 100) to
/// reach `threshold` events (`OPERYN_METRICS_ORG_MIN_EVENTS`, 1 000) in this process — the large ones, in practice
/// — and `other` for the rest. A label once given is kept (counters only grow), and events counted under `other`
/// before an organization got its label stay there. The tally of organizations still under the threshold is bounded
/// too (cleared when it holds `100 × capacity`).
final class OrganizationLabels: Sendable {
    /// The label of every organization without one of its own.
    static let other = "other"

    private struct State {
        var labeled: Set<String> = []
        var tally: [String: Int] = [:]
    }

    let capacity: Int
    let threshold: Int
    private let state = Mutex(State())

    init(capacity: Int = 100, threshold: Int = 1_000) {
        self.capacity = capacity
        self.threshold = threshold
    }

    /// The label to count `events` more events of `organization` under.
    func label(for organization: String, events: Int) -> String {
        state.withLock { state in
            if state.labeled.contains(organization) { return organization }
            guard state.labeled.count < capacity else { return Self.other }
            let total = state.tally[organization, default: 0] + events
            if total >= threshold {
                state.labeled.insert(organization)
                state.tally[organization] = nil
                return organization
            }
            if state.tally.count >= capacity * 100 { state.tally.removeAll(keepingCapacity: true) }
            state.tally[organization] = total
            return Self.other
        }
    }

    /// How many organizations have a label of their own.
    var labeledCount: Int { state.withLock { $0.labeled.count } }
}
