/// A Redis reply, copied out of hiredis into a Swift value.
public enum RedisReply: Sendable, Equatable {
    /// A status reply such as `OK`.
    case status(String)
    /// A bulk string; binary-safe. A slice of the bytes of the whole reply, which its strings share.
    case bulk(ArraySlice<UInt8>)
    /// An integer reply.
    case integer(Int64)
    /// A multi-bulk reply.
    case array([RedisReply])
    /// A nil bulk string or nil array.
    case null
    /// An error reply from the server.
    case error(RedisError)

    /// The reply as text, for status and bulk replies.
    public var string: String? {
        switch self {
        case .status(let text): text
        case .bulk(let bytes): String(decoding: bytes, as: UTF8.self)
        case .integer(let value): String(value)
        default: nil
        }
    }

    /// The reply as raw bytes, for bulk and status replies.
    public var bytes: [UInt8]? {
        switch self {
        case .bulk(let bytes): Array(bytes)
        case .status(let text): Array(text.utf8)
        default: nil
        }
    }

    /// The reply as an integer, for integer replies and numeric bulk strings.
    public var integer: Int64? {
        switch self {
        case .integer(let value): value
        case .bulk, .status: string.flatMap { Int64($0) }
        default: nil
        }
    }

    /// The reply's bytes without a copy, for bulk replies; the bytes of the text of status replies.
    public var slice: ArraySlice<UInt8>? {
        switch self {
        case .bulk(let bytes): bytes
        case .status(let text): ArraySlice(text.utf8)
        default: nil
        }
    }

    /// The elements of an array reply; `nil` for any other reply.
    public var array: [RedisReply]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// Whether the reply is a nil bulk or array.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// Throws the server error carried by an error reply; returns the reply otherwise.
    @discardableResult
    public func throwingError() throws(RedisError) -> RedisReply {
        if case .error(let error) = self { throw error }
        return self
    }
}
