import NIOCore
import Shared
import Synchronization

/// Organization key lookups, cached for at most `ttlMilliseconds` so that a revoked key stops working within that
/// time on every gateway, whatever its traffic. Unknown keys are cached too (a flood of wrong keys costs Redis one
/// lookup per key and period); the table is bounded and cleared when full.
final class APIKeyCache: Sendable {
    private struct Entry {
        var record: APIKeyRecord?
        var fetchedAt: NIODeadline
    }

    private let directory: any APIKeyDirectory
    private let ttlMilliseconds: Int
    private let capacity: Int
    private let entries = Mutex<[String: Entry]>([:])

    /// Looks keys up in `directory`, remembering each answer for `ttlMilliseconds` (0 turns caching off).
    init(directory: any APIKeyDirectory, ttlMilliseconds: Int, capacity: Int = 100_000) {
        self.directory = directory
        self.ttlMilliseconds = ttlMilliseconds
        self.capacity = capacity
    }

    /// The cached answer for `key`: `.some(record)` (the record, or `nil` for a key known not to exist) when a fresh
    /// one is cached, `.none` when Redis must be asked.
    func cachedRecord(forKey key: String) -> APIKeyRecord?? {
        guard ttlMilliseconds > 0 else { return .none }
        let digest = APIKey.sha256(key)
        let now = NIODeadline.now()
        guard let entry = entries.withLock({ $0[digest] }), entry.fetchedAt + .milliseconds(Int64(ttlMilliseconds)) > now else { return .none }
        return .some(entry.record)
    }

    /// The record of `key` if it is an organization key, whether it is still valid or not: from the cache, else
    /// from the directory (and then cached). Completes on `eventLoop`.
    func record(forKey key: String, on eventLoop: any EventLoop) -> EventLoopFuture<APIKeyRecord?> {
        if let cached = cachedRecord(forKey: key) { return eventLoop.makeSucceededFuture(cached) }
        let digest = APIKey.sha256(key)
        let now = NIODeadline.now()
        return directory.record(sha256: digest, on: eventLoop).map { record in
            guard self.ttlMilliseconds > 0 else { return record }
            self.entries.withLock { entries in
                if entries.count >= self.capacity { entries.removeAll(keepingCapacity: true) }
                entries[digest] = Entry(record: record, fetchedAt: now)
            }
            return record
        }
    }
}
