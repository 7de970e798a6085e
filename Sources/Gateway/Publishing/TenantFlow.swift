import Logging
import NIOCore
import ServiceLifecycle
import Shared
import Synchronization

/// What the gateway knows of each organization's flow: the events it appended and not yet reported (added to the
/// organization's `in:<org>` count in its partition's flow hash every 250 ms, in one pipeline), and which
/// organizations overflow (read from `RedisKeys.overflowTenants` as often), so that the publisher sends their events
/// to their partition's overflow stream.
///
/// An organization this gateway sees at `OPERYN_OVERFLOW_RATE_EVENTS` or more overflows here at once, from the entry
/// after the one that made its count of the interval pass a quarter of a second's worth, and for two seconds after the
/// last interval over the threshold: a flood of a million events in a second goes apart after its first few
/// thousand, where the workers' decision (which sees the same rate in the counts) takes up to a second to come back.
/// By then the decision holds it.
///
/// The publisher asks and counts once per entry it appends (a tick's requests of one organization and kind share
/// one), with one lock and one dictionary update each; the counts reach Redis at most 250 ms
/// late, which the workers' overflow decision allows for. A gateway killed before it reported leaves its last counts
/// out: that organization's backlog then reads a little low until its partition next drains, when the worker deciding
/// the overflow sets the counts level again.
final class TenantFlow: Sendable {
    private let appended = Mutex<[String: Int]>([:])
    private let overflowing = Mutex<(decided: Set<String>, seen: [String: NIODeadline])>(([], [:]))
    /// Whether any organization overflows: most of the time none does, and a request then takes no lock to know it.
    private let anyOverflowing = Atomic<Bool>(false)
    /// Events per second of one organization that make it overflow here (0: only the workers' decision does).
    let rateThreshold: Int
    /// When the counts were last taken.
    private let lastTaken = Mutex<NIODeadline?>(nil)

    init(rateThreshold: Int = 0) { self.rateThreshold = rateThreshold }

    /// Whether `org`'s events go to the overflow stream.
    func overflows(_ org: String) -> Bool {
        anyOverflowing.load(ordering: .relaxed) && overflowing.withLock { $0.decided.contains(org) || $0.seen[org] != nil }
    }

    /// `events` events of `org` appended. An organization whose count since the last report (at most 250 ms ago)
    /// reaches a quarter of a second at the rate threshold overflows here from its next entry.
    func appended(_ org: String, events: Int) {
        let count = appended.withLock { counts in
            counts[org, default: 0] += events
            return counts[org, default: 0]
        }
        guard rateThreshold > 0, count >= windowThreshold, count - events < windowThreshold else { return }
        overflowing.withLock { $0.seen[org] = .now() }
        anyOverflowing.store(true, ordering: .relaxed)
    }

    /// The events of one organization in one interval (250 ms) at the rate threshold.
    private var windowThreshold: Int { max(1, rateThreshold / 4) }

    /// The counts not yet reported, emptied.
    func takeCounts() -> [String: Int] {
        appended.withLock { counts in
            defer { counts = [:] }; return counts
        }
    }

    /// Puts back counts whose report failed.
    func restore(_ counts: [String: Int]) {
        appended.withLock { current in for (org, events) in counts { current[org, default: 0] += events } }
    }

    /// The overflowing organizations as the workers decided.
    func setOverflowing(_ orgs: Set<String>) {
        let any = overflowing.withLock { state in
            state.decided = orgs
            return !state.decided.isEmpty || !state.seen.isEmpty
        }
        anyOverflowing.store(any, ordering: .relaxed)
    }

    /// Learns from the counts of the interval up to `now` which organizations this gateway sees over the rate
    /// threshold, and forgets those seen more than two seconds ago.
    func observe(_ counts: [String: Int], now: NIODeadline) {
        let previous = lastTaken.withLock { last in
            defer { last = now }; return last
        }
        guard rateThreshold > 0, let previous, now > previous else { return }
        let seconds = Double((now - previous).nanoseconds) / 1e9
        let any = overflowing.withLock { state in
            for (org, events) in counts where Double(events) / seconds >= Double(rateThreshold) { state.seen[org] = now }
            state.seen = state.seen.filter { now - $0.value < .seconds(2) }
            return !state.decided.isEmpty || !state.seen.isEmpty
        }
        anyOverflowing.store(any, ordering: .relaxed)
    }

    /// Reports the counts (one `HINCRBY` per organization, pipelined); on failure keeps them for the next time.
    func flush(redis: RedisClient, keys: RedisKeys) async throws(RedisError) {
        let counts = takeCounts()
        observe(counts, now: .now())
        guard !counts.isEmpty else { return }
        var pipeline = RedisPipeline()
        for (org, events) in counts { pipeline.add(HINCRBY(keys.flow(partition: keys.partition(of: org)), field: "in:\(org)", by: events)) }
        do {
            try await redis.pipeline(pipeline).check()
        } catch {
            restore(counts)
            throw error
        }
    }

    /// Reads which organizations overflow.
    func refresh(redis: RedisClient, keys: RedisKeys) async throws(RedisError) {
        setOverflowing(Set(try await redis.send(HGETALL(keys.overflowTenants)).keys))
    }
}

/// Runs `TenantFlow`'s reports and readings until shutdown, and reports once more on the way out.
struct TenantFlowService: Service {
    let flow: TenantFlow
    let redis: RedisClient
    let keys: RedisKeys
    var intervalMilliseconds = 250
    let logger: Logger

    func run() async throws {
        var failing = false
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await flow.flush(redis: redis, keys: keys)
                try await flow.refresh(redis: redis, keys: keys)
                if failing { logger.info("gateway.flow.reporting") }
                failing = false
            } catch {
                if !failing { logger.warning("gateway.flow.failed", metadata: ["redis.error": "\(error.message)"]) }
                failing = true
            }
            try? await Task.sleep(for: .milliseconds(intervalMilliseconds))
        }
        try? await flow.flush(redis: redis, keys: keys)
    }
}
