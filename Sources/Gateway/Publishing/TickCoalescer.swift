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

        var entries: [Key: [Entry]] = [:]
        var flushScheduled = false
    }

    private let ticks = ThreadSpecificVariable<Tick>()
    private let maxBytes: Int

    init(maxBytes: Int = StreamEntryCodec.maxChunkBytes) { self.maxBytes = maxBytes }

    /// Adds a request's chunk to this tick's entry of its organization and kind; `append` writes each entry when the
    /// tick's reads are done. Call on `eventLoop`.
    func add(
        _ chunk: StreamChunk, on eventLoop: any EventLoop, append: @escaping @Sendable (StreamChunk, any EventLoop) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<Void> {
        eventLoop.preconditionInEventLoop()
        let tick: Tick
        if let current = ticks.currentValue {
            tick = current
        } else {
            tick = Tick()
            ticks.currentValue = tick
        }
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
        if !tick.flushScheduled {
            tick.flushScheduled = true
            eventLoop.execute {
                tick.flushScheduled = false
                let entries = tick.entries
                tick.entries.removeAll(keepingCapacity: true)
                for entry in entries.values.joined() {
                    append(entry.chunk, eventLoop).whenComplete { result in
                        for request in entry.requests { request.completeWith(result) }
                    }
                }
            }
        }
        return promise.futureResult
    }
}
