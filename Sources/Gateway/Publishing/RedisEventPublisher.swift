import Metrics
import NIOCore
import Shared

/// Appends a request's events to their kind's Redis stream as chunk entries (format version 2): one `XADD` when they
/// fit one chunk, `MULTI`/`EXEC` of several for a batch larger than a chunk (all or nothing), on the Redis connection
/// living on the caller's event loop.
///
/// With `coalescer`, requests of one organization and kind read in the same event-loop tick share one entry.
/// The stream is the organization's partition's, or its partition's overflow stream while the organization overflows
/// (`flow`); the events appended are counted towards the organization's flow. With `waitReplicas`
/// above 0, each append is followed by `WAIT` on the same connection, and the request is answered 202 only once that
/// many replicas hold it (503 otherwise): a failover right after the answer cannot lose it.
struct RedisEventPublisher: EventPublisher {
    let redis: RedisClient
    let keys: RedisKeys
    let metrics: GatewayMetrics
    var coalescer: TickCoalescer? = TickCoalescer()
    /// `OPERYN_REDIS_WAIT_REPLICAS`: replicas that must acknowledge an append before 202.
    var waitReplicas = 0
    /// `OPERYN_REDIS_WAIT_TIMEOUT_MS`: how long to wait for them.
    var waitTimeoutMilliseconds = 500
    /// The events per entry this gateway appends, for its backlog's estimate.
    var shape: AppendShape? = nil
    /// Which organizations overflow, and the events appended per organization; `nil` (benchmarks of the append alone):
    /// no overflow, nothing counted.
    var flow: TenantFlow? = nil
    /// `OPERYN_QUEUE_COMPRESS_BYTES`: entries whose lines reach this many bytes are packed with zstd (format version 3);
    /// `nil`: never.
    var packAbove: Int? = nil

    /// The stream `org`'s events of `kind` go to now.
    private func stream(_ kind: EventKind, of org: String) -> String { Self.stream(kind, of: org, keys: keys, flow: flow) }

    private static func stream(_ kind: EventKind, of org: String, keys: RedisKeys, flow: TenantFlow?) -> String {
        let partition = keys.partition(of: org)
        return flow?.overflows(org) == true ? keys.overflowStream(kind, partition: partition) : keys.stream(kind, partition: partition)
    }

    func publish(_ events: [QueuedEvent], on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let chunks = StreamEntryCodec.chunks(events)
        let (redis, replicas, timeout, shape, keys, flow, packAbove, metrics) = (
            redis, waitReplicas, waitTimeoutMilliseconds, shape, keys, flow, packAbove, metrics
        )
        if chunks.count == 1, let coalescer {
            // The entry of each organization and kind of the tick goes to that organization's stream, found (and its
            // appended events counted, its round trip timed) once per entry, not per request; the request's future is
            // the tick's own.
            return coalescer.add(chunks[0], on: eventLoop) { chunk, eventLoop in
                shape?.record(chunk.kind, events: chunk.count)
                let start = NIODeadline.now()
                let stream = Self.stream(chunk.kind, of: chunk.org, keys: keys, flow: flow)
                let sent = redis.send(
                    AppendChunk(chunk, to: stream, packAbove: packAbove), waitingForReplicas: replicas, timeoutMilliseconds: timeout, on: eventLoop)
                return Self.appended(sent.map { _ in }, start: start, metrics: metrics) { _ in flow?.appended(chunk.org, events: chunk.count) }
            }
        }
        let start = NIODeadline.now()
        let appended: EventLoopFuture<Void>
        let stream = stream(events[0].event.kind, of: events[0].org)
        for chunk in chunks { shape?.record(chunk.kind, events: chunk.count) }
        if chunks.count == 1 {
            appended = redis.send(
                AppendChunk(chunks[0], to: stream, packAbove: packAbove), waitingForReplicas: replicas, timeoutMilliseconds: timeout, on: eventLoop
            ).map { _ in }
        } else {
            appended = redis.transaction(
                chunks.map { AppendChunk($0, to: stream, packAbove: packAbove) }, waitingForReplicas: replicas, timeoutMilliseconds: timeout, on: eventLoop
            ).map { _ in }
        }
        return Self.appended(appended, start: start, metrics: metrics) { _ in flow?.appended(events[0].org, events: events.count) }
    }

