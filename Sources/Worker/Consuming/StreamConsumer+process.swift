import Logging
import NIOCore
import Shared
import Sinks

extension StreamConsumer {
    /// Processes one batch (`BatchPlan`): decode every entry's events → quota per event, in arrival order → persist →
    /// for each entry whose events are all stored, rejected or dead-lettered: record rejections and dead letters →
    /// XACK with its counts → trim.
    ///
    /// An entry with an event the database refused stays unacknowledged (read again after the claim time) until that
    /// event succeeds or has failed `maxAttempts` times; nothing but its stored rows (idempotent by event id) and its
    /// attempt count is written for it meanwhile, so its rejections and dead letters are recorded once, when it is done.
    func process(_ batch: [ReadEntry]) async throws {
        let started = NIODeadline.now()
        let plan = BatchPlan(keys: keys, consumer: settings.consumer, maxAttempts: settings.maxAttempts)
        var decoded = plan.decode(batch)

        let items = decoded.events
        let admitted = try await admissions(for: items.map(\.event))
        var accepted: [BatchEvent] = []
        for item in items {
            if admitted[ServiceKey(item.event)] == true { accepted.append(item) } else { decoded.entries[item.entry].rejected.append(item.event) }
        }
        for failure in try await persist(accepted) { decoded.entries[failure.item.entry].refused.append((failure.item.event, failure.reason)) }

        var attempts: [String: Int] = [:]
        for entry in decoded.entries where !entry.refused.isEmpty {
            attempts[entry.attemptsField] = try await retrying("count attempts") {
                try await commands.send(HINCRBY(keys.attempts, field: entry.attemptsField, by: 1))
            }
        }
        let outcome = plan.finish(decoded, attempts: attempts, defaultLimit: quota.fallbackLimit(for:))
        for (entry, attempts) in outcome.waiting {
            logger.warning(
                "worker.entry.failed",
                metadata: [
                    "redis.id": "\(entry.read.entry.id)", "worker.attempts": "\(attempts)", "worker.refused": "\(entry.refused.count)",
                    "error": "\(entry.refused[0].reason)",
                ])
        }
        try await record(outcome.rejections)
        try await deadLetter(outcome.deadLetters)
        try await acknowledge(outcome.done)
        metrics.batchDuration.recordNanoseconds((NIODeadline.now() - started).nanoseconds)
    }

    /// Asks the quota once per distinct organization and service, in the order the events arrived, so the
    /// first services seen are the ones admitted.
    private func admissions(for events: [QueuedEvent]) async throws -> [ServiceKey: Bool] {
        var admitted: [ServiceKey: Bool] = [:]
        for key in events.map(ServiceKey.init) where admitted[key] == nil {
            if admittedServices.contains(key) {
                admitted[key] = true
                continue
            }
            let allowed = try await retrying("quota") { try await quota.admit(org: key.org, service: key.service) }
            if allowed { admittedServices.insert(key) }
            admitted[key] = allowed
        }
        return admitted
    }

    /// Stores the batch's events in one transaction; while the database is unavailable, waits and retries. When the
    /// database refuses the batch, halves it until each refused event stands alone (a few transactions for one
    /// bad event among a thousand), so every other event is stored.
    /// Answers the events the database refused, each with its message.
    private func persist(_ items: [BatchEvent]) async throws -> [(item: BatchEvent, reason: String)] {
        var failed: [(item: BatchEvent, reason: String)] = []
        try await persist(items[...], failed: &failed)
        return failed
    }

    private func persist(_ items: ArraySlice<BatchEvent>, failed: inout [(item: BatchEvent, reason: String)]) async throws {
        guard !items.isEmpty else { return }
        do {
            try await storeWaitingForDatabase(items.map(\.event))
        } catch let error as SinkError {
            guard items.count > 1 else {
                failed.append((items[items.startIndex], error.message))
                return
            }
            logger.warning("worker.batch.refused", metadata: ["error": "\(error.message)", "worker.events": "\(items.count)"])
            let middle = items.startIndex + items.count / 2
            try await persist(items[..<middle], failed: &failed)
            try await persist(items[middle...], failed: &failed)
        }
    }

    /// Each committed event's age (`operyn_worker_event_age_seconds`); a chunk's events share theirs, read once.
    private func recordAges(_ events: [QueuedEvent]) {
        let now = Timestamp.now.milliseconds
        var last: (kind: EventKind, receivedAt: Int64, nanoseconds: Int64)?
        for event in events {
            if last?.kind != event.event.kind || last?.receivedAt != event.receivedAt.milliseconds {
                last = (event.event.kind, event.receivedAt.milliseconds, max(0, now - event.receivedAt.milliseconds) * 1_000_000)
            }
            if let last { metrics.eventAge[last.kind]?.recordNanoseconds(last.nanoseconds) }
        }
    }

    /// Stores events, retrying for as long as the database is unavailable; throws the sink's error when it refuses them.
    private func storeWaitingForDatabase(_ events: [QueuedEvent]) async throws {
        var backoff = Backoff(firstMilliseconds: 100, maxMilliseconds: 5_000)
        var logged = false
        let started = try await backoff.retrying {
            let started = NIODeadline.now()
            _ = try await sink.store(events)
            return started
        } failed: { error in
            guard let error = error as? SinkError, error.code == .unavailable else { throw error }
            if Task.isShuttingDownGracefully || Task.isCancelled { throw CancellationError() }
            if !logged {
                logger.warning("worker.database.unavailable", metadata: ["error": "\(error.message)"])
                logged = true
            }
        }
        metrics.commitDuration.recordNanoseconds((NIODeadline.now() - started).nanoseconds)
        recordAges(events)
        if logged { logger.info("worker.database.back") }
    }

