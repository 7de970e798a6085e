import NIOCore

/// Where API keys are found by the SHA-256 of the key: Redis in production, a dictionary in route tests.
public protocol APIKeyDirectory: Sendable {
    /// The record of the key whose SHA-256 (hex) is `digest`, or `nil` when there is none.
    func record(sha256 digest: String) async throws(RedisError) -> APIKeyRecord?
    /// The same lookup from a NIO event loop, completing on it.
    func record(sha256 digest: String, on eventLoop: any EventLoop) -> EventLoopFuture<APIKeyRecord?>
}

extension APIKeyDirectory {
    /// Bridges the `async` lookup.
    public func record(sha256 digest: String, on eventLoop: any EventLoop) -> EventLoopFuture<APIKeyRecord?> {
        eventLoop.makeFutureWithTask { try await record(sha256: digest) }
    }
}

/// Organization API keys in Redis: `<prefix>:apikey:<sha256>` holds each key's record and
/// `<prefix>:org:<org>:keys` maps the organization's key ids to their SHA-256. The key itself is never stored.
public struct APIKeyStore: APIKeyDirectory {
    let redis: RedisClient
    let keys: RedisKeys

    /// A store on `redis` under the prefix of `keys`.
    public init(redis: RedisClient, keys: RedisKeys) {
        self.redis = redis
        self.keys = keys
    }

    public func record(sha256 digest: String) async throws(RedisError) -> APIKeyRecord? {
        Self.record(try await redis.send(HGETALL(keys.apiKey(sha256: digest))))
    }

    /// The lookup on `eventLoop`'s own Redis connection: no hop off the loop.
    public func record(sha256 digest: String, on eventLoop: any EventLoop) -> EventLoopFuture<APIKeyRecord?> {
        redis.send(HGETALL(keys.apiKey(sha256: digest)), on: eventLoop).map(Self.record)
    }

    private static func record(_ fields: [String: String]) -> APIKeyRecord? {
        guard let id = fields["id"], let organization = fields["org"], let createdAt = fields["created_at"].flatMap({ Int64($0) }) else {
            return nil
        }
        return APIKeyRecord(id: id, organization: organization, createdAt: createdAt, expiresAt: fields["expires_at"].flatMap { Int64($0) })
    }

    /// Makes a key for `organization`, expiring at `expiresAt` if given (an expired key stays listed until revoked); answers the key (shown once) and its record.
    public func create(organization: String, now: Int64, expiresAt: Int64? = nil) async throws(RedisError) -> (key: String, record: APIKeyRecord) {
        let (key, id) = APIKey.generate()
        let digest = APIKey.sha256(key)
        let record = APIKeyRecord(id: id, organization: organization, createdAt: now, expiresAt: expiresAt)
        var fields = [("id", id), ("org", organization), ("created_at", String(now))]
        if let expiresAt { fields.append(("expires_at", String(expiresAt))) }
        if keys.clustered {
            // Two slots: the organization's list first, then the record that makes the key work. Should the second
            // fail, the list names a record that does not exist, which `list` skips.
            _ = try await redis.send(HSET(keys.apiKeys(org: organization), fields: [(id, digest)]))
            _ = try await redis.send(HSET(keys.apiKey(sha256: digest), fields: fields))
        } else {
            _ = try await redis.transaction([
                HSET(keys.apiKey(sha256: digest), fields: fields), HSET(keys.apiKeys(org: organization), fields: [(id, digest)]),
            ])
        }
        return (key, record)
    }

    /// The organization's keys (records only, expired ones included until revoked), oldest first.
    public func list(organization: String) async throws(RedisError) -> [APIKeyRecord] {
        let digests = try await redis.send(HGETALL(keys.apiKeys(org: organization)))
        var records: [APIKeyRecord] = []
        for digest in digests.values {
            if let record = try await record(sha256: digest) { records.append(record) }
        }
        return records.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    /// Revokes a key at once: its record is deleted, so the gateways refuse it once their cache entry lapses.
    /// Answers whether the organization had that key.
    public func revoke(organization: String, id: String) async throws(RedisError) -> Bool {
        guard let digest = try await redis.send(HGET(keys.apiKeys(org: organization), field: id)) else { return false }
        if keys.clustered {
            // Two slots: the record first (the key stops working), then the organization's list.
            _ = try await redis.send(DEL([keys.apiKey(sha256: digest)]))
            _ = try await redis.send(HDEL(keys.apiKeys(org: organization), fields: [id]))
            return true
        }
        var pipeline = RedisPipeline()
        pipeline.add(DEL([keys.apiKey(sha256: digest)]))
        pipeline.add(HDEL(keys.apiKeys(org: organization), fields: [id]))
        _ = try await redis.transaction(pipeline)
        return true
    }

    /// Makes a key expire at `expiresAt` (rotation: the old key keeps working until then). Answers whether it exists.
    public func expire(organization: String, id: String, at expiresAt: Int64) async throws(RedisError) -> Bool {
        guard let digest = try await redis.send(HGET(keys.apiKeys(org: organization), field: id)),
            try await record(sha256: digest) != nil
        else { return false }
        _ = try await redis.send(HSET(keys.apiKey(sha256: digest), fields: [("expires_at", String(expiresAt))]))
        return true
    }
}
