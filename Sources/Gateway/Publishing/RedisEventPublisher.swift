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

    /// The stream `org`'s events of `kind` go to now.
    private func stream(_ kind: EventKind, of org: String) -> String { Self.stream(kind, of: org, keys: keys, flow: flow) }

    private static func stream(_ kind: EventKind, of org: String, keys: RedisKeys, flow: TenantFlow?) -> String {
        let partition = keys.partition(of: org)
        return flow?.overflows(org) == true ? keys.overflowStream(kind, partition: partition) : keys.stream(kind, partition: partition)
    }

    func publish(_ events: [QueuedEvent], on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let start = NIODeadline.now()
        let chunks = StreamEntryCodec.chunks(events)
        let (redis, replicas, timeout, shape, keys, flow) = (redis, waitReplicas, waitTimeoutMilliseconds, shape, keys, flow)
        let appended: EventLoopFuture<Void>
        if chunks.count == 1, let coalescer {
            // The entry of each organization and kind of the tick goes to that organization's stream, found (and its
            // appended events counted) once per entry, not per request.
            appended = coalescer.add(chunks[0], on: eventLoop) { chunk, eventLoop in
                shape?.record(chunk.kind, events: chunk.count)
                let stream = Self.stream(chunk.kind, of: chunk.org, keys: keys, flow: flow)
                return redis.send(AppendChunk(chunk, to: stream), waitingForReplicas: replicas, timeoutMilliseconds: timeout, on: eventLoop).map { _ in
                    flow?.appended(chunk.org, events: chunk.count)
                }
            }
        } else if chunks.count == 1 {
            let stream = stream(events[0].event.kind, of: events[0].org)
            shape?.record(chunks[0].kind, events: chunks[0].count)
            appended = redis.send(AppendChunk(chunks[0], to: stream), waitingForReplicas: replicas, timeoutMilliseconds: timeout, on: eventLoop)
                .map { _ in }
        } else {
            let stream = stream(events[0].event.kind, of: events[0].org)
            for chunk in chunks { shape?.record(chunk.kind, events: chunk.count) }
            appended = redis.transaction(
                chunks.map { AppendChunk($0, to: stream) }, waitingForReplicas: replicas, timeoutMilliseconds: timeout, on: eventLoop
            ).map { _ in }
        }
        let metrics = metrics
        let coalesced = chunks.count == 1 && coalescer != nil
        let published = eventLoop.makePromise(of: Void.self)
        appended.whenComplete { result in
            switch result {
            case .success:
                metrics.xaddDuration.recordNanoseconds((NIODeadline.now() - start).nanoseconds)
                if !coalesced { flow?.appended(events[0].org, events: events.count) }
                published.succeed()
            case .failure(let error):
                metrics.redisErrors.increment()
                let reason = (error as? RedisError).map { "\($0.code): \($0.serverPrefix ?? $0.message)" } ?? "\(error)"
                published.fail(PublishError(reason: reason))
            }
        }
        return published.futureResult
    }

    /// A request of a limited organization, or with an idempotency key, is checked and appended by one script
    /// (`GuardedAppend`), on its own: such requests are not coalesced, since each is admitted or refused by itself.
    func publish(
        _ events: [QueuedEvent], bytes: Int, limit: RateLimit, idempotency: GuardedAppend.Idempotency?, on eventLoop: any EventLoop
    ) -> EventLoopFuture<GuardedAppend.Decision> {
        guard !limit.isNone || idempotency != nil else { return publishUnlimited(events, on: eventLoop) }
        let start = NIODeadline.now()
        let org = events[0].org
        let stream = stream(events[0].event.kind, of: org)
        let chunks = StreamEntryCodec.chunks(events)
        let (redis, replicas, timeout, state) = (redis, waitReplicas, waitTimeoutMilliseconds, keys.rateState(org: org))
        let usage = keys.usage(org: org, day: Usage.day(events[0].receivedAt))
        let usageField = Usage.field("rate_limited", events[0].event.kind)
        @Sendable func append(sendSource: Bool) -> EventLoopFuture<GuardedAppend.Decision> {
            let command = GuardedAppend(
                chunks, to: stream, state: state, usage: usage, usageField: usageField, limit: limit, events: events.count, bytes: bytes,
                idempotency: idempotency, sendSource: sendSource)
            return redis.send(command, waitingForReplicas: replicas, timeoutMilliseconds: timeout, on: eventLoop)
        }
        let (metrics, flow) = (metrics, flow)
        let decided = eventLoop.makePromise(of: GuardedAppend.Decision.self)
        append(sendSource: false).flatMapError { error in
            // A server that has not run the script yet: once with its source.
            guard (error as? RedisError)?.isServerError("NOSCRIPT") == true else { return eventLoop.makeFailedFuture(error) }
            return append(sendSource: true)
        }.whenComplete { result in
            switch result {
            case .success(let decision):
                metrics.xaddDuration.recordNanoseconds((NIODeadline.now() - start).nanoseconds)
                if case .admitted = decision { flow?.appended(org, events: events.count) }
                decided.succeed(decision)
            case .failure(let error):
                metrics.redisErrors.increment()
                let reason = (error as? RedisError).map { "\($0.code): \($0.serverPrefix ?? $0.message)" } ?? "\(error)"
                decided.fail(PublishError(reason: reason))
            }
        }
        return decided.futureResult
    }

    func isReady() async -> Bool {
        (try? await redis.send(PING())) != nil
    }
}
