import Logging
import NIOCore
import ServiceLifecycle
import Shared
import Synchronization

/// Decides which organizations overflow, every `OPERYN_OVERFLOW_CHECK_MS`, one worker at a time (the holder of
/// `RedisKeys.overflowLease`), and tells every worker's consumer which partitions' overflow streams to read.
///
/// An organization's backlog is its appended events (`in:<org>`, counted by the gateways) minus its finished ones
/// (`out:<org>`, counted as the workers acknowledge them), summed over the partitions' flow hashes; its rate is how
/// fast `in` grew since the last check. One whose backlog reaches `OPERYN_OVERFLOW_BACKLOG_EVENTS`, or whose rate
/// reaches `OPERYN_OVERFLOW_RATE_EVENTS`, overflows: it is written to `RedisKeys.overflowTenants`, which the gateways
/// read every second and which sends its new events to its partition's overflow stream. It goes back once its
/// backlog has stayed under a quarter of the threshold and its rate under half for `OPERYN_OVERFLOW_COOLDOWN_SECONDS`.
///
/// The counts drift only when a gateway dies before it reported (or Redis lost entries): the decider levels a
/// partition's counts (`level`) whenever its streams are all empty, when every appended event is finished.
struct OverflowController: Service {
    let redis: RedisClient
    let keys: RedisKeys
    let settings: OverflowSettings
    let lanes: OverflowLanes
    /// The lease holder's name: the worker's consumer name.
    let holder: String
    let metrics: WorkerMetrics?
    let logger: Logger

    /// What the deciding worker remembers between checks.
    final class Memory: Sendable {
        struct State {
            /// Each organization's `in` at the last check, and when that was.
            var appended: [String: Int] = [:]
            var at: NIODeadline?
            /// Since when each overflowing organization has been calm.
            var calmSince: [String: NIODeadline] = [:]
        }

        let state = Mutex(State())

        init() {}
    }

    let memory = Memory()

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.check(now: .now())
                try? await Task.sleep(for: .milliseconds(self.settings.checkMilliseconds))
            }
        }
        // So that another worker decides from its next check, not once the lease expires.
        _ = try? await redis.send(ReleaseLease(keys.overflowLease, holder: holder))
    }

    /// One check: decides with the lease, then reads who overflows.
    func check(now: NIODeadline) async {
        do {
            if try await holdsLease() { try await decide(now: now) }
            let tenants = try await OverflowTenant.read(redis: redis, keys: keys)
            lanes.setOverflowing(Set(tenants.keys.map(keys.partition(of:))))
            metrics?.overflowOrganizations.record(tenants.count)
        } catch {
            logger.warning("worker.overflow.check_failed", metadata: ["redis.error": "\(error)"])
        }
    }

    private func holdsLease() async throws(RedisError) -> Bool {
        let life = max(5_000, settings.checkMilliseconds * 5)
        return try await redis.send(TakeLease(keys.overflowLease, holder: holder, milliseconds: life))
    }

    /// Reads every partition's flow, levels the partitions that are empty, and writes who overflows.
    func decide(now: NIODeadline) async throws(RedisError) {
        var flows = RedisPipeline()
        let partitions = keys.isUnpartitioned ? [0] : Array(0..<keys.partitions)
        let slots = partitions.map { flows.add(HGETALL(keys.flow(partition: $0))) }
        let current = flows.add(HGETALL(keys.overflowTenants))
        let results = try await redis.pipeline(flows)
        var appended: [String: Int] = [:]
        var finished: [String: Int] = [:]
        for slot in slots {
            for (field, value) in try results.value(slot) {
                guard let count = Int(value) else { continue }
                if field.hasPrefix("in:") { appended[String(field.dropFirst(3)), default: 0] += count }
                if field.hasPrefix("out:") { finished[String(field.dropFirst(4)), default: 0] += count }
            }
        }
        let overflowing = try results.value(current).compactMapValues(OverflowTenant.init(value:))

        let (previous, elapsed) = memory.state.withLock { state in
            defer { (state.appended, state.at) = (appended, now) }
            return (state.appended, state.at.map { now - $0 })
        }
        let seconds = elapsed.map { Double($0.nanoseconds) / 1e9 } ?? 0
        var writes: [(String, String)] = []
        var leaving: [String] = []
        let wallClock = Timestamp.now.milliseconds
        for org in Set(appended.keys).union(finished.keys).union(overflowing.keys) {
            let backlog = max(0, (appended[org] ?? 0) - (finished[org] ?? 0))
            var rate = 0
            if seconds > 0, seconds < Double(settings.checkMilliseconds) * 3 / 1_000, let before = previous[org], let after = appended[org], after >= before {
                rate = Int(Double(after - before) / seconds)
            }
            if var tenant = overflowing[org] {
                let calm = backlog < settings.backlogEvents / 4 && (settings.eventsPerSecond == 0 || rate < settings.eventsPerSecond / 2)
                let leave = memory.state.withLock { state -> Bool in
                    let since = calm ? state.calmSince[org] ?? now : nil
                    let leave = since.map { now - $0 >= .seconds(Int64(settings.cooldownSeconds)) } ?? false
                    state.calmSince[org] = leave ? nil : since
                    return leave
                }
                if leave {
                    leaving.append(org)
                    logger.info(
                        "worker.overflow.left", metadata: ["org": "\(org)", "overflow.backlog_events": "\(backlog)", "overflow.events_per_second": "\(rate)"])
                } else {
                    (tenant.backlogEvents, tenant.eventsPerSecond) = (backlog, rate)
                    writes.append((org, tenant.value))
                }
            } else if let reason = reason(backlog: backlog, rate: rate) {
                writes.append((org, OverflowTenant(since: wallClock, reason: reason, backlogEvents: backlog, eventsPerSecond: rate).value))
                metrics?.overflowEntered[reason]?.increment()
                logger.notice(
                    "worker.overflow.entered",
                    metadata: [
                        "org": "\(org)", "overflow.reason": "\(reason.rawValue)", "overflow.backlog_events": "\(backlog)",
                        "overflow.events_per_second": "\(rate)", "redis.partition": "\(keys.partition(of: org))",
                    ])
            }
        }
        var changes = RedisPipeline()
        if !writes.isEmpty { changes.add(HSET(keys.overflowTenants, fields: writes)) }
        if !leaving.isEmpty { changes.add(HDEL(keys.overflowTenants, fields: leaving)) }
        if !changes.isEmpty { try await redis.pipeline(changes).check() }
        for partition in partitions { try await level(partition: partition) }
    }

    /// Why an organization not overflowing should, if it should.
    func reason(backlog: Int, rate: Int) -> OverflowTenant.Reason? {
        if settings.backlogEvents > 0 && backlog >= settings.backlogEvents { return .backlog }
        if settings.eventsPerSecond > 0 && rate >= settings.eventsPerSecond { return .rate }
        return nil
    }

    /// Levels `partition`'s flow if its streams are all empty (`LevelFlow`).
    func level(partition: Int) async throws(RedisError) {
        let streams = EventKind.allCases.flatMap { [keys.stream($0, partition: partition), keys.overflowStream($0, partition: partition)] }
        _ = try await redis.send(LevelFlow(keys.flow(partition: partition), streams: streams))
    }
}

