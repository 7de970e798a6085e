import Logging
import NIOCore
import Shared
import Sinks

extension StreamConsumer {
    /// Processes one batch: decode → quota → persist → record rejections and dead letters → XACK → trim.
    func process(_ batch: [ReadEntry]) async throws {
        let started = NIODeadline.now()
        var done = Acknowledgement()
        var decoded: [DecodedEntry] = []
        var deadLetters: [(read: ReadEntry, reason: String, attempts: Int)] = []
        for read in batch {
            guard let fields = read.entry.fields else {
                done.add(read.entry.id, kind: read.kind)  // deleted while pending: nothing to store
                continue
            }
            do {
                decoded.append(DecodedEntry(read: read, event: try StreamEntryCodec.decode(fields)))
            } catch {
                deadLetters.append((read, error.description, 1))  // can never succeed: no retries
            }
        }

        let admitted = try await admissions(for: decoded.map(\.event))
        var accepted: [DecodedEntry] = []
        var rejected: [DecodedEntry] = []
        for item in decoded {
            if admitted[ServiceKey(item.event)] == true { accepted.append(item) } else { rejected.append(item) }
        }

        let failed = try await persist(accepted)
        let retryLater = Set(failed.map(\.read.entry.id))
        for item in accepted where !retryLater.contains(item.read.entry.id) {
            done.add(item.read.entry.id, kind: item.read.kind, org: item.event.org, field: "stored:\(item.read.kind.rawValue)")
        }
        for failure in failed {
            let attempts = try await retrying("count attempts") {
                try await commands.send(HINCRBY(keys.attempts, field: "\(failure.read.kind.rawValue):\(failure.read.entry.id)", by: 1))
            }
            if attempts >= settings.maxAttempts {
                deadLetters.append((failure.read, failure.reason, attempts))
            } else {
                logger.warning(
                    "worker.entry.failed", metadata: ["redis.id": "\(failure.read.entry.id)", "worker.attempts": "\(attempts)", "error": "\(failure.reason)"])
            }
        }

        try await recordRejections(rejected)
        try await deadLetter(deadLetters)
        for item in rejected {
            done.add(item.read.entry.id, kind: item.read.kind, org: item.event.org, field: "rejected:\(Self.quotaReason)")
        }
        for item in deadLetters { done.add(item.read.entry.id, kind: item.read.kind) }
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

    /// Stores the batch in one transaction; while the database is unavailable, waits and retries. When the
    /// database refuses the batch, halves it until each refused entry stands alone (a few transactions for one
    /// bad entry among a thousand), so every other entry is stored.
    /// Answers the entries the database refused, each with its message.
    private func persist(_ items: [DecodedEntry]) async throws -> [(read: ReadEntry, reason: String)] {
        var failed: [(read: ReadEntry, reason: String)] = []
        try await persist(items[...], failed: &failed)
        return failed
    }

    private func persist(_ items: ArraySlice<DecodedEntry>, failed: inout [(read: ReadEntry, reason: String)]) async throws {
        guard !items.isEmpty else { return }
        do {
            try await storeWaitingForDatabase(items.map(\.event))
        } catch let error as SinkError {
            guard items.count > 1 else {
                failed.append((items[items.startIndex].read, error.message))
                return
            }
            logger.warning("worker.batch.refused", metadata: ["error": "\(error.message)", "worker.entries": "\(items.count)"])
            let middle = items.startIndex + items.count / 2
            try await persist(items[..<middle], failed: &failed)
            try await persist(items[middle...], failed: &failed)
        }
    }

    /// Stores events, retrying for as long as the database is unavailable; throws the sink's error when it refuses them.
    private func storeWaitingForDatabase(_ events: [QueuedEvent]) async throws {
        var delay = 100
        var logged = false
        while true {
            let started = NIODeadline.now()
            let result: Result<Int, SinkError>
            do throws(SinkError) {
                result = .success(try await sink.store(events))
            } catch {
                result = .failure(error)
            }
            switch result {
            case .success:
                metrics.commitDuration.recordNanoseconds((NIODeadline.now() - started).nanoseconds)
                if logged { logger.info("worker.database.back") }
                return
            case .failure(let error):
                guard error.code == .unavailable else { throw error }
                if Task.isShuttingDownGracefully || Task.isCancelled { throw CancellationError() }
                if !logged {
                    logger.warning("worker.database.unavailable", metadata: ["error": "\(error.message)"])
                    logged = true
                }
                try await Task.sleep(for: .milliseconds(delay))
                delay = min(delay * 2, 5_000)
            }
        }
    }

    /// Records events over quota: the capped rejected stream and a log line per organization and service at most
    /// once a minute. (The per-organization counter goes up with the acknowledgement, exactly once per entry.)
    private func recordRejections(_ rejected: [DecodedEntry]) async throws {
        guard !rejected.isEmpty else { return }
        var adds: [XADD] = []
        for item in rejected {
            let event = item.event
            let limit = quota.fallbackLimit(for: event.org)
            let fields = [
                ("reason", Self.quotaReason), ("id", event.id), ("org", event.org), ("service", event.event.service),
                ("kind", event.event.kind.rawValue), ("received_at", event.receivedAt.iso8601),
                ("source_stream", keys.stream(item.read.kind)), ("source_id", item.read.entry.id), ("default_limit", String(limit)),
            ]
            adds.append(
                XADD(keys.rejectedStream, approximateMaxLength: settings.rejectedMaxLength, fields: fields.map { (Array($0.0.utf8), Array($0.1.utf8)) }))
            metrics.rejected(kind: event.event.kind, org: event.org).increment()
            if logLimiter.shouldLog("\(event.org)/\(event.event.service)") {
                logger.warning(
                    "worker.quota.rejected",
                    metadata: ["org.id": "\(event.org)", "event.service": "\(event.event.service)", "quota.default_limit": "\(limit)"])
            }
        }
        try await retrying("record rejections") {
            for result in try await commands.pipeline(adds) { _ = try result.get() }
        }
    }

    /// Moves entries that can never be stored to the dead-letter stream, with their reason and original id.
    private func deadLetter(_ items: [(read: ReadEntry, reason: String, attempts: Int)]) async throws {
        guard !items.isEmpty else { return }
        var pipeline = RedisPipeline()
        for item in items {
            let extra = [
                ("dlq_reason", item.reason), ("dlq_stream", keys.stream(item.read.kind)), ("dlq_id", item.read.entry.id),
                ("dlq_attempts", String(item.attempts)), ("dlq_at", Timestamp.now.iso8601), ("dlq_consumer", settings.consumer),
            ]
            var fields = extra.map { (name: Array($0.0.utf8), value: Array($0.1.utf8)) }
            for field in item.read.entry.fields ?? [] { fields.append((Array(field.name), Array(field.value))) }
            pipeline.add(XADD(keys.deadLetterStream, fields: fields))
            pipeline.add(HDEL(keys.attempts, fields: ["\(item.read.kind.rawValue):\(item.read.entry.id)"]))
            metrics.deadLettered.increment()
            logger.error("worker.dead_lettered", metadata: ["redis.id": "\(item.read.entry.id)", "error": "\(item.reason)"])
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
            for count in group.counts where count.field.hasPrefix("stored:") {
                metrics.stored(kind: group.kind, org: group.org ?? "").increment(by: Int64(acknowledged * count.amount))
            }
        }
        for kind in Set(done.ids.keys.map(\.kind)) {
            do {
                try await StreamTrimmer(redis: commands).trim(keys.stream(kind))
            } catch {
                // Only memory waits: the next batch trims again.
                logger.warning("worker.trim.failed", metadata: ["redis.stream": "\(keys.stream(kind))", "redis.error": "\(error.message)"])
            }
        }
    }
}

/// An entry and the event decoded from it. A struct, not a tuple: arrays of labeled tuples of
/// non-trivial types go through the runtime's generic metadata on every copy.
struct DecodedEntry: Sendable {
    var read: ReadEntry
    var event: QueuedEvent
}

/// An organization and one of its services: what the quota counts.
struct ServiceKey: Hashable, Sendable {
    var org: String
    var service: String

    init(_ event: QueuedEvent) {
        org = event.org
        service = event.event.service
    }
}
