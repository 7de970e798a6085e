import Logging
import NIOCore
import ServiceLifecycle
import Shared
import Sinks
import Synchronization

/// One entry read from a stream: of a kind, and (in a Redis Cluster) of a partition.
struct ReadEntry: Sendable {
    var kind: EventKind
    var entry: StreamEntry
    var partition = 0
}

/// Turns stream entries into stored rows: ensure the group → re-read own pending → loop { claim idle
/// entries of silent consumers → read a batch → quota → persist in one transaction → XACK → trim }.
///
/// Every partition's streams are read, claimed and trimmed; every worker reads every partition, and the consumer group
/// shares the entries out. Reads are fair between partitions (`ReadShares`): each stream gives at most its share of a
/// batch, the deep ones splitting the batch between them, so one partition's backlog never keeps another's events
/// waiting more than a batch. The overflow streams in use (`OverflowLanes`) are read beside them, taking at most
/// `OPERYN_OVERFLOW_SHARE` of a batch while other streams have entries waiting, so an organization whose events
/// overflow drains at full speed alone and at that share when others have events. On one server, the streams of the
/// layout before partitions are read too until they are empty (`PreviousLayout`).
///
/// Nothing is acknowledged before it is committed, rejected into the rejected stream, or dead-lettered.
/// A graceful shutdown finishes the batch in hand.
struct StreamConsumer: Service {
    let commands: RedisClient
    /// A client of its own for `XREADGROUP ... BLOCK`, which would hold up pipelined commands.
    let reader: RedisClient
    let sink: any EventSink
    let keys: RedisKeys
    let settings: ConsumerSettings
    let metrics: WorkerMetrics
    /// Which partitions' overflow streams are read (`OverflowController`, the backlog readings).
    var lanes = OverflowLanes()
    let logLimiter = LogLimiter()
    let admittedServices = AdmittedServices()
    let readSize = ReadSize()
    /// The overflow streams' own: an overflowing organization's entries are mostly large batches' chunks, where the
    /// others' may be single events.
    let overflowReadSize = ReadSize()
    let shares = ReadShares()
    let cleanup = Due()
    let previousLayout = PreviousLayout()
    /// The partition read blocking next when a cluster's partitions were all empty.
    let blockingPartitions = Rotation()
    let logger: Logger

    var quota: QuotaEnforcer { QuotaEnforcer(redis: commands, keys: keys, defaultLimit: settings.defaultServiceLimit) }

    /// Consumes until shutdown. A shutdown while waiting for Redis or the database abandons the batch in hand,
    /// unacknowledged (it is read again later), and returns normally.
    func run() async throws {
        do {
            try await start()
            try await consume()
        } catch is CancellationError {
            logger.info("worker.stopped", metadata: ["worker.consumer": "\(settings.consumer)", "worker.batch": "abandoned, unacknowledged"])
        }
    }

    /// Creates the consumer group and prepares the database, each within the start-up timeout.
    private func start() async throws {
        let timeout = settings.startupTimeoutSeconds
        try await StartupCheck.wait(timeoutSeconds: timeout) {
            for stream in keys.allStreams {
                _ = try await commands.send(XGROUPCREATE(stream, group: keys.consumerGroup))
            }
            try await checkPreviousLayout()
        } failure: { error in
            StartupError("OPERYN_REDIS_URL=\(commands.configuration.redactedURL): Redis is not reachable after \(timeout) s: \(error)")
        }
        try await StartupCheck.wait(timeoutSeconds: timeout) {
            try await sink.prepare()
        } retryable: { error in
            (error as? SinkError)?.code != .rejected
        } failure: { error in
            let cause = (error as? SinkError)?.message ?? "\(error)"
            return StartupError("OPERYN_DATABASE_URL=\(settings.databaseURL): the database cannot be used: \(cause)")
        }
    }

    private func consume() async throws {
        logger.info("worker.consuming", metadata: ["redis.group": "\(keys.consumerGroup)", "worker.consumer": "\(settings.consumer)"])
        try await drainOwnPending()
        var lastClaim = NIODeadline.uptimeNanoseconds(0)
        var batch: [ReadEntry] = []
        while true {
            if Task.isShuttingDownGracefully || Task.isCancelled {
                if !batch.isEmpty { try await process(batch) }  // read already: finish it before leaving
                break
            }
            if NIODeadline.now() - lastClaim >= .milliseconds(Int64(max(settings.claimIdleMilliseconds / 2, 100))) {
                try await claimIdle()
                lastClaim = .now()
            }
            if batch.isEmpty {
                batch = try await read(ids: ">", block: settings.blockMilliseconds)
                continue
            }
            // Read the next batch while this one is stored: the reader has a connection of its own.
            async let next = read(ids: ">", block: settings.blockMilliseconds)
            try await process(batch)
            batch = try await next
        }
        logger.info("worker.stopped", metadata: ["worker.consumer": "\(settings.consumer)"])
    }

