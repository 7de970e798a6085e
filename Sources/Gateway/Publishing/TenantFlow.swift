import Logging
import ServiceLifecycle
import Shared
import Synchronization

/// What the gateway knows of each organization's flow: the events it appended and not yet reported (added to the
/// organization's `in:<org>` count in its partition's flow hash every 250 ms, in one pipeline), and which
/// organizations overflow (read from `RedisKeys.overflowTenants` as often), so that the publisher sends their events
/// to their partition's overflow stream.
///
/// Counting costs a request one lock and one dictionary update; the counts reach Redis at most 250 ms
/// late, which the workers' overflow decision allows for. A gateway killed before it reported leaves its last counts
/// out: that organization's backlog then reads a little low until its partition next drains, when the worker deciding
/// the overflow sets the counts level again.
final class TenantFlow: Sendable {
    private let appended = Mutex<[String: Int]>([:])
    private let overflowing = Mutex<Set<String>>([])
    /// Whether any organization overflows: most of the time none does, and a request then takes no lock to know it.
    private let anyOverflowing = Atomic<Bool>(false)

    init() {}

    /// Whether `org`'s events go to the overflow stream.
    func overflows(_ org: String) -> Bool {
        anyOverflowing.load(ordering: .relaxed) && overflowing.withLock { $0.contains(org) }
    }

    /// `events` events of `org` appended.
    func appended(_ org: String, events: Int) {
        appended.withLock { $0[org, default: 0] += events }
    }

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

    /// The overflowing organizations now.
    func setOverflowing(_ orgs: Set<String>) {
        overflowing.withLock { $0 = orgs }
        anyOverflowing.store(!orgs.isEmpty, ordering: .relaxed)
    }

    /// Reports the counts (one `HINCRBY` per organization, pipelined); on failure keeps them for the next time.
    func flush(redis: RedisClient, keys: RedisKeys) async throws(RedisError) {
        let counts = takeCounts()
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
