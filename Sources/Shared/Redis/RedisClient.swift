import Foundation
import Logging
import NIOCore
import Synchronization

/// An auto-pipelining Redis client over one connection, carried by a thread of its own
/// (`init(configuration:)`) or by a NIO event loop (`init(configuration:eventLoop:)`).
///
/// Commands from any number of tasks share round trips: the thread takes everything queued and
/// writes it in one go (no socket call on an event loop or on Swift's cooperative pool); the event
/// loop flushes what was written in one tick. Every command fails within the command timeout when
/// Redis is unreachable or stalled, with a retryable `RedisError`, and the client reconnects by
/// itself with backoff.
///
/// Blocking commands (`XREADGROUP ... BLOCK`) hold up everything queued behind them: give them a
/// threaded client of their own.
public final class RedisClient: Sendable {
    private let core: any RedisTransport
    private let digests = Mutex<[RedisScript: String]>([:])

    /// The configuration the client connects with.
    public var configuration: RedisConfiguration { core.configuration }

    /// Starts the client's thread; it connects at once and whenever the link is lost.
    public init(configuration: RedisConfiguration, name: String = "redis", logger: Logger = Logger(label: "operyn.redis")) {
        let thread = RedisClientCore(configuration: configuration, name: name, logger: logger)
        core = thread
        thread.start()
    }

    /// Starts a client whose connection lives on `eventLoop`: for a server whose requests already run beside
    /// NIO, where a thread of the client's own would cost a wake-up per round trip. No blocking commands.
    public init(configuration: RedisConfiguration, eventLoop: any EventLoop, name: String = "redis", logger: Logger = Logger(label: "operyn.redis")) {
        let connection = RedisEventLoopConnection(configuration: configuration, eventLoop: eventLoop, name: name, logger: logger)
        core = connection
        connection.start()
    }

    /// Makes a client from a `redis://` URL.
    public convenience init(url: String, name: String = "redis", logger: Logger = Logger(label: "operyn.redis")) throws(RedisError) {
        self.init(configuration: try RedisConfiguration(url: url), name: name, logger: logger)
    }

    deinit { core.shutdown() }

    /// Stops the thread and closes the connection; queued and later commands fail with `shutdown`.
    public func shutdown() { core.shutdown() }

    /// Whether the connection is up right now.
    public var isConnected: Bool { core.isConnected }

    /// Sends one command and decodes its reply; an error reply is thrown as a `RedisError`.
    public func send<Command: RedisCommand>(_ command: Command) async throws(RedisError) -> Command.Response {
        var payload: [UInt8] = []
        RedisCommandEncoder.append(command.arguments, to: &payload)
        let replies = try await core.execute(payload, replies: 1, blockingMilliseconds: command.blockingMilliseconds ?? 0)
        return try Self.decode(replies[0], for: command)
    }

    /// Sends commands back to back in one round trip; each gets its own result.
    public func pipeline<Command: RedisCommand>(_ commands: [Command]) async throws(RedisError) -> [Result<Command.Response, RedisError>] {
        guard !commands.isEmpty else { return [] }
        var payload: [UInt8] = []
        for command in commands { RedisCommandEncoder.append(command.arguments, to: &payload) }
        let replies = try await core.execute(payload, replies: commands.count, blockingMilliseconds: 0)
        return zip(replies, commands).map { reply, command in
            Result { () throws(RedisError) in try Self.decode(reply, for: command) }
        }
    }

    /// Runs commands atomically in `MULTI`/`EXEC`, in one round trip: all run or none does.
    /// Throws when the transaction was refused (a command rejected while queuing, such as `OOM`),
    /// or when any command failed inside it.
    public func transaction<Command: RedisCommand>(_ commands: [Command]) async throws(RedisError) -> [Command.Response] {
        guard !commands.isEmpty else { return [] }
        var payload: [UInt8] = []
        RedisCommandEncoder.append([Array("MULTI".utf8)], to: &payload)
        for command in commands { RedisCommandEncoder.append(command.arguments, to: &payload) }
        RedisCommandEncoder.append([Array("EXEC".utf8)], to: &payload)
        let replies = try await core.execute(payload, replies: commands.count + 2, blockingMilliseconds: 0)
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
