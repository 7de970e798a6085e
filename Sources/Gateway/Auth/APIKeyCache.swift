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

    /// The record of `key` if it is an organization key, whether it is still valid or not.
    func record(forKey key: String) async throws(RedisError) -> APIKeyRecord? {
        let digest = APIKey.sha256(key)
        let now = NIODeadline.now()
        if ttlMilliseconds > 0, let entry = entries.withLock({ $0[digest] }), entry.fetchedAt + .milliseconds(Int64(ttlMilliseconds)) > now {
            return entry.record
        }
        let record = try await directory.record(sha256: digest)
        guard ttlMilliseconds > 0 else { return record }
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[digest] = Entry(record: record, fetchedAt: now)
        }
        return record
    }
}