/// Which overflow streams a consumer reads: those of partitions with an overflowing organization, and those the last
/// backlog reading found holding entries (an organization that left overflow a moment ago, or whose gateway learnt it
/// late).
final class OverflowLanes: Sendable {
    private let overflowing = Mutex<Set<Int>>([])
    private let holding = Mutex<Set<Int>>([])

    init() {}

    /// The partitions whose overflow streams are read, in order.
    var partitions: [Int] { overflowing.withLock { $0 }.union(holding.withLock { $0 }).sorted() }

    func setOverflowing(_ partitions: Set<Int>) { overflowing.withLock { $0 = partitions } }

    func setHolding(_ partitions: Set<Int>) { holding.withLock { $0 = partitions } }
}

/// Levels a partition's flow counts when its streams are all empty.
struct LevelFlow: RedisScriptCommand {
    /// KEYS[1] a partition's flow hash, KEYS[2...] every stream of the partition (its own and its overflow streams).
    /// When every stream is empty, every event appended is finished: an organization whose `in` and `out` agree has its
    /// fields removed (the hash keeps only organizations with something queued), and one whose `in` is ahead (a drift)
    /// has its `out` set to its `in`. One whose `out` is ahead may have appends its gateway has not reported yet, and is
    /// left alone. Answers the organizations levelled. In the partition's slot, so one script in a cluster.
    static let script = RedisScript(
        """
        for i = 2, #KEYS do
            if redis.call('XLEN', KEYS[i]) > 0 then return 0 end
        end
        local fields = redis.call('HGETALL', KEYS[1])
        local appended, finished = {}, {}
        for i = 1, #fields, 2 do
            local name, value = fields[i], tonumber(fields[i + 1]) or 0
            if string.sub(name, 1, 3) == 'in:' then appended[string.sub(name, 4)] = value
            elseif string.sub(name, 1, 4) == 'out:' then finished[string.sub(name, 5)] = value end
        end
        local levelled = 0
        for org, count in pairs(appended) do
            local out = finished[org] or 0
            if count == out then
                redis.call('HDEL', KEYS[1], 'in:' .. org, 'out:' .. org)
                levelled = levelled + 1
            elseif count > out then
                redis.call('HSET', KEYS[1], 'out:' .. org, count)
                levelled = levelled + 1
            end
        end
        return levelled
        """
    )

    var arguments: [[UInt8]]

    init(_ flow: String, streams: [String]) { arguments = Self.invocation(keys: [flow] + streams, arguments: []) }

    func response(from reply: RedisReply) throws(RedisError) -> Int { try reply.expectInteger("flow levelling") }
}