    /// The streams read besides the overflow streams: each kind's of every partition, and those of the previous layout
    /// that hold entries.
    var readStreams: [String] {
        (0..<keys.partitions).flatMap { partition in EventKind.allCases.map { keys.stream($0, partition: partition) } }
            + previousLayout.kinds.compactMap { kind in keys.previousLayoutPartition.map { keys.stream(kind, partition: $0) } }
    }

    /// The overflow streams read now: each kind's of the partitions `lanes` names.
    var overflowStreams: [String] { overflowStreams(of: lanes.partitions) }

    /// Each kind's overflow stream of `partitions`.
    func overflowStreams(of partitions: [Int]) -> [String] {
        partitions.flatMap { partition in EventKind.allCases.map { keys.overflowStream($0, partition: partition) } }
    }

    /// On one server with partitions: whether the streams of the layout before partitions (`<prefix>:stream:<kind>`)
    /// still hold entries, read or not. While they do, they are read with the others (the group created on them);
    /// once empty, no longer.
    func checkPreviousLayout() async throws {
        guard let previous = keys.previousLayoutPartition else { return }
        var holding: [EventKind] = []
        for kind in EventKind.allCases {
            // XLEN (0 for a stream that is not there), not EXISTS: the worker's Redis user may not run EXISTS.
            let stream = keys.stream(kind, partition: previous)
            if try await commands.send(XLEN(stream)) > 0 {
                _ = try await commands.send(XGROUPCREATE(stream, group: keys.consumerGroup))
                holding.append(kind)
            } else if let groups = try? await commands.send(XINFOGROUPS(stream)),
                let pending = groups.first(where: { $0["name"]?.string == keys.consumerGroup })?["pending"]?.integer, pending > 0
            {
                holding.append(kind)
            }
        }
        if holding != previousLayout.kinds {
            previousLayout.set(holding)
            logger.info(
                holding.isEmpty ? "worker.previous_layout.drained" : "worker.previous_layout.reading",
                metadata: ["redis.streams": "\(holding.map { keys.unpartitionedStream($0) })"])
        }
    }

    /// Re-reads the entries this consumer had been given before a restart.
    func drainOwnPending() async throws {
        let overflow = overflowStreams(of: Array(0..<keys.partitions))
        var after = Dictionary(uniqueKeysWithValues: (readStreams + overflow).map { ($0, "0") })
        while !Task.isCancelled {
            let batch = try await read(ids: after, block: nil, overflow: overflow)
            if batch.isEmpty { return }
            for entry in batch { after[keys.stream(entry.kind, partition: entry.partition)] = entry.entry.id }
            try await process(batch)
        }
    }

    /// Takes over entries idle longer than the claim time, whoever held them, and processes them; then, at most once
    /// a minute (or per consumer expiry, when shorter), removes consumers that hold nothing and have been silent
    /// longer than the consumer expiry. The first page of every stream is asked in one pipeline: one round trip for
    /// the 48 streams of 16 partitions, where most have nothing to claim.
    func claimIdle() async throws {
        var targets = EventKind.allCases.flatMap { kind in keys.streamIndices.map { (kind: kind, partition: $0) } }
        if let previous = keys.previousLayoutPartition { targets += previousLayout.kinds.map { (kind: $0, partition: previous) } }
        let count = readSize.entries(forEvents: settings.batchSize)
        let commands = targets.map { target in
            XAUTOCLAIM(
                keys.stream(target.kind, partition: target.partition), group: keys.consumerGroup, consumer: settings.consumer,
                minIdleMilliseconds: settings.claimIdleMilliseconds, start: "0-0", count: count)
        }
        let results: [Result<XAUTOCLAIM.Claimed, RedisError>]
        do {
            results = try await commands.isEmpty ? [] : self.commands.pipeline(commands)
        } catch {
            logger.warning("worker.claim.failed", metadata: ["redis.error": "\(error.message)"])
            return
        }
        for (target, result) in zip(targets, results) {
            switch result {
            case .failure(let error):
                logger.warning("worker.claim.failed", metadata: ["redis.error": "\(error.message)"])
            case .success(let claimed):
                try await processClaimed(claimed, kind: target.kind, partition: target.partition)
                if claimed.nextStart != "0-0" && !Task.isShuttingDownGracefully {
                    try await claimIdle(target.kind, partition: target.partition, from: claimed.nextStart)
                }
            }
        }
        let cleanupEvery = Int64(min(60_000, max(settings.consumerExpiryMilliseconds, 100))) * 1_000_000
        if cleanup.due(every: cleanupEvery) {
            for target in targets { await removeIdleConsumers(keys.stream(target.kind, partition: target.partition)) }
        }
        if previousLayout.isActive {
            do {
                try await checkPreviousLayout()
            } catch {
                logger.warning("worker.previous_layout.check_failed", metadata: ["redis.error": "\(error)"])
            }
        }
    }

