import NIOCore
import NIOPosix
import Shared

/// Merges the requests one event loop reads in one tick into one chunk entry per organization and kind, as Kafka
/// producers batch records: Redis then appends, parses and propagates one entry for many requests.
///
/// The first request of a tick schedules the flush as a task on the loop, which runs once the loop has handled
/// every read of that wake-up; so no request waits for another that has not come yet. Each request is answered from
/// the reply to the `XADD` that holds its events; a failed `XADD` fails every request in it. A request's events are
/// never split over two entries (a request too large for one chunk is appended on its own, in `MULTI`/`EXEC`).
///
/// Requests of limited organizations, or with an `Idempotency-Key`, are grouped the same way by organization, kind and
/// limit: each group is admitted by one script call (`GuardedAppendGroup`), which decides each request on its own, in
/// arrival order, and each request is answered from its own decision.
final class TickCoalescer: Sendable {
    /// What one loop has gathered: kept per thread and touched only on that loop's thread (unchecked for that reason).
    final class Tick: @unchecked Sendable {
        struct Key: Hashable {
            var org: String
            var kind: EventKind
        }

        /// An entry being built and the requests waiting for it.
        struct Entry {
            var chunk: StreamChunk
            var requests: [EventLoopPromise<Void>]
        }

        struct GroupKey: Hashable {
            var org: String
            var kind: EventKind
            var limit: RateLimit
        }

        /// Guarded requests to admit together, and each one's promise, in order.
        struct Group {
            var requests: [GuardedAppendGroup.Request]
            var promises: [EventLoopPromise<PublishDecision>]
            /// Bytes of lines once joined as one chunk's.
            var bytes: Int
        }

        var entries: [Key: [Entry]] = [:]
        var groups: [GroupKey: [Group]] = [:]
        var flushScheduled = false
        var append: (@Sendable (StreamChunk, any EventLoop) -> EventLoopFuture<Void>)?
        var guardedAppend: (@Sendable ([GuardedAppendGroup.Request], RateLimit, any EventLoop) -> EventLoopFuture<[PublishDecision]>)?
    }

    private let ticks = ThreadSpecificVariable<Tick>()
    private let maxBytes: Int

    init(maxBytes: Int = StreamEntryCodec.maxChunkBytes) { self.maxBytes = maxBytes }

    /// Adds a request's chunk to this tick's entry of its organization and kind; `append` writes each entry when the
    /// tick's reads are done. Call on `eventLoop`.
    func add(
        _ chunk: StreamChunk, on eventLoop: any EventLoop, append: @escaping @Sendable (StreamChunk, any EventLoop) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<Void> {
        let tick = self.tick(on: eventLoop)
        tick.append = append
        let promise = eventLoop.makePromise(of: Void.self)
        let key = Tick.Key(org: chunk.org, kind: chunk.kind)
        if var entries = tick.entries.removeValue(forKey: key), var last = entries.popLast() {
            if last.chunk.lines.count + last.chunk.appendedLength(of: chunk) <= maxBytes {
                last.chunk.append(contentsOf: chunk)
                last.requests.append(promise)
                entries.append(last)
            } else {
                entries += [last, Tick.Entry(chunk: chunk, requests: [promise])]
            }
            tick.entries[key] = entries
        } else {
            tick.entries[key] = [Tick.Entry(chunk: chunk, requests: [promise])]
        }
        return promise.futureResult
    }

    /// Adds a guarded request (one chunk) to this tick's group of its organization, kind and limit; `append` admits
    /// and appends each group when the tick's reads are done, answering a decision per request. Call on `eventLoop`.
    func add(
        guarded request: GuardedAppendGroup.Request, limit: RateLimit, on eventLoop: any EventLoop,
        append: @escaping @Sendable ([GuardedAppendGroup.Request], RateLimit, any EventLoop) -> EventLoopFuture<[PublishDecision]>
    ) -> EventLoopFuture<PublishDecision> {
        let tick = self.tick(on: eventLoop)
        tick.guardedAppend = append
        let promise = eventLoop.makePromise(of: PublishDecision.self)
        let key = Tick.GroupKey(org: request.chunk.org, kind: request.chunk.kind, limit: limit)
        if var groups = tick.groups.removeValue(forKey: key), var last = groups.popLast() {
            let added = last.requests[0].chunk.appendedLength(of: request.chunk)
            if last.bytes + added <= maxBytes {
                last.requests.append(request)
                last.promises.append(promise)
                last.bytes += added
                groups.append(last)
            } else {
                groups += [last, Tick.Group(requests: [request], promises: [promise], bytes: request.chunk.lines.count)]
            }
            tick.groups[key] = groups
        } else {
            tick.groups[key] = [Tick.Group(requests: [request], promises: [promise], bytes: request.chunk.lines.count)]
        }
        return promise.futureResult
    }

    /// This loop's tick, its flush scheduled.
    private func tick(on eventLoop: any EventLoop) -> Tick {
        eventLoop.preconditionInEventLoop()
        let tick = ticks.value(orMake: Tick.init)
        if !tick.flushScheduled {
            tick.flushScheduled = true
            eventLoop.execute {
                tick.flushScheduled = false
                if !tick.entries.isEmpty, let append = tick.append {
                    let entries = tick.entries
                    tick.entries.removeAll(keepingCapacity: true)
                    for entry in entries.values.joined() {
                        append(entry.chunk, eventLoop).whenComplete { result in
                            for request in entry.requests { request.completeWith(result) }
                        }
                    }
                }
                if !tick.groups.isEmpty, let guardedAppend = tick.guardedAppend {
                    let groups = tick.groups
                    tick.groups.removeAll(keepingCapacity: true)
                    for (key, list) in groups {
                        for group in list {
                            guardedAppend(group.requests, key.limit, eventLoop).whenComplete { result in
                                switch result {
                                case .success(let decisions):
                                    for (promise, decision) in zip(group.promises, decisions) { promise.succeed(decision) }
                                case .failure(let error):
                                    for promise in group.promises { promise.fail(error) }
                                }
                            }
                        }
                    }
                }
            }
        }
        return tick
    }
}
