import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// An auto-pipelining Redis client over connections living on NIO event loops: one connection on one loop
/// (`init(configuration:)`), or one on each loop of a group (`init(configuration:group:)`, for a server whose
/// requests already run on those loops).
///
/// Commands from any number of callers share round trips: a loop flushes what was written in one tick. Every
/// command fails within the command timeout when Redis is unreachable or stalled, with a retryable `RedisError`,
/// and each connection reconnects by itself with backoff (`RedisConnectionStateMachine`).
///
/// Code already running on a loop (a channel handler) sends with `send(_:on:)` and `transaction(_:on:)`: the
/// command goes to the connection living on that loop and the answer comes back on it, with no thread hop and no
/// task. `async` callers are served by the connections in turn.
///
/// The client is a `Service`: run it in the executable's service group, which closes its connections once the
/// services that use it have stopped. A blocking command (`XREADGROUP … BLOCK`) holds up every command queued
/// behind it on its connection: give it a client of its own.
public final class RedisClient: Sendable, Service {
    private let connections: [RedisConnection]
    /// The connections by the identity of their loop.
    private let byLoop: [ObjectIdentifier: RedisConnection]
    private let nextConnection = Atomic<Int>(0)
    private let digests = Mutex<[RedisScript: String]>([:])

    /// The configuration the client connects with.
    public let configuration: RedisConfiguration

    /// A client with one connection on each loop of `group`; each connects at once and whenever its link is lost.
    public init(
        configuration: RedisConfiguration, group: any EventLoopGroup, name: String = "redis", logger: Logger = Logger(label: "operyn.redis")
    ) {
        var connections: [RedisConnection] = []
        for (index, eventLoop) in group.makeIterator().enumerated() {
            connections.append(RedisConnection(configuration: configuration, eventLoop: eventLoop, name: "\(name)-\(index)", logger: logger))
        }
        self.configuration = configuration
        self.connections = connections
        byLoop = Dictionary(connections.map { (ObjectIdentifier($0.eventLoop), $0) }, uniquingKeysWith: { first, _ in first })
        for connection in connections { connection.start() }
    }

    /// A client with one connection, on `eventLoop` (by default one of the process's shared loops).
    public convenience init(
        configuration: RedisConfiguration, eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next(), name: String = "redis",
        logger: Logger = Logger(label: "operyn.redis")
    ) {
        self.init(configuration: configuration, group: eventLoop, name: name, logger: logger)
    }

    /// Makes a client from a `redis://` URL.
    public convenience init(url: String, name: String = "redis", logger: Logger = Logger(label: "operyn.redis")) throws(RedisError) {
        self.init(configuration: try RedisConfiguration(url: url), name: name, logger: logger)
    }

    /// Runs until the service group shuts down (or the task is cancelled), then closes the connections: commands
    /// in flight and later ones fail with `shutdown`.
    public func run() async throws {
        try? await gracefulShutdown()
        shutdown()
    }

    /// Closes the connections now. The service does this when its group stops; a caller that runs the client
    /// outside a service group (a test) calls it when done.
    public func shutdown() {
        for connection in connections { connection.shutdown() }
    }

    /// Whether every connection is up right now.
    public var isConnected: Bool { connections.allSatisfy(\.isConnected) }

    /// The connection for a caller not on a loop: each in turn.
    private var anyConnection: RedisConnection {
        connections.count == 1 ? connections[0] : connections[nextConnection.wrappingAdd(1, ordering: .relaxed).oldValue % connections.count]
    }

    /// Sends pre-encoded commands on the connection of `eventLoop` (or, when it has none, another one) and answers
    /// their replies on `eventLoop`.
    private func execute(_ payload: [UInt8], replies: Int, blockingMilliseconds: Int, on eventLoop: any EventLoop) -> EventLoopFuture<[RedisReply]> {
        let connection = byLoop[ObjectIdentifier(eventLoop)] ?? anyConnection
        let promise = connection.eventLoop.makePromise(of: [RedisReply].self)
        connection.enqueue(payload, replies: replies, blockingMilliseconds: blockingMilliseconds, promise: promise)
        return promise.futureResult.hop(to: eventLoop)
    }

    /// Sends one command from `eventLoop` and decodes its reply there; an error reply fails the future with a `RedisError`.
    public func send<Command: RedisCommand>(_ command: Command, on eventLoop: any EventLoop) -> EventLoopFuture<Command.Response> {
        var payload: [UInt8] = []
        command.encode(into: &payload)
        return execute(payload, replies: 1, blockingMilliseconds: command.blockingMilliseconds ?? 0, on: eventLoop).flatMapThrowing { replies in
            try Self.decode(replies[0], for: command)
        }
    }

    /// Runs commands atomically in `MULTI`/`EXEC` from `eventLoop`, in one round trip; see `transaction(_:)`.
    public func transaction<Command: RedisCommand>(_ commands: [Command], on eventLoop: any EventLoop) -> EventLoopFuture<[Command.Response]> {
        guard !commands.isEmpty else { return eventLoop.makeSucceededFuture([]) }
        return execute(Self.transactionPayload(commands), replies: commands.count + 2, blockingMilliseconds: 0, on: eventLoop).flatMapThrowing { replies in
            try Self.decodeTransaction(replies, for: commands)
        }
    }

    /// Sends one command and decodes its reply; an error reply is thrown as a `RedisError`.
    public func send<Command: RedisCommand>(_ command: Command) async throws(RedisError) -> Command.Response {
        var payload: [UInt8] = []
        command.encode(into: &payload)
        let replies = try await anyConnection.execute(payload, replies: 1, blockingMilliseconds: command.blockingMilliseconds ?? 0)
        return try Self.decode(replies[0], for: command)
    }