    private func processClaimed(_ claimed: XAUTOCLAIM.Claimed, kind: EventKind, partition: Int) async throws {
        guard !claimed.entries.isEmpty else { return }
        logger.info(
            "worker.claimed", metadata: ["redis.stream": "\(keys.stream(kind, partition: partition))", "worker.entries": "\(claimed.entries.count)"])
        try await process(claimed.entries.map { ReadEntry(kind: kind, entry: $0, partition: partition) })
    }

    /// The pages of one stream's idle entries after `start`.
    private func claimIdle(_ kind: EventKind, partition: Int, from start: String) async throws {
        let stream = keys.stream(kind, partition: partition)
        var start = start
        repeat {
            let command = XAUTOCLAIM(
                stream, group: keys.consumerGroup, consumer: settings.consumer,
                minIdleMilliseconds: settings.claimIdleMilliseconds, start: start, count: readSize.entries(forEvents: settings.batchSize))
            let claimed: XAUTOCLAIM.Claimed
            do {
                claimed = try await commands.send(command)
            } catch {
                logger.warning("worker.claim.failed", metadata: ["redis.error": "\(error.message)"])
                return
            }
            try await processClaimed(claimed, kind: kind, partition: partition)
            start = claimed.nextStart
        } while start != "0-0" && !Task.isShuttingDownGracefully
    }

    private func removeIdleConsumers(_ stream: String) async {
        let idle = IdleConsumers(
            redis: commands, group: keys.consumerGroup, keep: settings.consumer, minIdleMilliseconds: settings.consumerExpiryMilliseconds)
        do {
            let removed = try await idle.remove(from: stream)
            if removed > 0 {
                logger.info("worker.consumers.removed", metadata: ["redis.stream": "\(stream)", "worker.consumers": "\(removed)"])
            }
        } catch {
            logger.warning("worker.consumers.cleanup_failed", metadata: ["redis.error": "\(error.message)"])
        }
    }

    private func read(ids: String, block: Int?) async throws -> [ReadEntry] {
        let overflow = overflowStreams
        return try await read(ids: Dictionary(uniqueKeysWithValues: (readStreams + overflow).map { ($0, ids) }), block: block, overflow: overflow)
    }

