import Shared
import TestSupport
import Testing

@Suite("Organization API keys in the real Redis")
struct APIKeyStoreTests {
    @Test func keysAreStoredByTheirHashOnly() async throws {
        let redis = try TestRedis.client()
        defer { redis.shutdown() }
        let keys = RedisKeys(prefix: TestRedis.prefix())
        let store = APIKeyStore(redis: redis, keys: keys)
        let (key, record) = try await store.create(organization: "acme", now: 1_700_000_000_000)
        #expect(key.hasPrefix("opk_") && key.count == 68)
        #expect(record.id.hasPrefix("key_") && record.id.count == 16)
        #expect(try await store.record(sha256: APIKey.sha256(key)) == record)

        // Nothing in Redis holds the key itself.
        let names = try await redis.keys(matching: keys.prefix + ":*")
        #expect(Set(names) == [keys.apiKey(sha256: APIKey.sha256(key)), keys.apiKeys(org: "acme")])
        for name in names {
            let fields = try await redis.send(HGETALL(name))
            #expect(!fields.keys.contains { $0.contains(key) } && !fields.values.contains { $0.contains(key) })
        }
    }

    @Test func listRotateAndRevoke() async throws {
        let redis = try TestRedis.client()
        defer { redis.shutdown() }
        let store = APIKeyStore(redis: redis, keys: RedisKeys(prefix: TestRedis.prefix()))
        let (first, firstRecord) = try await store.create(organization: "acme", now: 1_000)
        let (second, secondRecord) = try await store.create(organization: "acme", now: 2_000)
        _ = try await store.create(organization: "globex", now: 3_000)
        #expect(try await store.list(organization: "acme") == [firstRecord, secondRecord])

        #expect(try await store.expire(organization: "acme", id: firstRecord.id, at: 5_000))
        let expiring = try #require(try await store.record(sha256: APIKey.sha256(first)))
        #expect(expiring.expiresAt == 5_000 && expiring.isValid(at: 4_999) && !expiring.isValid(at: 5_000))

        #expect(try await store.revoke(organization: "acme", id: secondRecord.id))
        #expect(try await store.record(sha256: APIKey.sha256(second)) == nil)
        #expect(try await store.list(organization: "acme").map(\.id) == [firstRecord.id])
        #expect(try await store.revoke(organization: "acme", id: secondRecord.id) == false)
        #expect(try await store.revoke(organization: "globex", id: firstRecord.id) == false, "a key id of another organization")
        #expect(try await store.expire(organization: "acme", id: "key_000000000000", at: 1) == false)
    }

    @Test func sha256MatchesKnownVectors() {
        #expect(APIKey.sha256("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(APIKey.sha256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let generated = (0..<100).map { _ in APIKey.generate() }
        #expect(Set(generated.map(\.key)).count == 100 && Set(generated.map(\.id)).count == 100)
    }
}
