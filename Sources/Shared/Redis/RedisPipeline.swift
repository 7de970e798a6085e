/// Commands of any types, sent back to back in one round trip (`RedisClient.pipeline`) or as one `MULTI`/`EXEC`
/// (`RedisClient.transaction`). Each `add` answers a typed handle to that command's result:
///
/// ```swift
/// var pipeline = RedisPipeline()
/// let added = pipeline.add(XADD(stream, fields: fields))
/// pipeline.add(HDEL(attempts, fields: [field]))
/// let id = try await redis.transaction(pipeline).value(added)
/// ```
public struct RedisPipeline: Sendable {
    /// Where one command's result is found.
    public struct Slot<Response: Sendable>: Sendable {
        let index: Int
    }

    /// The results of a pipeline or transaction.
    public struct Results: Sendable {
        let results: [Result<any Sendable, RedisError>]

        /// The result of the command `slot` stands for.
        public subscript<Response>(_ slot: Slot<Response>) -> Result<Response, RedisError> {
            results[slot.index].map { $0 as! Response }
        }

        /// The response of the command `slot` stands for, or its error.
        public func value<Response>(_ slot: Slot<Response>) throws(RedisError) -> Response { try self[slot].get() }

        /// Throws the first error among the results.
        public func check() throws(RedisError) {
            for case .failure(let error) in results { throw error }
        }
    }

    private(set) var payload: [UInt8] = []
    private var decoders: [@Sendable (RedisReply) throws -> any Sendable] = []
    /// Each command's bytes in `payload` and its routing key.
    private var commands: [(bytes: Range<Int>, key: [UInt8]?)] = []

    /// An empty pipeline.
    public init() {}

    /// How many commands it holds.
    public var count: Int { decoders.count }

    /// Whether it holds none.
    public var isEmpty: Bool { decoders.isEmpty }

    /// The command at `index`: its encoding and routing key.
    func command(at index: Int) -> (payload: ArraySlice<UInt8>, key: [UInt8]?) {
        (payload[commands[index].bytes], commands[index].key)
    }

    /// Decodes the reply of the command at `index`; an error reply is a `RedisError`.
    func decode(_ reply: RedisReply, at index: Int) throws(RedisError) -> any Sendable {
        do {
            return try decoders[index](reply)
        } catch let error as RedisError {
            throw error
        } catch {
            throw RedisError(code: .unexpectedReply, message: "\(error)")
        }
    }

    /// Adds `command`; answers the handle to its result.
    @discardableResult
    public mutating func add<Command: RedisCommand>(_ command: Command) -> Slot<Command.Response> {
        let start = payload.count
        command.encode(into: &payload)
        commands.append((start..<payload.count, command.routingKey))
        decoders.append { reply in try RedisClient.decode(reply, for: command) }
        return Slot(index: decoders.count - 1)
    }
}
