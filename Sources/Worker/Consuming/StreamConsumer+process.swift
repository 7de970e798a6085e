import Logging
import NIOCore
import Shared
import Sinks

extension StreamConsumer {
    /// Processes one batch: decode every entry's events → quota per event, in arrival order → persist → for each
    /// entry whose events are all stored, rejected or dead-lettered: record rejections and dead letters → XACK → trim.
    ///
    /// An entry with an event the database refused stays unacknowledged (read again after the claim time) until that
    /// event succeeds or has failed `maxAttempts` times; nothing but its stored rows (idempotent by event id) and its
    /// attempt count is written for it meanwhile, so its rejections and dead letters are recorded once, when it is done.
    func process(_ batch: [ReadEntry]) async throws {
        let started = NIODeadline.now()
        var done = Acknowledgement()
        var entries: [EntryWork] = []
        var deadLetters: [DeadLetterMove] = []
        for read in batch {
            guard let fields = read.entry.fields else {
                done.add(read.entry.id, of: read)  // deleted while pending: nothing to store
                continue
            }
            do {
                entries.append(EntryWork(read: read, events: try StreamEntryCodec.decodeEvents(fields)))
            } catch {
                // Can never succeed: dead-lettered whole, at once, with its fields as they were.
                deadLetters.append(DeadLetterMove(read: read, letter: deadLetter(read, fields: read.originalFields, reason: error.description, attempts: 1)))
            }
        }

        var items: [BatchEvent] = []
        for (index, entry) in entries.enumerated() {
            for event in entry.events { items.append(BatchEvent(entry: index, event: event)) }
        }
        let admitted = try await admissions(for: items.map(\.event))
        var accepted: [BatchEvent] = []
        for item in items {
            if admitted[ServiceKey(item.event)] == true { accepted.append(item) } else { entries[item.entry].rejected.append(item.event) }
        }
        for failure in try await persist(accepted) { entries[failure.item.entry].refused.append((failure.item.event, failure.reason)) }

        var finished: [EntryWork] = []
        for entry in entries {
            guard !entry.refused.isEmpty else {
                finished.append(entry)
                continue
            }
            let attempts = try await retrying("count attempts") {
                try await commands.send(HINCRBY(keys.attempts, field: entry.attemptsField, by: 1))
            }
            guard attempts >= settings.maxAttempts else {
                logger.warning(
                    "worker.entry.failed",
                    metadata: [
                        "redis.id": "\(entry.read.entry.id)", "worker.attempts": "\(attempts)", "worker.refused": "\(entry.refused.count)",
                        "error": "\(entry.refused[0].reason)",
                    ])
                continue  // read again after the claim time
            }
            for refused in entry.refused {
                // A version-1 entry is dead-lettered as it was; an event of a chunk as a chunk of one.
                let fields = entry.isChunk ? StreamChunk(refused.event).fields : entry.read.originalFields
                deadLetters.append(
                    DeadLetterMove(
                        read: entry.read, letter: deadLetter(entry.read, fields: fields, reason: refused.reason, attempts: attempts), clearsAttempts: true))
            }
            finished.append(entry)
        }

        try await recordRejections(finished)
        try await deadLetter(deadLetters)
        for entry in finished {
            var counts: [Acknowledgement.Count] = []
            let kind = entry.read.kind
            let stored = entry.events.count - entry.rejected.count - entry.refused.count
            if stored > 0 { counts.append(.init(field: "stored:\(kind.rawValue)", amount: stored)) }
            if !entry.rejected.isEmpty { counts.append(.init(field: "rejected:\(Self.quotaReason)", amount: entry.rejected.count)) }
            // The organization's usage, under the day its events were accepted.
            let day = Acknowledgement.Count.Target.usage(day: Usage.day(entry.events[0].receivedAt))
            counts.append(.init(day, field: Usage.field("accepted", kind), amount: entry.events.count))
            for (measure, amount) in [("stored", stored), ("quota_rejected", entry.rejected.count), ("dead_lettered", entry.refused.count)] where amount > 0 {
                counts.append(.init(day, field: Usage.field(measure, kind), amount: amount))
            }
            // The organization's flow: its events finished, against those the gateways appended (`RedisKeys.flow`).
            let org = entry.events[0].org
            let flow = Acknowledgement.Count.Target.flow(partition: keys.basePartition(ofStream: entry.read.partition) ?? keys.partition(of: org))
            counts.append(.init(flow, field: "out:\(org)", amount: entry.events.count))
            done.add(entry.read.entry.id, of: entry.read, org: org, counts: counts)
        }
        for letter in deadLetters where !letter.clearsAttempts { done.add(letter.read.entry.id, of: letter.read) }
        try await acknowledge(done)
        metrics.batchDuration.recordNanoseconds((NIODeadline.now() - started).nanoseconds)
    }

    /// The reason recorded for events over their organization's service quota.
    static let quotaReason = "service_quota_exceeded"

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
    private func recordRejections(_ entries: [EntryWork]) async throws {
        var adds: [XADD] = []
        for entry in entries {
            for event in entry.rejected {
                let limit = quota.fallbackLimit(for: event.org)
                let fields = [
                    ("reason", Self.quotaReason), ("id", event.id), ("org", event.org), ("service", event.event.service),
                    ("kind", event.event.kind.rawValue), ("received_at", event.receivedAt.iso8601),
                    ("source_stream", keys.stream(entry.read.kind, partition: entry.read.partition)), ("source_id", entry.read.entry.id),
                    ("default_limit", String(limit)),
                ]
                adds.append(
                    XADD(
                        keys.rejectedStream, approximateMaxLength: settings.rejectedMaxLength,
                        fields: fields.map { (Array($0.0.utf8), Array($0.1.utf8)) }))
                metrics.rejected(kind: event.event.kind, org: event.org)
                if logLimiter.shouldLog("\(event.org)/\(event.event.service)") {
                    logger.warning(
                        "worker.quota.rejected",
                        metadata: ["org.id": "\(event.org)", "event.service": "\(event.event.service)", "quota.default_limit": "\(limit)"])
                }
            }
        }
        guard !adds.isEmpty else { return }
        try await retrying("record rejections") {
            for result in try await commands.pipeline(adds) { _ = try result.get() }
        }
    }

    /// What `read`'s entry (or one of its events, `fields`) becomes in the dead-letter stream.
    private func deadLetter(_ read: ReadEntry, fields: [(name: [UInt8], value: [UInt8])], reason: String, attempts: Int) -> DeadLetter {
        DeadLetter(
            stream: keys.stream(read.kind, partition: read.partition), originalID: read.entry.id, reason: reason, attempts: attempts,
            consumer: settings.consumer, originalFields: fields)
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
            for count in group.counts where count.target == .counters && count.field.hasPrefix("stored:") {
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