    /// Records the events over quota of finished entries: the capped rejected stream and a log line per organization
    /// and service at most once a minute. (The per-organization counter goes up with the acknowledgement, exactly once
    /// per event.)
    private func record(_ rejections: [Rejection]) async throws {
        guard !rejections.isEmpty else { return }
        for rejection in rejections {
            metrics.rejected(kind: rejection.kind, org: rejection.org)
            if logLimiter.shouldLog("\(rejection.org)/\(rejection.service)") {
                logger.warning(
                    "worker.quota.rejected",
                    metadata: ["org.id": "\(rejection.org)", "event.service": "\(rejection.service)", "quota.default_limit": "\(rejection.defaultLimit)"])
            }
        }
        let adds = rejections.map { $0.append(to: keys.rejectedStream, maxLength: settings.rejectedMaxLength) }
        try await retrying("record rejections") {
            for result in try await commands.pipeline(adds) { _ = try result.get() }
        }
    }

    /// Moves what can never be stored to the dead-letter stream, with its reason and original entry id: whole entries
    /// that cannot be decoded, and events the database refused `maxAttempts` times (a chunk's event as a chunk of one).
    private func deadLetter(_ moves: [DeadLetterMove]) async throws {
        guard !moves.isEmpty else { return }
        var pipeline = RedisPipeline()
        var cleared = Set<String>()
        for move in moves {
            pipeline.add(move.letter.append(to: keys.deadLetterStream))
            let field = move.read.attemptsField
            if move.clearsAttempts && cleared.insert(field).inserted { pipeline.add(HDEL(keys.attempts, fields: [field])) }
            metrics.deadLettered.increment()
            logger.error("worker.dead_lettered", metadata: ["redis.id": "\(move.letter.originalID)", "error": "\(move.letter.reason)"])
        }
        try await retrying("dead-letter") {
            try await commands.pipeline(pipeline).check()
        }
    }

    /// Acknowledges finished entries and counts them per organization, in one script (`Acknowledgement`); then
    /// trims what every group has acknowledged from the head of those streams.
    private func acknowledge(_ done: Acknowledgement) async throws {
        guard !done.isEmpty else { return }
        let answers = try await retrying("acknowledge") { try await done.send(on: commands, keys: keys) }
        for (group, acknowledged) in answers where acknowledged > 0 {
            for count in group.counts where count.target == .counters && OrganizationCounters.isStored(count.field) {
                metrics.stored(kind: group.kind, org: group.org ?? "", events: acknowledged * count.amount)
            }
        }
        for stream in Set(done.ids.keys.map { keys.stream($0.kind, partition: $0.partition) }) {
            do {
                try await StreamTrimmer(redis: commands).trim(stream)
            } catch {
                // Only memory waits: the next batch trims again.
                logger.warning("worker.trim.failed", metadata: ["redis.stream": "\(stream)", "redis.error": "\(error.message)"])
            }
        }
    }
}

/// An entry of a batch and what became of its events.
struct EntryWork: Sendable {
    var read: ReadEntry
    /// Its events in order: one for a version-1 entry, a chunk's for version 2.
    var events: [QueuedEvent]
    /// Its events over their organization's service quota.
    var rejected: [QueuedEvent] = []
    /// Its events the database refused, each with the database's message.
    var refused: [(event: QueuedEvent, reason: String)] = []

    /// Whether it is a chunk (version 2, or 3 packed), whose events are dead-lettered one by one (as unpacked chunks).
    var isChunk: Bool {
        read.entry.fields?.contains {
            $0.name.elementsEqual("v".utf8)
                && ($0.value.elementsEqual(StreamEntryCodec.chunkVersion.utf8) || $0.value.elementsEqual(StreamEntryCodec.packedVersion.utf8))
        } ?? false
    }

    /// Its field in the attempts hash.
    var attemptsField: String { read.attemptsField }
}

/// An event of a batch and the entry it came in (an index into the batch's entries). A struct, not a tuple: arrays
/// of labeled tuples of non-trivial types go through the runtime's generic metadata on every copy.
struct BatchEvent: Sendable {
    var entry: Int
    var event: QueuedEvent
}

/// A dead letter to write, the entry it came from, and whether that entry's attempt count is removed with it (an entry
/// finished after retries, which is acknowledged with its other events' counts rather than on its own).
struct DeadLetterMove: Sendable {
    var read: ReadEntry
    var letter: DeadLetter
    var clearsAttempts = false
}

extension ReadEntry {
    /// Its field in the attempts hash: `<kind>:<entry id>`, in a partition other than the first
    /// `<kind>:<partition>:<entry id>`.
    var attemptsField: String { partition == 0 ? "\(kind.rawValue):\(entry.id)" : "\(kind.rawValue):\(partition):\(entry.id)" }

    /// The entry's fields as they were on the stream.
    var originalFields: [(name: [UInt8], value: [UInt8])] { (entry.fields ?? []).map { (Array($0.name), Array($0.value)) } }
}