    /// An append's outcome: on success its round trip timed and `answer` made of the reply (which counts what it
    /// must); a Redis error counted and made a `PublishError`.
    private static func appended<Value: Sendable, Answer: Sendable>(
        _ future: EventLoopFuture<Value>, start: NIODeadline, metrics: GatewayMetrics, answer: @escaping @Sendable (Value) -> Answer
    ) -> EventLoopFuture<Answer> {
        let outcome = future.eventLoop.makePromise(of: Answer.self)
        future.whenComplete { result in
            switch result {
            case .success(let value):
                metrics.xaddDuration.recordNanoseconds((NIODeadline.now() - start).nanoseconds)
                outcome.succeed(answer(value))
            case .failure(let error):
                metrics.redisErrors.increment()
                outcome.fail(PublishError(reason: (error as? RedisError).map { "\($0.code): \($0.serverPrefix ?? $0.message)" } ?? "\(error)"))
            }
        }
        return outcome.futureResult
    }

    /// A request of a limited organization, or with an idempotency key, is checked and appended by a script. With
    /// `coalescer`, the requests of one organization, kind and limit read in one tick share one call
    /// (`GuardedAppendGroup`), each still decided on its own; a request larger than a chunk has a call of its own
    /// (`GuardedAppend`).
    func publish(
        _ events: [QueuedEvent], bytes: Int, limit: RateLimit, idempotency: GuardedAppend.Idempotency?, on eventLoop: any EventLoop
    ) -> EventLoopFuture<PublishDecision> {
        guard !limit.isNone || idempotency != nil else { return publishUnlimited(events, on: eventLoop) }
        let org = events[0].org
        let chunks = StreamEntryCodec.chunks(events)
        let (redis, replicas, timeout, keys, flow, packAbove, metrics) = (redis, waitReplicas, waitTimeoutMilliseconds, keys, flow, packAbove, metrics)
        let usageField = Usage.field("rate_limited", events[0].event.kind)
        if chunks.count == 1, let coalescer {
            let request = GuardedAppendGroup.Request(chunk: chunks[0], bytes: bytes, idempotency: idempotency)
            return coalescer.add(guarded: request, limit: limit, on: eventLoop) { requests, limit, eventLoop in
                let first = requests[0].chunk
                let start = NIODeadline.now()
                let stream = Self.stream(first.kind, of: first.org, keys: keys, flow: flow)
                let (state, usage) = (keys.rateState(org: first.org), keys.usage(org: first.org, day: Usage.day(first.receivedAt)))
                let group = GuardedAppendGroup(
                    requests, to: stream, state: state, usage: usage, usageField: usageField, limit: limit, compressAbove: packAbove)
                let sent = redis.send(group, waitingForReplicas: replicas, timeoutMilliseconds: timeout, on: eventLoop)
                return Self.appended(sent, start: start, metrics: metrics) { decisions in
                    var admitted = 0
                    for (request, decision) in zip(requests, decisions) where decision.isAdmitted { admitted += request.chunk.count }
                    if admitted > 0 { flow?.appended(first.org, events: admitted) }
                    return decisions.map(PublishDecision.init)
                }
            }
        }
        let start = NIODeadline.now()
        let stream = stream(events[0].event.kind, of: org)
        let (state, usage) = (keys.rateState(org: org), keys.usage(org: org, day: Usage.day(events[0].receivedAt)))
        let append = GuardedAppend(
            chunks, to: stream, state: state, usage: usage, usageField: usageField, limit: limit, events: events.count, bytes: bytes,
            idempotency: idempotency, packAbove: packAbove)
        let sent = redis.send(append, waitingForReplicas: replicas, timeoutMilliseconds: timeout, on: eventLoop)
        return Self.appended(sent, start: start, metrics: metrics) { decision in
            if decision.isAdmitted { flow?.appended(org, events: events.count) }
            return PublishDecision(decision)
        }
    }

    func isReady() async -> Bool {
        (try? await redis.send(PING())) != nil
    }
}