    /// Reads from every partition, after `ids` (by stream key), each stream giving at most its share
    /// (`ReadShares.counts`), and from the `overflow` streams at their share.
    /// On one server: one `XREADGROUP` of every stream read, blocking up to `block`; with overflow streams, one for them
    /// and one for the others in one round trip, not blocking, then when neither had anything one of all, blocking. In
    /// a cluster: one `XREADGROUP` per partition (its kinds' streams share a slot, its overflow streams too), all at once
    /// and not blocking; when none has anything, one partition in turn is read blocking for at most
    /// `clusterBlockMilliseconds`, so a quiet cluster costs a few reads a second and an event waits at most that long.
    private func read(ids: [String: String], block: Int?, overflow: [String]) async throws -> [ReadEntry] {
        let counts = shares.counts(
            wanted: (readSize.entries(forEvents: settings.batchSize), overflowReadSize.entries(forEvents: settings.batchSize)),
            overflowPercent: settings.overflowSharePercent)
        let partitions = Array(0..<keys.partitions)
        func streams(_ partition: Int) -> [String] { EventKind.allCases.map { keys.stream($0, partition: partition) } }
        func command(_ streams: [String], count: Int, block: Int?) -> XREADGROUP {
            XREADGROUP(
                group: keys.consumerGroup, consumer: settings.consumer, count: count, block: block, streams: streams.map { ($0, ids[$0] ?? ">") })
        }
        var entries: [ReadEntry] = []
        do {
            if !keys.clustered {
                let main = readStreams
                if overflow.isEmpty {
                    entries = located(try await reader.send(command(main, count: counts.main, block: block)))
                } else {
                    for result in try await reader.pipeline([
                        command(main, count: counts.main, block: nil), command(overflow, count: counts.overflow, block: nil),
                    ]) {
                        entries += located(try result.get())
                    }
                    if entries.isEmpty, let block { entries = located(try await reader.send(command(main + overflow, count: counts.main, block: block))) }
                }
            } else {
                // Each partition's overflow streams in a command of their own (they share its slot).
                let lanes = Dictionary(grouping: overflow) { keys.locate(stream: $0)?.partition ?? 0 }
                let reads =
                    partitions.map { command(streams($0), count: counts.main, block: nil) }
                    + lanes.keys.sorted().map { command(lanes[$0] ?? [], count: counts.overflow, block: nil) }
                for result in try await reader.pipeline(reads) {
                    entries += located(try result.get())
                }
                if entries.isEmpty, let block {
                    let partition = partitions[blockingPartitions.next(of: partitions.count)]
                    entries = located(
                        try await reader.send(command(streams(partition), count: counts.main, block: min(block, Self.clusterBlockMilliseconds))))
                }
            }
        } catch {
            if error.serverPrefix == "NOGROUP" {
                for stream in keys.allStreams { _ = try? await commands.send(XGROUPCREATE(stream, group: keys.consumerGroup)) }
                try? await checkPreviousLayout()
            }
            logger.warning("worker.read.failed", metadata: ["redis.error": "\(error.message)"])
            try await Task.sleep(for: .milliseconds(250))
            return []
        }
        let lanes = Dictionary(grouping: entries) { keys.isOverflow($0.partition) }
        readSize.observe(lanes[false] ?? [])
        overflowReadSize.observe(lanes[true] ?? [])
        shares.observe(entries, counts: counts, isOverflow: keys.isOverflow)
        return entries
    }

    /// The longest blocking read in a cluster, in milliseconds: how long an event may wait when every partition was
    /// empty a moment before.
    static let clusterBlockMilliseconds = 100

    /// A read's entries with their kind and partition.
    private func located(_ result: [XREADGROUP.StreamEntries]) -> [ReadEntry] {
        var entries: [ReadEntry] = []
        for streamEntries in result {
            guard let (kind, partition) = keys.locate(stream: streamEntries.stream) else { continue }
            entries += streamEntries.entries.map { ReadEntry(kind: kind, entry: $0, partition: partition) }
        }
        return entries
    }

    /// Runs `body` until it succeeds, backing off from 100 ms to 5 s; gives up only at shutdown.
    func retrying<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        var backoff = Backoff(firstMilliseconds: 100, maxMilliseconds: 5_000)
        var logged = false
        return try await backoff.retrying(body) { error in
            if Task.isShuttingDownGracefully || Task.isCancelled { throw CancellationError() }
            if !logged {
                logger.warning("worker.retrying", metadata: ["worker.step": "\(what)", "error": "\(error)"])
                logged = true
            }
        }
    }
}

/// How many entries each stream may give a read, so that partitions share the workers fairly: a batch's worth when no
/// stream was deep (gave all it was asked for) at the last read, else the batch split between the deep streams of the
/// kind that has most of them. A partition's backlog is then read a batch at a time (a batch of each kind: the kinds go
/// to tables of their own, and a transaction of three kinds' batches costs one commit), and every other stream's few
/// entries come with each of those reads: an event in a shallow partition waits for at most one batch, and a lone deep
/// partition still drains a full batch per read.
///
/// The overflow streams share `overflowPercent` of the batch between them while another stream is deep, and the
/// others the rest while an overflow stream is deep; each side has the whole batch while the other's streams are
/// shallow.
final class ReadShares: Sendable {
    /// Streams that gave all they were asked for at the last read, of the kind with most of them: the partitions' (and
    /// the previous layout's), and the overflow streams.
    private let deep = Atomic<Int>(0)
    private let deepOverflow = Atomic<Int>(0)

    init() {}

