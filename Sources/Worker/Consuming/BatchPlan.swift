import Shared

/// What a batch does with its entries, decided without I/O. `StreamConsumer.process` runs it: between the two steps
/// it asks the quota and stores the events; after them it writes what the plan says.
///
/// 1. `decode`: each entry's events. An entry deleted while pending is done at once; one that cannot be decoded is
///    dead-lettered whole (it can never succeed).
/// 2. The runner: the quota per event in arrival order (`EntryWork.rejected`), the store (`EntryWork.refused`), and
///    the attempt count of each entry with a refused event.
/// 3. `finish`: which entries are finished (every event stored, rejected or dead-lettered after `maxAttempts`) and
///    which wait for another attempt; the dead letters, the rejection records, and the acknowledgement with each
///    finished entry's counters, usage and flow counts.
struct BatchPlan: Sendable {
    let keys: RedisKeys
    /// The worker's consumer name, recorded in its dead letters.
    let consumer: String
    let maxAttempts: Int
    /// The time recorded in dead letters (ISO 8601).
    var now = Timestamp.now.iso8601

    /// A batch's entries after step 1.
    struct Decoded: Sendable {
        /// The entries with events, in batch order; the runner fills in their rejected and refused events.
        var entries: [EntryWork] = []
        /// Entries that cannot be decoded.
        var deadLetters: [DeadLetterMove] = []
        /// Entries deleted while pending.
        var done = Acknowledgement()

        /// Every event of the batch, with its entry's index, in arrival order.
        var events: [BatchEvent] {
            var events: [BatchEvent] = []
            for (index, entry) in entries.enumerated() {
                for event in entry.events { events.append(BatchEvent(entry: index, event: event)) }
            }
            return events
        }
    }

    /// What the runner writes after step 3.
    struct Outcome: Sendable {
        /// The entries acknowledged, each with what it counts.
        var done: Acknowledgement
        var deadLetters: [DeadLetterMove]
        var rejections: [Rejection]
        /// Entries with a refused event still short of `maxAttempts`: left pending, read again after the claim time.
        var waiting: [(entry: EntryWork, attempts: Int)]
    }

    func decode(_ batch: [ReadEntry]) -> Decoded {
        var decoded = Decoded()
        for read in batch {
            guard let fields = read.entry.fields else {
                decoded.done.add(read.entry.id, of: read)  // deleted while pending: nothing to store
                continue
            }
            do {
                decoded.entries.append(EntryWork(read: read, events: try StreamEntryCodec.decodeEvents(fields)))
            } catch {
                decoded.deadLetters.append(
                    DeadLetterMove(read: read, letter: deadLetter(read, fields: read.originalFields, reason: error.description, attempts: 1)))
            }
        }
        return decoded
    }

    /// Step 3, with each refused entry's attempts so far (by `EntryWork.attemptsField`) and the service limit of an
    /// organization without an override, which rejections record.
    func finish(_ decoded: Decoded, attempts: [String: Int], defaultLimit: (String) -> Int) -> Outcome {
        var outcome = Outcome(done: decoded.done, deadLetters: decoded.deadLetters, rejections: [], waiting: [])
        for entry in decoded.entries {
            if !entry.refused.isEmpty {
                let tried = attempts[entry.attemptsField] ?? 0
                guard tried >= maxAttempts else {
                    outcome.waiting.append((entry, tried))
                    continue
                }
                for refused in entry.refused {
                    // A version-1 entry is dead-lettered as it was; an event of a chunk as a chunk of one.
                    let fields = entry.isChunk ? StreamChunk(refused.event).fields : entry.read.originalFields
                    outcome.deadLetters.append(
                        DeadLetterMove(
                            read: entry.read, letter: deadLetter(entry.read, fields: fields, reason: refused.reason, attempts: tried), clearsAttempts: true))
                }
            }
            let source = keys.stream(entry.read.kind, partition: entry.read.partition)
            for event in entry.rejected {
                outcome.rejections.append(
                    Rejection(
                        eventID: event.id, org: event.org, service: event.event.service, kind: event.event.kind, receivedAt: event.receivedAt.iso8601,
                        sourceStream: source, sourceID: entry.read.entry.id, defaultLimit: defaultLimit(event.org)))
            }
            outcome.done.add(entry.read.entry.id, of: entry.read, org: entry.events[0].org, counts: counts(of: entry))
        }
        for letter in outcome.deadLetters where !letter.clearsAttempts { outcome.done.add(letter.read.entry.id, of: letter.read) }
        return outcome
    }

    /// What a finished entry counts: its organization's counters (stored, rejected), its usage under the day its
    /// events were accepted, and its partition's flow (events finished, against those the gateways appended).
    func counts(of entry: EntryWork) -> [Acknowledgement.Count] {
        var counts: [Acknowledgement.Count] = []
        let kind = entry.read.kind
        let stored = entry.events.count - entry.rejected.count - entry.refused.count
        if stored > 0 { counts.append(.init(field: OrganizationCounters.storedField(kind), amount: stored)) }
        if !entry.rejected.isEmpty { counts.append(.init(field: OrganizationCounters.rejectedField(Rejection.quotaReason), amount: entry.rejected.count)) }
        let day = Acknowledgement.Count.Target.usage(day: Usage.day(entry.events[0].receivedAt))
        counts.append(.init(day, field: Usage.field("accepted", kind), amount: entry.events.count))
        for (measure, amount) in [("stored", stored), ("quota_rejected", entry.rejected.count), ("dead_lettered", entry.refused.count)] where amount > 0 {
            counts.append(.init(day, field: Usage.field(measure, kind), amount: amount))
        }
        let org = entry.events[0].org
        let flow = Acknowledgement.Count.Target.flow(partition: keys.basePartition(ofStream: entry.read.partition) ?? keys.partition(of: org))
        counts.append(.init(flow, field: "out:\(org)", amount: entry.events.count))
        return counts
    }

    /// What `read`'s entry (or one of its events, `fields`) becomes in the dead-letter stream.
    private func deadLetter(_ read: ReadEntry, fields: [(name: [UInt8], value: [UInt8])], reason: String, attempts: Int) -> DeadLetter {
        DeadLetter(
            stream: keys.stream(read.kind, partition: read.partition), originalID: read.entry.id, reason: reason, attempts: attempts, at: now,
            consumer: consumer, originalFields: fields)
    }
}