    /// Sends commands back to back in one round trip; each gets its own result.
    public func pipeline<Command: RedisCommand>(_ commands: [Command]) async throws(RedisError) -> [Result<Command.Response, RedisError>] {
        guard !commands.isEmpty else { return [] }
        var payload: [UInt8] = []
        for command in commands { command.encode(into: &payload) }
        let replies = try await anyConnection.execute(payload, replies: commands.count, blockingMilliseconds: 0)
        return zip(replies, commands).map { reply, command in
            Result { () throws(RedisError) in try Self.decode(reply, for: command) }
        }
    }

    /// Runs commands atomically in `MULTI`/`EXEC`, in one round trip: all run or none does.
    /// Throws when the transaction was refused (a command rejected while queuing, such as `OOM`),
    /// or when any command failed inside it.
    public func transaction<Command: RedisCommand>(_ commands: [Command]) async throws(RedisError) -> [Command.Response] {
        guard !commands.isEmpty else { return [] }
        let replies = try await anyConnection.execute(Self.transactionPayload(commands), replies: commands.count + 2, blockingMilliseconds: 0)
        return try Self.decodeTransaction(replies, for: commands)
    }

    private static func transactionPayload<Command: RedisCommand>(_ commands: [Command]) -> [UInt8] {
        transactionPayload { payload in for command in commands { command.encode(into: &payload) } }
    }

    /// `MULTI`, the commands `encode` writes, `EXEC`.
    private static func transactionPayload(_ encode: (inout [UInt8]) -> Void) -> [UInt8] {
        var payload: [UInt8] = []
        RedisCommandEncoder.append([Array("MULTI".utf8)], to: &payload)
        encode(&payload)
        RedisCommandEncoder.append([Array("EXEC".utf8)], to: &payload)
        return payload
    }

    /// The results of `MULTI`, the queued commands and `EXEC`.
    private static func decodeTransaction<Command: RedisCommand>(_ replies: [RedisReply], for commands: [Command]) throws(RedisError) -> [Command.Response] {
        let results = try checkTransaction(replies, count: commands.count)
        var responses: [Command.Response] = []
        responses.reserveCapacity(commands.count)
        for (reply, command) in zip(results, commands) { responses.append(try Self.decode(reply, for: command)) }
        return responses
    }

    /// Sends the commands of `pipeline`, of any types, back to back in one round trip; each gets its own result.
    public func pipeline(_ pipeline: RedisPipeline) async throws(RedisError) -> RedisPipeline.Results {
        guard !pipeline.isEmpty else { return RedisPipeline.Results(results: []) }
        let replies = try await anyConnection.execute(pipeline.payload, replies: pipeline.count, blockingMilliseconds: 0)
        return RedisPipeline.Results(
            results: replies.enumerated().map { index, reply in Result { () throws(RedisError) in try pipeline.decode(reply, at: index) } })
    }

    /// Runs the commands of `pipeline`, of any types, atomically in `MULTI`/`EXEC` in one round trip; throws as
    /// `transaction(_:)` does, so every result it answers is a success.
    public func transaction(_ pipeline: RedisPipeline) async throws(RedisError) -> RedisPipeline.Results {
        guard !pipeline.isEmpty else { return RedisPipeline.Results(results: []) }
        let payload = Self.transactionPayload { $0 += pipeline.payload }
        let replies = try await anyConnection.execute(payload, replies: pipeline.count + 2, blockingMilliseconds: 0)
        let results = try Self.checkTransaction(replies, count: pipeline.count)
        var values: [Result<any Sendable, RedisError>] = []
        for (index, reply) in results.enumerated() { values.append(.success(try pipeline.decode(reply, at: index))) }
        return RedisPipeline.Results(results: values)
    }

    /// The replies of the commands inside `EXEC`, once `MULTI`, every queued command and `EXEC` itself succeeded.
    private static func checkTransaction(_ replies: [RedisReply], count: Int) throws(RedisError) -> [RedisReply] {
        try replies[0].throwingError()
        for queued in replies[1...count] {
            // A command refused while queuing makes EXEC abort; its own error says why.
            try queued.throwingError()
        }
        let exec = try replies[count + 1].throwingError()
        guard let results = exec.array, results.count == count else {
            throw RedisError(code: .unexpectedReply, message: "EXEC returned no results")
        }
        return results
    }

    /// Runs a Lua script by `EVALSHA`, loading it with `SCRIPT LOAD` first when the server does not know it.
    public func run(_ script: RedisScript, keys: [String], arguments: [[UInt8]]) async throws(RedisError) -> RedisReply {
        let sha: String
        if let known = digests.withLock({ $0[script] }) {
            sha = known
        } else {
            sha = try await send(SCRIPTLOAD(script.source))
            digests.withLock { $0[script] = sha }
        }
        do {
            return try await send(EVALSHA(sha: sha, keys: keys, arguments: arguments))
        } catch  where error.isServerError("NOSCRIPT") {
            let loaded = try await send(SCRIPTLOAD(script.source))
            digests.withLock { $0[script] = loaded }
            return try await send(EVALSHA(sha: loaded, keys: keys, arguments: arguments))
        }
    }

    static func decode<Command: RedisCommand>(_ reply: RedisReply, for command: Command) throws(RedisError) -> Command.Response {
        if case .error(let error) = reply {
            if let tolerated = command.response(forError: error) { return tolerated }
            throw error
        }
        return try command.response(from: reply)
    }
}

/// A Lua script run through `RedisClient.run`.
public struct RedisScript: Sendable, Hashable {
    /// The Lua source.
    public let source: String

    /// A script from its source.
    public init(_ source: String) { self.source = source }
}
