import Foundation
import Logging
import NIOCore
import Synchronization

/// An auto-pipelining Redis client, carried by a thread of its own (`init(configuration:)`) or by NIO event
/// loops, one connection per loop (`init(configuration:group:)`).
///
/// Commands from any number of tasks share round trips: the thread takes everything queued and
/// writes it in one go (no socket call on an event loop or on Swift's cooperative pool); an event
/// loop flushes what was written in one tick. Every command fails within the command timeout when
/// Redis is unreachable or stalled, with a retryable `RedisError`, and the client reconnects by
/// itself with backoff.
///
/// On event loops, code already running on a loop (a channel handler) sends with `send(_:on:)` and
/// `transaction(_:on:)`: the command goes to the connection living on that loop and the answer comes back
/// on it, with no thread hop and no task.
///
/// Blocking commands (`XREADGROUP ... BLOCK`) hold up everything queued behind them: give them a
/// threaded client of their own.
public final class RedisClient: Sendable {
    private let transports: [any RedisTransport]
    /// The event-loop connections by the identity of their loop.
    private let connections: [ObjectIdentifier: RedisEventLoopConnection]
    private let nextTransport = Atomic<Int>(0)
    private let digests = Mutex<[RedisScript: String]>([:])

    /// The configuration the client connects with.
    public let configuration: RedisConfiguration

    /// Starts the client's thread; it connects at once and whenever the link is lost.
    public init(configuration: RedisConfiguration, name: String = "redis", logger: Logger = Logger(label: "operyn.redis")) {
        let thread = RedisClientCore(configuration: configuration, name: name, logger: logger)
        self.configuration = configuration
        transports = [thread]
        connections = [:]
        thread.start()
    }

    /// Starts a client with one connection on each loop of `group`: for a server whose requests already run on
    /// those loops, where a thread of the client's own would cost a wake-up per round trip. No blocking commands.
    public init(configuration: RedisConfiguration, group: any EventLoopGroup, name: String = "redis", logger: Logger = Logger(label: "operyn.redis")) {
        var connections: [ObjectIdentifier: RedisEventLoopConnection] = [:]
        var transports: [any RedisTransport] = []
        for (index, eventLoop) in group.makeIterator().enumerated() {
            let connection = RedisEventLoopConnection(configuration: configuration, eventLoop: eventLoop, name: "\(name)-\(index)", logger: logger)
            connections[ObjectIdentifier(eventLoop)] = connection
            transports.append(connection)
            connection.start()
        }
        self.configuration = configuration
        self.transports = transports
        self.connections = connections
    }

    /// Starts a client whose one connection lives on `eventLoop`. No blocking commands.
    public convenience init(configuration: RedisConfiguration, eventLoop: any EventLoop, name: String = "redis", logger: Logger = Logger(label: "operyn.redis"))
    {
        self.init(configuration: configuration, group: eventLoop, name: name, logger: logger)
    }

    /// Makes a client from a `redis://` URL.
    public convenience init(url: String, name: String = "redis", logger: Logger = Logger(label: "operyn.redis")) throws(RedisError) {
        self.init(configuration: try RedisConfiguration(url: url), name: name, logger: logger)
    }

    deinit { shutdown() }

    /// Stops the thread and closes the connections; queued and later commands fail with `shutdown`.
    public func shutdown() {
        for transport in transports { transport.shutdown() }
    }

    /// Whether every connection is up right now.
    public var isConnected: Bool { transports.allSatisfy(\.isConnected) }

    /// The transport for a caller not on a loop: round robin.
    private var anyTransport: any RedisTransport {
        transports.count == 1 ? transports[0] : transports[nextTransport.wrappingAdd(1, ordering: .relaxed).oldValue % transports.count]
    }

