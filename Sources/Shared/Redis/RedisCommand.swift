/// A typed Redis command: its argument vector and how its reply decodes.
public protocol RedisCommand: Sendable {
    /// What the reply decodes to.
    associatedtype Response: Sendable
    /// The argument vector, command name first; binary-safe.
    var arguments: [[UInt8]] { get }
    /// Appends the command's RESP encoding to `buffer`; by default that of `arguments`. A command sent for every
    /// request may write itself directly instead (`AppendChunk`).
    func encode(into buffer: inout [UInt8])
    /// For a blocking command, how long the server may hold the reply, in milliseconds; the
    /// client adds it to the command timeout. Send blocking commands on a client of their own:
    /// on a shared connection they hold up every command queued behind them.
    var blockingMilliseconds: Int? { get }
    /// The key a Redis Cluster routes this command by, `nil` for a command without one; by default found in
    /// `arguments` (`RedisKeyPosition`). A command that writes itself directly names its key here.
    var routingKey: [UInt8]? { get }
    /// Decodes the reply; an error reply has already been thrown before this is called.
    func response(from reply: RedisReply) throws(RedisError) -> Response
    /// A response standing for an error reply that is not a failure for this command
    /// (`BUSYGROUP` for `XGROUP CREATE`); `nil` lets the error through.
    func response(forError error: RedisError) -> Response?
}

extension RedisCommand {
    public func encode(into buffer: inout [UInt8]) { RedisCommandEncoder.append(arguments, to: &buffer) }

    /// Not blocking.
    public var blockingMilliseconds: Int? { nil }

    /// No error reply is tolerated.
    public func response(forError error: RedisError) -> Response? { nil }
}

/// Argument-vector building shared by the command types.
extension Array where Element == [UInt8] {
    mutating func append(_ text: String) { append([UInt8](text.utf8)) }
    mutating func append(_ number: Int) { append([UInt8](String(number).utf8)) }
}

/// Reply decoding shared by the command types.
extension RedisReply {
    public func expectInteger(_ command: String) throws(RedisError) -> Int {
        guard let value = integer else { throw .unexpected(command, self) }
        return Int(value)
    }

    public func expectString(_ command: String) throws(RedisError) -> String {
        guard let value = string else { throw .unexpected(command, self) }
        return value
    }

    public func expectArray(_ command: String) throws(RedisError) -> [RedisReply] {
        guard let value = array else { throw .unexpected(command, self) }
        return value
    }

    /// Reads a flat `[key, value, key, value ...]` array as a dictionary keyed by text.
    public func expectMap(_ command: String) throws(RedisError) -> [String: RedisReply] {
        let elements = try expectArray(command)
        var map: [String: RedisReply] = [:]
        var index = 0
        while index + 1 < elements.count {
            map[try elements[index].expectString(command)] = elements[index + 1]
            index += 2
        }
        return map
    }
}

extension RedisError {
    /// A reply `command` does not answer with.
    public static func unexpected(_ command: String, _ reply: RedisReply) -> RedisError {
        RedisError(code: .unexpectedReply, message: "\(command) returned an unexpected reply")
    }
}

/// Any command, given as words; the reply is returned as it came.
public struct RawCommand: RedisCommand {
    public var arguments: [[UInt8]]
    public var blockingMilliseconds: Int?

    /// A command from text words, such as `RawCommand("CONFIG", "GET", "appendonly")`.
    public init(_ words: String...) {
        arguments = words.map { Array($0.utf8) }
    }

    /// A command from binary words.
    public init(arguments: [[UInt8]], blockingMilliseconds: Int? = nil) {
        self.arguments = arguments
        self.blockingMilliseconds = blockingMilliseconds
    }

    public func response(from reply: RedisReply) -> RedisReply { reply }
}