    /// Entries each stream may give, of `wanted` for the batch (in entries of the partitions' streams and of the
    /// overflow streams, whose events per entry differ): the partitions' streams and the overflow streams.
    func counts(wanted: (main: Int, overflow: Int), overflowPercent: Int = 25) -> (main: Int, overflow: Int) {
        let (deep, deepOverflow) = (deep.load(ordering: .relaxed), deepOverflow.load(ordering: .relaxed))
        let mainBudget = deepOverflow > 0 ? wanted.main * (100 - overflowPercent) / 100 : wanted.main
        let overflowBudget = deep > 0 ? wanted.overflow * overflowPercent / 100 : wanted.overflow
        return (max(1, mainBudget / max(1, deep)), max(1, overflowBudget / max(1, deepOverflow)))
    }

    /// Entries each stream may give, of `wanted`, without overflow streams.
    func count(wanted: Int) -> Int { counts(wanted: (wanted, wanted)).main }

    /// Learns from a read that asked each stream for `counts`; `isOverflow` tells the overflow streams' numbers.
    func observe(_ entries: [ReadEntry], counts: (main: Int, overflow: Int), isOverflow: (Int) -> Bool = { _ in false }) {
        var perStream: [Int: (count: Int, overflow: Bool)] = [:]
        for entry in entries {
            perStream[entry.partition &* 4 &+ entry.kind.ordinal, default: (0, isOverflow(entry.partition))].count += 1
        }
        var deepByKind: [Int: Int] = [:]
        var deepOverflowByKind: [Int: Int] = [:]
        for (stream, read) in perStream {
            if !read.overflow && read.count >= counts.main { deepByKind[stream & 3, default: 0] += 1 }
            if read.overflow && read.count >= counts.overflow { deepOverflowByKind[stream & 3, default: 0] += 1 }
        }
        deep.store(deepByKind.values.max() ?? 0, ordering: .relaxed)
        deepOverflow.store(deepOverflowByKind.values.max() ?? 0, ordering: .relaxed)
    }

    /// Learns from a read that asked each stream for `count`, without overflow streams.
    func observe(_ entries: [ReadEntry], count: Int) { observe(entries, counts: (count, count)) }
}

/// Whether something done now and then is due: true at the first ask, then once `every` nanoseconds have passed.
final class Due: Sendable {
    private let last = Atomic<Int64>(-1)

    init() {}

    func due(every nanoseconds: Int64) -> Bool {
        let now = Int64(NIODeadline.now().uptimeNanoseconds)
        let previous = last.load(ordering: .relaxed)
        guard previous < 0 || now - previous >= nanoseconds else { return false }
        last.store(now, ordering: .relaxed)
        return true
    }
}

/// Which streams of the layout before partitions are read: those of the kinds that still hold entries.
final class PreviousLayout: Sendable {
    private let reading = Mutex<[EventKind]>([])

    init() {}

    var kinds: [EventKind] { reading.withLock { $0 } }

    var isActive: Bool { !kinds.isEmpty }

    func set(_ kinds: [EventKind]) { reading.withLock { $0 = kinds } }
}

/// Takes turns: 0, 1, … `count` - 1, 0, …
final class Rotation: Sendable {
    private let counter = Atomic<Int>(0)

    init() {}

    /// The next turn among `count`.
    func next(of count: Int) -> Int { counter.wrappingAdd(1, ordering: .relaxed).oldValue % count }
}

/// How many entries to ask for so a batch holds about `OPERYN_BATCH_SIZE` events, whether entries carry one event
/// (version 1, single requests) or a chunk of hundreds: the events per entry of the last read, smoothed.
final class ReadSize: Sendable {
    /// Events per entry, in thousandths; the first read assumes chunks of 100 (a few entries when they are single
    /// events, never a thousand chunks in one reply).
    private let perEntry = Atomic<Int>(100_000)

    init() {}

    /// Entries to read for about `events` events: at least 1, at most `events`.
    func entries(forEvents events: Int) -> Int {
        max(1, min(events, events * 1_000 / max(1_000, perEntry.load(ordering: .relaxed))))
    }

    /// Learns from a read's entries.
    func observe(_ entries: [ReadEntry]) {
        guard !entries.isEmpty else { return }
        let events = entries.reduce(0) { $0 + ($1.entry.fields.map(StreamEntryCodec.eventCount) ?? 1) }
        let observed = events * 1_000 / entries.count
        let previous = perEntry.load(ordering: .relaxed)
        perEntry.store((previous + observed * 3) / 4, ordering: .relaxed)  // mostly the latest read
    }
}

extension EventKind {
    /// The kind's place among the three, for counting by stream.
    fileprivate var ordinal: Int {
        switch self {
        case .logs: 0
        case .metrics: 1
        case .deployments: 2
        }
    }
}
