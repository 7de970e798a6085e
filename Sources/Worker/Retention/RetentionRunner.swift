import Logging
import ServiceLifecycle
import Shared
import Sinks
import Synchronization

/// Expires stored events every `OPERYN_RETENTION_INTERVAL_SECONDS`, one worker at a time.
///
/// Every worker makes the coming days' partitions (cheap when they exist). Then it tries for the lease
/// (`RedisKeys.retentionLease`, its consumer name with an expiry): the holder reads the policy (its
/// `OPERYN_RETENTION_DAYS` and the organizations' overrides in Redis), lets the sink expire what the policy says in
/// bounded steps, renewing the lease before each, and publishes what the store holds (`RedisKeys.storage`). A worker
/// killed mid-step leaves the lease to expire; the next run, of whichever worker, goes on where the steps stopped
/// (every step is its own transaction, so none is left half done).
///
/// Retention takes at most a quarter of the database's time: after each step it rests three times as long as the
/// step took (`Pace`), so a million rows expiring beside a drain slow the drain by about a fifth at most.
struct RetentionRunner: Service {
    let redis: RedisClient
    let keys: RedisKeys
    let sink: any EventSink
    let settings: RetentionSettings
    /// The lease holder's name: the worker's consumer name.
    let holder: String
    let metrics: WorkerMetrics?
    let logger: Logger
    /// The lease's life, renewed before every step: how long a killed worker keeps others from retention.
    var leaseMilliseconds = 30_000

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.runOnce(now: .now)
                try? await Task.sleep(for: .seconds(self.settings.intervalSeconds))
            }
        }
    }

    /// One run at `now`: the partitions ahead, then, with the lease, retention and the report. `nil` when another
    /// worker holds the lease or the run failed (logged and counted).
    @discardableResult
    func runOnce(now: Timestamp) async -> RetentionOutcome? {
        do {
            try await sink.prepareDays(around: now)
        } catch {
            logger.warning("could not make the coming days' partitions; batches make them as they need them", metadata: ["reason": "\(error.message)"])
        }
        guard await renew() else { return nil }
        do {
            let policy = try await RetentionPolicy.read(redis: redis, keys: keys, defaultDays: settings.defaultDays)
            let pace = Pace()
            let outcome = try await sink.expire(policy, now: now, stepRows: settings.stepRows) {
                await pace.rest()
                guard !Task.isCancelled, await self.renew() else { return false }
                pace.stepBegins()
                return true
            }
            for (kind, rows) in outcome.expiredRows where rows > 0 { metrics?.retentionExpiredRows[kind]?.increment(by: rows) }
            for (kind, count) in outcome.droppedPartitions where count > 0 { metrics?.retentionDroppedPartitions[kind]?.increment(by: count) }
            metrics?.retentionRuns[outcome.finished ? "finished" : "stopped"]?.increment()
            if !outcome.expiredRows.isEmpty || !outcome.droppedPartitions.isEmpty || !outcome.finished {
                logger.info(
                    "retention",
                    metadata: [
                        "expired_rows": "\(outcome.expiredRows.values.reduce(0, +))", "dropped_partitions": "\(outcome.droppedPartitions.values.reduce(0, +))",
                        "finished": "\(outcome.finished)",
                    ])
            }
            let reports = try await sink.storage()
            _ = try await redis.send(HSET(keys.storage, fields: StorageReport.fields(reports, defaultDays: settings.defaultDays, at: .now)))
            await giveUp()
            return outcome
        } catch {
            metrics?.retentionRuns["failed"]?.increment()
            logger.warning("retention run failed; the next one goes on", metadata: ["reason": "\(error)"])
            await giveUp()
            return nil
        }
    }

    /// Takes or renews the lease; false when another worker holds it or Redis does not answer.
    func renew() async -> Bool {
        (try? await redis.send(TakeLease(keys.retentionLease, holder: holder, milliseconds: leaseMilliseconds))) == true
    }

    /// Gives the lease up, so the next run may be any worker's.
    private func giveUp() async {
        _ = try? await redis.send(ReleaseLease(keys.retentionLease, holder: holder))
    }
}

/// Keeps retention to a share of the time: `rest()` sleeps `restPerStep` times as long as the step since
/// `stepBegins()` took, at most two seconds.
final class Pace: Sendable {
    /// Rest per unit of work: 3 leaves retention a quarter of the time.
    let restPerStep: Int
    private let began = Mutex<ContinuousClock.Instant?>(nil)

    init(restPerStep: Int = 3) { self.restPerStep = restPerStep }

    func stepBegins() { began.withLock { $0 = .now } }

    func rest() async {
        guard let began = began.withLock({ $0 }) else { return }
        let rest = min((ContinuousClock.now - began) * restPerStep, .seconds(2))
        try? await Task.sleep(for: rest)
    }
}
