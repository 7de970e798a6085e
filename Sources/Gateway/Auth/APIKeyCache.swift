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

    /// The cached answer for the key whose SHA-256 is `digest`: `.some(record)` (the record, or `nil` for a key
    /// known not to exist) when a fresh one is cached, `.none` when Redis must be asked.
    func cachedRecord(sha256 digest: String) -> APIKeyRecord?? {
        guard ttlMilliseconds > 0 else { return .none }
        let now = NIODeadline.now()
        guard let entry = entries.withLock({ $0[digest] }), entry.fetchedAt + .milliseconds(Int64(ttlMilliseconds)) > now else { return .none }
        return .some(entry.record)
    }

    /// The record of the key whose SHA-256 is `digest` if it is an organization key, whether it is still valid or
    /// not, asked of the directory (for a key `cachedRecord` did not have) and then cached. Completes on `eventLoop`.
    func record(sha256 digest: String, on eventLoop: any EventLoop) -> EventLoopFuture<APIKeyRecord?> {
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
