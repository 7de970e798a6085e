import Metrics
import NIOCore
import Shared

/// Appends events to their kind's Redis stream: one XADD for a single event, MULTI/EXEC for a batch, on the Redis
/// connection living on the caller's event loop.
struct RedisEventPublisher: EventPublisher {
    let redis: RedisClient
    let keys: RedisKeys
    let metrics: GatewayMetrics

    func publish(_ events: [QueuedEvent], on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let start = NIODeadline.now()
        let appended: EventLoopFuture<Void>
        if events.count == 1 {
            let event = events[0]
            appended = redis.send(XADD(keys.stream(event.event.kind), fields: StreamEntryCodec.encode(event)), on: eventLoop).map { _ in }
        } else {
            let receivedAt = events[0].receivedAt.iso8601
            let commands = events.map { event in
                XADD(
                    keys.stream(event.event.kind),
                    fields: StreamEntryCodec.encode(event, receivedAt: event.receivedAt == events[0].receivedAt ? receivedAt : nil))
            }
            appended = redis.transaction(commands, on: eventLoop).map { _ in }
        }
        let metrics = metrics
        return appended.flatMapErrorThrowing { error in
            metrics.redisErrors.increment()
            let reason = (error as? RedisError).map { "\($0.code): \($0.serverPrefix ?? $0.message)" } ?? "\(error)"
            throw PublishError(reason: reason)
        }.map {
            metrics.xaddDuration.recordNanoseconds((NIODeadline.now() - start).nanoseconds)
        }
    }

    func isReady() async -> Bool {
        (try? await redis.send(PING())) != nil
    }
}
