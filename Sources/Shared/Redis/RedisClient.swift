import Crypto
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
/// Its requests go through a `RedisRouter`: one server (`RedisNode`) or, with a `redis+cluster://` configuration, a
/// Redis Cluster (`RedisCluster`), where each command goes to the master of its key's slot, a transaction's commands
/// must share a slot, and a pipeline's commands are sent each to its own master (still sharing round trips per
/// connection).
///
/// The client is a `Service`: run it in the executable's service group, which closes its connections once the
/// services that use it have stopped. A blocking command (`XREADGROUP … BLOCK`) holds up every command queued
/// behind it on its connection: give it a client of its own.
public final class RedisClient: Sendable, Service {
    /// Where requests go: one server, or the cluster.
    private let router: any RedisRouter
    private let nextLoop = Atomic<Int>(0)
    /// The cluster, for a `redis+cluster://` configuration.
    var cluster: RedisCluster? { router as? RedisCluster }
    /// The loops of the client: where `async` callers' commands are sent from.
    private let loops: [any EventLoop]

    /// The configuration the client connects with.
    public let configuration: RedisConfiguration

    /// A client with one connection on each loop of `group` (to each master, in a cluster); each connects at once
    /// and whenever its link is lost.
    public init(
        configuration: RedisConfiguration, group: any EventLoopGroup, name: String = "redis", logger: Logger = Logger(label: "operyn.redis")
    ) {
        loops = Array(group.makeIterator())
        if let tls = configuration.tls, !tls.verify {
            logger.warning(
                "redis.tls.insecure",
                metadata: ["redis.client": "\(name)", "reason": "OPERYN_REDIS_TLS_INSECURE is on: Redis certificates are not verified (development only)"])
        }
        self.configuration = configuration
        router =
            configuration.isCluster
            ? RedisCluster(configuration: configuration, loops: loops, name: name, logger: logger)
            : RedisNode(configuration: configuration, loops: loops, name: name, logger: logger)
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
    public func shutdown() { router.shutdown() }

    /// Whether every connection is up right now (for a cluster: every slot has a master, and its connections are up).
    public var isConnected: Bool { router.isConnected }

    /// In a cluster: the address of the master serving `key` now, as this client knows it; `nil` on a single server.
    public func node(of key: String) -> String? { cluster?.master(ofSlot: RedisHashSlot.of(key))?.description }

    /// In a cluster: each master serving slots now and how many; empty on a single server.
    public var clusterMasters: [(address: String, slots: Int)] { cluster?.masters.map { ($0.address.description, $0.slots) } ?? [] }

    /// Every key matching `pattern`, by `SCAN` (on every master of a cluster); a key may be listed twice while a
    /// slot moves.
    public func keys(matching pattern: String) async throws(RedisError) -> [String] {
        var found: [String] = []
        func scan(_ page: (String) async throws(RedisError) -> (cursor: String, keys: [String])) async throws(RedisError) {
            var cursor = "0"
            repeat {
                let result = try await page(cursor)
                found += result.keys
                cursor = result.cursor
            } while cursor != "0"
        }
        guard let cluster else {
            try await scan { cursor throws(RedisError) in try await send(SCAN(cursor: cursor, match: pattern)) }
            return found
        }
        try await refreshClusterMap()
        for master in cluster.masters {
            try await scan { cursor throws(RedisError) in
                let command = SCAN(cursor: cursor, match: pattern)
                var payload: [UInt8] = []
                command.encode(into: &payload)
                let deadline = NIODeadline.now() + .milliseconds(Int64(configuration.commandTimeoutMilliseconds))
                let replies = try await cluster.execute(payload, replies: 1, at: master.address, deadline: deadline, on: loops[0]).redisValue()
                return try Self.decode(replies[0], for: command)
            }
        }
        return found
    }

    /// In a cluster: loads the cluster's map now (it is also loaded at start and kept fresh).
    public func refreshClusterMap() async throws(RedisError) {
        try await cluster?.refresh().redisValue()
    }

    /// One of the client's loops, each in turn: where a caller not on a loop may send `on:` commands from.
    public var anyEventLoop: any EventLoop {
        loops.count == 1 ? loops[0] : loops[nextLoop.wrappingAdd(1, ordering: .relaxed).oldValue % loops.count]
    }

    /// Where pre-encoded commands go in a cluster: the slot of their key (`nil`: any master), plain or as a
    /// transaction.
    private struct Route {
        var key: [UInt8]?
        var transaction = false

        static let anyNode = Route(key: nil)
    }

    /// Sends pre-encoded commands through the router and answers their replies on `eventLoop`; from a loop's own
    /// connection, with no hop.
    private func execute(
        _ payload: [UInt8], replies: Int, blockingMilliseconds: Int, route: Route, on eventLoop: any EventLoop
    ) -> EventLoopFuture<[RedisReply]> {
        let deadline = NIODeadline.now() + .milliseconds(Int64(configuration.commandTimeoutMilliseconds + blockingMilliseconds))
        let slot = router.routesBySlot ? route.key.map { RedisHashSlot.of($0) } : nil
        return router.execute(
            RedisRequest(payload: payload, replies: replies, slot: slot, transaction: route.transaction, deadline: deadline), on: eventLoop)
    }

    /// `execute(_:replies:blockingMilliseconds:route:on:)` for a caller not on a loop: from the client's loops in turn.
    private func execute(_ payload: [UInt8], replies: Int, blockingMilliseconds: Int, route: Route) async throws(RedisError) -> [RedisReply] {
        try await execute(payload, replies: replies, blockingMilliseconds: blockingMilliseconds, route: route, on: anyEventLoop).redisValue()
    }

    /// The route of a transaction: the slot its commands share. In a cluster, commands of several slots cannot
    /// run atomically: that is a mistake of the caller's, refused before anything is sent.
    private func transactionRoute(_ keys: [[UInt8]?]) throws(RedisError) -> Route {
        let keyed = keys.compactMap { $0 }
        guard router.routesBySlot, let first = keyed.first else { return Route(key: keyed.first, transaction: true) }
        let slot = RedisHashSlot.of(first)
        guard keyed.allSatisfy({ RedisHashSlot.of($0) == slot }) else {
            throw RedisError(code: .crossSlot, message: "a transaction's keys must share one hash slot in a Redis Cluster")
        }
        return Route(key: first, transaction: true)
    }

    /// Sends one command from `eventLoop` and decodes its reply there; an error reply fails the future with a `RedisError`.
    public func send<Command: RedisCommand>(_ command: Command, on eventLoop: any EventLoop) -> EventLoopFuture<Command.Response> {
        sendOnce(command, waitingForReplicas: 0, timeoutMilliseconds: 0, on: eventLoop)
    }

    /// Runs a script's command from `eventLoop`; `NOSCRIPT` gets it once more with the source.
    public func send<Command: RedisScriptCommand>(_ command: Command, on eventLoop: any EventLoop) -> EventLoopFuture<Command.Response> {
        send(command, waitingForReplicas: 0, timeoutMilliseconds: 0, on: eventLoop)
    }

    /// Sends one command from `eventLoop` and then `WAIT replicas timeout` on the same connection: the command's
    /// response once `replicas` replicas have acknowledged it (and everything before it on that connection), or a
    /// retryable `unavailable` error when fewer did within `timeoutMilliseconds` (the command itself ran). With 0
    /// replicas, no `WAIT`.
    public func send<Command: RedisCommand>(
        _ command: Command, waitingForReplicas replicas: Int, timeoutMilliseconds: Int, on eventLoop: any EventLoop
    ) -> EventLoopFuture<Command.Response> {
        sendOnce(command, waitingForReplicas: replicas, timeoutMilliseconds: timeoutMilliseconds, on: eventLoop)
    }

    /// Runs a script's command from `eventLoop`, as `send(_:waitingForReplicas:timeoutMilliseconds:on:)` sends any
    /// command; a server that does not know the script yet (`NOSCRIPT`) gets it once more with the source.
    public func send<Command: RedisScriptCommand>(
        _ command: Command, waitingForReplicas replicas: Int, timeoutMilliseconds: Int, on eventLoop: any EventLoop
    ) -> EventLoopFuture<Command.Response> {
        sendOnce(command, waitingForReplicas: replicas, timeoutMilliseconds: timeoutMilliseconds, on: eventLoop).flatMapError { error in
            guard (error as? RedisError)?.isServerError("NOSCRIPT") == true else { return eventLoop.makeFailedFuture(error) }
            return self.sendOnce(command.carryingSource, waitingForReplicas: replicas, timeoutMilliseconds: timeoutMilliseconds, on: eventLoop)
        }
    }

    private func sendOnce<Command: RedisCommand>(
        _ command: Command, waitingForReplicas replicas: Int, timeoutMilliseconds: Int, on eventLoop: any EventLoop
    ) -> EventLoopFuture<Command.Response> {
        var payload: [UInt8] = []
        command.encode(into: &payload)
        Self.appendWait(replicas, timeoutMilliseconds, to: &payload)
        let blocking = replicas > 0 ? timeoutMilliseconds : command.blockingMilliseconds ?? 0
        return execute(payload, replies: replicas > 0 ? 2 : 1, blockingMilliseconds: blocking, route: route(of: command), on: eventLoop)
            .flatMapThrowing { replies in
                let response = try Self.decode(replies[0], for: command)
                if replicas > 0 { try Self.checkWait(replies[1], replicas: replicas) }
                return response
            }
    }

    /// Runs commands atomically in `MULTI`/`EXEC` from `eventLoop`, in one round trip; see `transaction(_:)`.
    public func transaction<Command: RedisCommand>(_ commands: [Command], on eventLoop: any EventLoop) -> EventLoopFuture<[Command.Response]> {
        transaction(commands, waitingForReplicas: 0, timeoutMilliseconds: 0, on: eventLoop)
    }

    /// Runs commands atomically in `MULTI`/`EXEC` from `eventLoop` and then `WAIT` on the same connection (with more than 0
    /// replicas); see `send(_:waitingForReplicas:timeoutMilliseconds:on:)`.
    public func transaction<Command: RedisCommand>(
        _ commands: [Command], waitingForReplicas replicas: Int, timeoutMilliseconds: Int, on eventLoop: any EventLoop
    ) -> EventLoopFuture<[Command.Response]> {
        guard !commands.isEmpty else { return eventLoop.makeSucceededFuture([]) }
        let route: Route
        do {
            route = try transactionRoute(commands.map(\.routingKey))
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        var payload = Self.transactionPayload(commands)
        Self.appendWait(replicas, timeoutMilliseconds, to: &payload)
        let replies = commands.count + 2
        return execute(
            payload, replies: replicas > 0 ? replies + 1 : replies, blockingMilliseconds: replicas > 0 ? timeoutMilliseconds : 0, route: route,
            on: eventLoop
        ).flatMapThrowing { all in
            let responses = try Self.decodeTransaction(Array(all.prefix(replies)), for: commands)
            if replicas > 0 { try Self.checkWait(all[replies], replicas: replicas) }
            return responses
        }
    }

    /// Appends `WAIT replicas timeout` when `replicas` is more than 0.
    private static func appendWait(_ replicas: Int, _ timeoutMilliseconds: Int, to payload: inout [UInt8]) {
        guard replicas > 0 else { return }
        RedisCommandEncoder.append([Array("WAIT".utf8), Array(String(replicas).utf8), Array(String(timeoutMilliseconds).utf8)], to: &payload)
    }

    private static func checkWait(_ reply: RedisReply, replicas: Int) throws(RedisError) {
        let acknowledged = try reply.throwingError().expectInteger("WAIT")
        guard acknowledged >= replicas else {
            throw RedisError(
                code: .unavailable, message: "Redis: \(acknowledged) of \(replicas) replicas acknowledged the write in time (OPERYN_REDIS_WAIT_REPLICAS)")
        }
    }

    private func route<Command: RedisCommand>(of command: Command) -> Route {
        router.routesBySlot ? Route(key: command.routingKey) : .anyNode
    }

    /// Sends one command and decodes its reply; an error reply is thrown as a `RedisError`.
    public func send<Command: RedisCommand>(_ command: Command) async throws(RedisError) -> Command.Response {
        try await sendOnce(command)
    }

    /// Runs a script's command; a server that does not know the script yet (`NOSCRIPT`) gets it once more with the
    /// source.
    public func send<Command: RedisScriptCommand>(_ command: Command) async throws(RedisError) -> Command.Response {
        do {
            return try await sendOnce(command)
        } catch  where error.isServerError("NOSCRIPT") {
            return try await sendOnce(command.carryingSource)
        }
    }

    private func sendOnce<Command: RedisCommand>(_ command: Command) async throws(RedisError) -> Command.Response {
        var payload: [UInt8] = []
        command.encode(into: &payload)
        let replies = try await execute(payload, replies: 1, blockingMilliseconds: command.blockingMilliseconds ?? 0, route: route(of: command))
        return try Self.decode(replies[0], for: command)
    }

    /// Sends commands back to back in one round trip; each gets its own result.
    public func pipeline<Command: RedisCommand>(_ commands: [Command]) async throws(RedisError) -> [Result<Command.Response, RedisError>] {
        var pipeline = RedisPipeline()
        let slots = commands.map { pipeline.add($0) }
        let results = try await self.pipeline(pipeline)
        return slots.map { results[$0] }
    }

    /// Runs commands atomically in `MULTI`/`EXEC`, in one round trip: all run or none does.
    /// Throws when the transaction was refused (a command rejected while queuing, such as `OOM`),
    /// or when any command failed inside it.
    public func transaction<Command: RedisCommand>(_ commands: [Command]) async throws(RedisError) -> [Command.Response] {
        guard !commands.isEmpty else { return [] }
        let route = try transactionRoute(commands.map(\.routingKey))
        let replies = try await execute(Self.transactionPayload(commands), replies: commands.count + 2, blockingMilliseconds: 0, route: route)
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

    /// Sends the commands of `pipeline`, of any types, back to back in one round trip; each gets its own result. In a
    /// cluster each command goes to the master of its slot, all at once (a connection still writes those of one tick
    /// together).
    public func pipeline(_ pipeline: RedisPipeline) async throws(RedisError) -> RedisPipeline.Results {
        guard !pipeline.isEmpty else { return RedisPipeline.Results(results: []) }
        guard router.routesBySlot else {
            let replies = try await execute(pipeline.payload, replies: pipeline.count, blockingMilliseconds: 0, route: .anyNode)
            return RedisPipeline.Results(
                results: replies.enumerated().map { index, reply in Result { () throws(RedisError) in try pipeline.decode(reply, at: index) } })
        }
        let eventLoop = anyEventLoop
        let sent = (0..<pipeline.count).map { index in
            let command = pipeline.command(at: index)
            return execute(Array(command.payload), replies: 1, blockingMilliseconds: 0, route: Route(key: command.key), on: eventLoop)
        }
        let replies = try? await EventLoopFuture.whenAllComplete(sent, on: eventLoop).get()
        return RedisPipeline.Results(
            results: (replies ?? []).enumerated().map { index, reply in
                Result { () throws(RedisError) in try pipeline.decode(try reply.mapError { RedisError($0) }.get()[0], at: index) }
            })
    }

    /// Runs the commands of `pipeline`, of any types, atomically in `MULTI`/`EXEC` in one round trip; throws as
    /// `transaction(_:)` does, so every result it answers is a success.
    public func transaction(_ pipeline: RedisPipeline) async throws(RedisError) -> RedisPipeline.Results {
        guard !pipeline.isEmpty else { return RedisPipeline.Results(results: []) }
        let payload = Self.transactionPayload { $0 += pipeline.payload }
        let route = try transactionRoute((0..<pipeline.count).map { pipeline.command(at: $0).key })
        let replies = try await execute(payload, replies: pipeline.count + 2, blockingMilliseconds: 0, route: route)
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

    static func decode<Command: RedisCommand>(_ reply: RedisReply, for command: Command) throws(RedisError) -> Command.Response {
        if case .error(let error) = reply {
            if let tolerated = command.response(forError: error) { return tolerated }
            throw error
        }
        return try command.response(from: reply)
    }
}
