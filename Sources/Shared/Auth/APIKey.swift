import Crypto

/// An organization's API key as the gateway and `operyn-admin` see it: its record, never the key itself.
public struct APIKeyRecord: Sendable, Equatable {
    /// The key's public id (`key_` and 12 hex digits), what `keys list` shows and `keys revoke` takes.
    public var id: String
    /// The organization the key writes to.
    public var organization: String
    /// When the key was made, in milliseconds since 1970.
    public var createdAt: Int64
    /// When the key stops working, in milliseconds since 1970; `nil` until revoked.
    public var expiresAt: Int64?

    /// Makes a record.
    public init(id: String, organization: String, createdAt: Int64, expiresAt: Int64? = nil) {
        self.id = id
        self.organization = organization
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }

    /// Whether the key still works at `now` (milliseconds since 1970).
    public func isValid(at now: Int64) -> Bool { expiresAt.map { now < $0 } ?? true }
}

/// Making and hashing API keys.
public enum APIKey {
    /// Every organization key starts with this, so a leaked key is recognizable in a secret scanner.
    public static let scheme = "opk_"

    /// A new key (`opk_` and 64 hex digits: 256 random bits) and its id (`key_` and 12 hex digits), both from the
    /// system's cryptographically secure generator.
    public static func generate() -> (key: String, id: String) {
        var generator = SystemRandomNumberGenerator()
        let secret = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let id = (0..<6).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return (scheme + hex(secret), "key_" + hex(id))
    }

    /// The SHA-256 of `key`, in lowercase hex: what is stored and looked up.
    public static func sha256(_ key: some StringProtocol) -> String {
        hex(Array(SHA256.hash(data: Array(key.utf8))))
    }

    /// The SHA-256 of `bytes`, in lowercase hex.
    public static func sha256(bytes: some Sequence<UInt8>) -> String {
        var hasher = SHA256()
        hasher.update(data: Array(bytes))
        return hex(Array(hasher.finalize()))
    }

    /// Lowercase hex digits of `bytes`.
    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
