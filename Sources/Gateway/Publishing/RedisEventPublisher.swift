import Metrics
import NIOCore
import Shared

/// Appends events to their kind's Redis stream: one XADD for a single event, MULTI/EXEC for a batch.
struct RedisEventPublisher: EventPublisher {
    let redis: RedisClient
    let keys: RedisKeys
    let metrics: GatewayMetrics

    func publish(_ events: [QueuedEvent]) async throws(PublishError) {
        let start = NIODeadline.now()
        do {
            if events.count == 1 {
                let event = events[0]
                _ = try await redis.send(XADD(keys.stream(event.event.kind), fields: StreamEntryCodec.encode(event)))
            } else {
                let receivedAt = events[0].receivedAt.iso8601
                _ = try await redis.transaction(
                    events.map { event in
                        XADD(
                            keys.stream(event.event.kind),
                            fields: StreamEntryCodec.encode(event, receivedAt: event.receivedAt == events[0].receivedAt ? receivedAt : nil))
                    })
            }
        } catch {
            metrics.redisErrors.increment()
            throw PublishError(reason: "\(error.code): \(error.serverPrefix ?? error.message)")
        }
        metrics.xaddDuration.recordNanoseconds((NIODeadline.now() - start).nanoseconds)
    }

    func isReady() async -> Bool {
        (try? await redis.send(PING())) != nil
    }
}
