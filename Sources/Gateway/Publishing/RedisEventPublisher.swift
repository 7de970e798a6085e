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
            appended = redis.send(AppendEvent(events[0], to: keys.stream(events[0].event.kind)), on: eventLoop).map { _ in }
        } else {
            let receivedAt = events[0].receivedAt.iso8601
            let commands = events.map { event in
                AppendEvent(event, to: keys.stream(event.event.kind), receivedAt: event.receivedAt == events[0].receivedAt ? receivedAt : nil)
            }
            appended = redis.transaction(commands, on: eventLoop).map { _ in }
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