    /// Sends pre-encoded commands on the connection of `eventLoop` (or, without one, the client's own transport)
    /// and answers their replies on `eventLoop`.
    private func execute(_ payload: [UInt8], replies: Int, blockingMilliseconds: Int, on eventLoop: any EventLoop) -> EventLoopFuture<[RedisReply]> {
        if let connection = connections[ObjectIdentifier(eventLoop)] {
            let promise = eventLoop.makePromise(of: [RedisReply].self)
            connection.enqueue(payload, replies: replies, blockingMilliseconds: blockingMilliseconds, promise: promise)
            return promise.futureResult
        }
        let transport = anyTransport
        return eventLoop.makeFutureWithTask { try await transport.execute(payload, replies: replies, blockingMilliseconds: blockingMilliseconds) }
    }

    /// Sends one command from `eventLoop` and decodes its reply there; an error reply fails the future with a `RedisError`.
    public func send<Command: RedisCommand>(_ command: Command, on eventLoop: any EventLoop) -> EventLoopFuture<Command.Response> {
        var payload: [UInt8] = []
        RedisCommandEncoder.append(command.arguments, to: &payload)
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
        RedisCommandEncoder.append(command.arguments, to: &payload)
        let replies = try await anyTransport.execute(payload, replies: 1, blockingMilliseconds: command.blockingMilliseconds ?? 0)
        return try Self.decode(replies[0], for: command)
    }

    /// Sends commands back to back in one round trip; each gets its own result.
    public func pipeline<Command: RedisCommand>(_ commands: [Command]) async throws(RedisError) -> [Result<Command.Response, RedisError>] {
        guard !commands.isEmpty else { return [] }
        var payload: [UInt8] = []
        for command in commands { RedisCommandEncoder.append(command.arguments, to: &payload) }
        let replies = try await anyTransport.execute(payload, replies: commands.count, blockingMilliseconds: 0)
        return zip(replies, commands).map { reply, command in
            Result { () throws(RedisError) in try Self.decode(reply, for: command) }
        }
    }

    /// Runs commands atomically in `MULTI`/`EXEC`, in one round trip: all run or none does.
    /// Throws when the transaction was refused (a command rejected while queuing, such as `OOM`),
    /// or when any command failed inside it.
    public func transaction<Command: RedisCommand>(_ commands: [Command]) async throws(RedisError) -> [Command.Response] {
        guard !commands.isEmpty else { return [] }
        let replies = try await anyTransport.execute(Self.transactionPayload(commands), replies: commands.count + 2, blockingMilliseconds: 0)
        return try Self.decodeTransaction(replies, for: commands)
    }

    private static func transactionPayload<Command: RedisCommand>(_ commands: [Command]) -> [UInt8] {
        var payload: [UInt8] = []
        RedisCommandEncoder.append([Array("MULTI".utf8)], to: &payload)
        for command in commands { RedisCommandEncoder.append(command.arguments, to: &payload) }
        RedisCommandEncoder.append([Array("EXEC".utf8)], to: &payload)
        return payload
    }

    /// The results of `MULTI`, the queued commands and `EXEC`.
    private static func decodeTransaction<Command: RedisCommand>(_ replies: [RedisReply], for commands: [Command]) throws(RedisError) -> [Command.Response] {
        try replies[0].throwingError()
        for queued in replies[1...commands.count] {
            // A command refused while queuing makes EXEC abort; its own error says why.
            try queued.throwingError()
        }
        let exec = try replies[commands.count + 1].throwingError()
        guard let results = exec.array, results.count == commands.count else {
            throw RedisError(code: .unexpectedReply, message: "EXEC returned no results")
        }
        var responses: [Command.Response] = []
        responses.reserveCapacity(commands.count)
        for (reply, command) in zip(results, commands) { responses.append(try Self.decode(reply, for: command)) }
        return responses
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

    private static func decode<Command: RedisCommand>(_ reply: RedisReply, for command: Command) throws(RedisError) -> Command.Response {
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

/// What carries a `RedisClient`'s commands: a thread of its own (`RedisClientCore`) or a NIO event loop
/// (`RedisEventLoopConnection`).
protocol RedisTransport: Sendable {
    var configuration: RedisConfiguration { get }
    var isConnected: Bool { get }
    /// Sends pre-encoded commands and waits for their `replies` replies.
    func execute(_ payload: [UInt8], replies: Int, blockingMilliseconds: Int) async throws(RedisError) -> [RedisReply]
    func shutdown()
}
