import Metrics
import NIOCore
import Shared

/// Appends a request's events to their kind's Redis stream as chunk entries (format version 2): one `XADD` when they
/// fit one chunk, `MULTI`/`EXEC` of several for a batch larger than a chunk (all or nothing), on the Redis connection
/// living on the caller's event loop.
///
/// With `coalescer`, requests of one organization and kind read in the same event-loop tick share one entry.
struct RedisEventPublisher: EventPublisher {
    let redis: RedisClient
    let keys: RedisKeys
    let metrics: GatewayMetrics
    var coalescer: TickCoalescer? = TickCoalescer()

    func publish(_ events: [QueuedEvent], on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let start = NIODeadline.now()
        let stream = keys.stream(events[0].event.kind)
        let chunks = StreamEntryCodec.chunks(events)
        let appended: EventLoopFuture<Void>
        if chunks.count == 1, let coalescer {
            let redis = redis
            appended = coalescer.add(chunks[0], on: eventLoop) { chunk, eventLoop in
                redis.send(AppendChunk(chunk, to: stream), on: eventLoop).map { _ in }
            }
        } else if chunks.count == 1 {
            appended = redis.send(AppendChunk(chunks[0], to: stream), on: eventLoop).map { _ in }
        } else {
            appended = redis.transaction(chunks.map { AppendChunk($0, to: stream) }, on: eventLoop).map { _ in }
        }
        let metrics = metrics
        let published = eventLoop.makePromise(of: Void.self)
        appended.whenComplete { result in
            switch result {
            case .success:
                metrics.xaddDuration.recordNanoseconds((NIODeadline.now() - start).nanoseconds)
                published.succeed()
            case .failure(let error):
                metrics.redisErrors.increment()
                let reason = (error as? RedisError).map { "\($0.code): \($0.serverPrefix ?? $0.message)" } ?? "\(error)"
                published.fail(PublishError(reason: reason))
            }
        }
        return published.futureResult
    }

    func isReady() async -> Bool {
        (try? await redis.send(PING())) != nil
    }
}
