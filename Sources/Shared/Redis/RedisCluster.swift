import Logging
import NIOCore
import Synchronization

/// A Redis Cluster as one process sees it: which master serves each hash slot (`RedisClusterTopology`, from
/// `CLUSTER SLOTS`), and a `RedisConnection` to each master on each event loop of the client.
///
/// A command goes to the master of its key's slot. The cluster's answers are followed: `MOVED` (the slot lives
/// elsewhere now: remember it, resend there, and refresh the whole map soon), `ASK` (resend there once after
/// `ASKING`, during a slot migration), `TRYAGAIN`, `CLUSTERDOWN`, `LOADING` and `MASTERDOWN` (resend after a short
/// backoff). A command that could not be written because its node is unreachable is resent after the map is
/// refreshed (a failover promotes a replica). Every wait ends at the command's deadline: past it the caller gets
/// the last error. A command that was written and whose reply was lost is never resent: it may have run.
///
/// The map is loaded at start, refreshed after a redirect or an unreachable node (at most every 100 ms) and every
/// 5 s, from the known masters and then the seeds.
final class RedisCluster: Sendable {
    /// One master: a connection on each loop of the client.
    final class Node: Sendable {
        let address: RedisAddress
        let connections: [RedisConnection]
        private let byLoop: [ObjectIdentifier: RedisConnection]
        private let next = Atomic<Int>(0)

        init(address: RedisAddress, configuration: RedisConfiguration, loops: [any EventLoop], name: String, logger: Logger) {
            self.address = address
            connections = loops.enumerated().map { index, loop in
                RedisConnection(configuration: configuration.node(address), eventLoop: loop, name: "\(name)-\(address)-\(index)", logger: logger)
            }
            byLoop = Dictionary(connections.map { (ObjectIdentifier($0.eventLoop), $0) }, uniquingKeysWith: { first, _ in first })
            for connection in connections { connection.start() }
        }

        /// The connection living on `eventLoop`, or else each in turn.
        func connection(for eventLoop: (any EventLoop)?) -> RedisConnection {
            if let eventLoop, let own = byLoop[ObjectIdentifier(eventLoop)] { return own }
            return connections.count == 1 ? connections[0] : connections[next.wrappingAdd(1, ordering: .relaxed).oldValue % connections.count]
        }
    }

    /// What is sent: pre-encoded commands of one slot (or of none), plain or as one `MULTI`/`EXEC`.
    struct Request: Sendable {
        var payload: [UInt8]
        var replies: Int
        /// The slot of the commands' keys; `nil`: any node.
        var slot: Int?
        /// `payload` is `MULTI` … `EXEC`: a redirect shows in the replies of the queued commands.
        var transaction: Bool
        var deadline: NIODeadline
    }

    private struct State: Sendable {
        /// Index into `owners` of each slot's master; -1 while unknown.
        var slots = [Int16](repeating: -1, count: RedisHashSlot.count)
        var owners: [RedisAddress] = []
        var nodes: [RedisAddress: Node] = [:]
        var refreshing: EventLoopFuture<Void>?
        var lastRefresh = NIODeadline.uptimeNanoseconds(0)
        var periodic: RepeatedTask?
        var refreshes = 0
        var closed = false
    }

    /// Redirects followed for one command before its error reply is answered as it is.
    static let maxRedirects = 5
    /// How often the map is refreshed when nothing asks for it sooner.
    static let refreshInterval = TimeAmount.seconds(5)

    let configuration: RedisConfiguration
    private let loops: [any EventLoop]
    private let name: String
    private let logger: Logger
    private let state = Mutex(State())

    init(configuration: RedisConfiguration, loops: [any EventLoop], name: String, logger: Logger) {
        self.configuration = configuration
        self.loops = loops
        self.name = name
        self.logger = logger
        for seed in configuration.clusterSeeds { _ = node(at: seed) }
        _ = refresh()
        let periodic = loops[0].scheduleRepeatedTask(initialDelay: Self.refreshInterval, delay: Self.refreshInterval) { _ in _ = self.refresh() }
        state.withLock { $0.periodic = periodic }
    }

    /// Closes every connection; later commands fail with `shutdown`.
    func shutdown() {
        let nodes = state.withLock { state in
            state.closed = true
            state.periodic?.cancel()
            return Array(state.nodes.values)
        }
        for node in nodes { for connection in node.connections { connection.shutdown() } }
    }

    /// Whether every slot has a master and every master's connections are up.
    var isConnected: Bool {
        let (owners, covered) = state.withLock { state in (state.owners.compactMap { state.nodes[$0] }, !state.slots.contains(-1)) }
        return covered && owners.allSatisfy { $0.connections.allSatisfy(\.isConnected) }
    }

    /// The masters serving slots now, in slot order, with the slots of each.
    var masters: [(address: RedisAddress, slots: Int)] {
        state.withLock { state in
            var counts = [Int](repeating: 0, count: state.owners.count)
            for owner in state.slots where owner >= 0 { counts[Int(owner)] += 1 }
            return zip(state.owners, counts).map { ($0, $1) }
        }
    }

    /// The master serving `slot` now, if known.
    func master(ofSlot slot: Int) -> RedisAddress? {
        state.withLock { state in state.slots[slot] >= 0 ? state.owners[Int(state.slots[slot])] : nil }
    }

    /// Sends `request` to the master of its slot, following the cluster's redirects, and answers its replies on
    /// `eventLoop`.
    func execute(_ request: Request, on eventLoop: any EventLoop) -> EventLoopFuture<[RedisReply]> {
        let promise = eventLoop.makePromise(of: [RedisReply].self)
        attempt(request, at: nil, asking: false, tries: 0, promise: promise)
        return promise.futureResult
    }

    /// Sends `payload` to the node at `address`, with no redirect followed: for commands about that node itself.
    func execute(_ payload: [UInt8], replies: Int, at address: RedisAddress, deadline: NIODeadline, on eventLoop: any EventLoop) -> EventLoopFuture<
        [RedisReply]
    > {
        let connection = node(at: address).connection(for: eventLoop)
        let promise = connection.eventLoop.makePromise(of: [RedisReply].self)
        connection.enqueue(payload, replies: replies, deadline: deadline, promise: promise)
        return promise.futureResult.hop(to: eventLoop)
    }

    private func attempt(_ request: Request, at address: RedisAddress?, asking: Bool, tries: Int, promise: EventLoopPromise<[RedisReply]>) {
        let eventLoop = promise.futureResult.eventLoop
        guard let node = address.map({ node(at: $0) }) ?? node(forSlot: request.slot) else {
            // No map yet (or the slot has no master): wait for one, then try again.
            refresh().hop(to: eventLoop).whenComplete { _ in
                self.again(request, tries: tries, promise: promise) {
                    RedisError(code: .unavailable, message: "Redis Cluster has no master for slot \(request.slot ?? -1)")
                }
            }
            return
        }
        var payload = request.payload
        var replies = request.replies
        if asking {
            payload = Self.asking + payload
            replies += 1
        }
        let connection = node.connection(for: eventLoop)
        let sent = connection.eventLoop.makePromise(of: [RedisReply].self)
        connection.enqueue(payload, replies: replies, deadline: request.deadline, promise: sent)
        sent.futureResult.hop(to: eventLoop).whenComplete { result in
            switch result {
            case .success(var answers):
                if asking { answers.removeFirst() }
                switch Self.outcome(of: answers, transaction: request.transaction) {
                case .done:
                    promise.succeed(answers)
                case .redirect(let redirect):
                    guard tries < Self.maxRedirects else { return promise.succeed(answers) }
                    if !redirect.asking { self.learn(redirect) }
                    self.attempt(request, at: redirect.address, asking: redirect.asking, tries: tries + 1, promise: promise)
                case .retry:
                    self.again(request, tries: tries, promise: promise, orAnswer: answers) { nil }
                }
            case .failure(let error):
                // The node is unreachable, stalled or gone: a failover may be moving its slots.
                _ = self.refresh(soon: true)
                // Only a command never written is sent again; one that was may have run.
                guard (error as? RedisError)?.code == .connectionFailed else { return promise.fail(error) }
                self.again(request, tries: tries, promise: promise) { error as? RedisError }
            }
        }
    }

    /// Tries `request` again from the map after a backoff, or, when its deadline leaves no time, answers `replies`
    /// (an error reply the caller will see) or fails with `failure`.
    private func again(
        _ request: Request, tries: Int, promise: EventLoopPromise<[RedisReply]>, orAnswer replies: [RedisReply]? = nil,
        failure: @escaping @Sendable () -> RedisError?
    ) {
        let delay = TimeAmount.milliseconds(Int64(min(20 << min(tries, 4), 200)))
        guard NIODeadline.now() + delay < request.deadline, tries < 50 else {
            if let replies { return promise.succeed(replies) }
            return promise.fail(failure() ?? RedisError(code: .timeout, message: "Redis Cluster did not answer in time"))
        }
        promise.futureResult.eventLoop.scheduleTask(in: delay) {
            self.attempt(request, at: nil, asking: false, tries: tries + 1, promise: promise)
        }
    }

    private enum Outcome {
        case done
        case redirect(RedisRedirect)
        case retry
    }

    /// Whether the replies are final, or the cluster asks for the command elsewhere or later. In a transaction the
    /// redirect is in a queued command's reply (and `EXEC` aborted, so nothing ran).
    private static func outcome(of replies: [RedisReply], transaction: Bool) -> Outcome {
        let inspected = transaction ? replies.dropLast() : replies.prefix(1)
        for case .error(let error) in inspected {
            if let redirect = RedisRedirect(error) { return .redirect(redirect) }
            if ["TRYAGAIN", "CLUSTERDOWN", "LOADING", "MASTERDOWN"].contains(error.serverPrefix ?? "") { return .retry }
        }
        return .done
    }

    private static let asking: [UInt8] = {
        var payload: [UInt8] = []
        RedisCommandEncoder.append([Array("ASKING".utf8)], to: &payload)
        return payload
    }()

    // MARK: The map

    /// The node at `address`, made (and connected) when new.
    private func node(at address: RedisAddress) -> Node {
        if let known = state.withLock({ $0.nodes[address] }) { return known }
        let made = Node(address: address, configuration: configuration, loops: loops, name: name, logger: logger)
        let (node, closed) = state.withLock { state in
            if let raced = state.nodes[address] { return (raced, false) }
            state.nodes[address] = made
            return (made, state.closed)
        }
        if node !== made || closed { for connection in made.connections { connection.shutdown() } }
        return node
    }

    /// The master of `slot`, or any master for a command without a key; `nil` while unknown.
    private func node(forSlot slot: Int?) -> Node? {
        state.withLock { state in
            guard let slot else { return state.owners.first.flatMap { state.nodes[$0] } }
            let owner = state.slots[slot]
            return owner >= 0 ? state.nodes[state.owners[Int(owner)]] : nil
        }
    }

    /// A `MOVED`: the slot is served at the redirect's address from now on.
    private func learn(_ redirect: RedisRedirect) {
        _ = node(at: redirect.address)
        state.withLock { state in
            let owner =
                state.owners.firstIndex(of: redirect.address)
                ?? {
                    state.owners.append(redirect.address)
                    return state.owners.count - 1
                }()
            state.slots[redirect.slot] = Int16(owner)
        }
        _ = refresh(soon: true)
    }

    /// Reloads the map from the known masters, then the seeds; one refresh at a time. With `soon`, not more often
    /// than every 100 ms.
    @discardableResult
    func refresh(soon: Bool = false) -> EventLoopFuture<Void> {
        let eventLoop = loops[0]
        let started = state.withLock { state -> Result<(EventLoopPromise<Void>, [RedisAddress]), RedisError>? in
            if state.refreshing != nil { return nil }
            if state.closed { return .failure(RedisError(code: .shutdown, message: "Redis client is shut down")) }
            if soon && NIODeadline.now() - state.lastRefresh < .milliseconds(100) { return nil }
            let promise = eventLoop.makePromise(of: Void.self)
            state.refreshing = promise.futureResult
            state.lastRefresh = .now()
            // Each refresh starts from another master: one that is stalled delays every other refresh by at most one.
            var candidates = state.owners
            if !candidates.isEmpty {
                state.refreshes += 1
                let start = state.refreshes % candidates.count
                candidates = Array(candidates[start...] + candidates[..<start])
            }
            for seed in configuration.clusterSeeds where !candidates.contains(seed) { candidates.append(seed) }
            return .success((promise, candidates))
        }
        switch started {
        case .none:
            return state.withLock { $0.refreshing } ?? eventLoop.makeSucceededVoidFuture()
        case .failure(let error):
            return eventLoop.makeFailedFuture(error)
        case .success(let (promise, candidates)):
            promise.futureResult.whenComplete { _ in self.state.withLock { $0.refreshing = nil } }
            load(from: candidates[...], lastError: nil, promise: promise)
            return promise.futureResult
        }
    }

    private func load(from candidates: ArraySlice<RedisAddress>, lastError: RedisError?, promise: EventLoopPromise<Void>) {
        guard let address = candidates.first else {
            if let lastError {
                logger.warning("redis.cluster.refresh_failed", metadata: ["redis.client": "\(name)", "redis.error": "\(lastError.message)"])
            }
            return promise.fail(lastError ?? RedisError(code: .unavailable, message: "Redis Cluster: no node to ask"))
        }
        var payload: [UInt8] = []
        RedisCommandEncoder.append([Array("CLUSTER".utf8), Array("SLOTS".utf8)], to: &payload)
        // A node that does not answer within a second is passed over: the map is wanted now.
        let deadline = NIODeadline.now() + .milliseconds(Int64(min(configuration.connectTimeoutMilliseconds + configuration.commandTimeoutMilliseconds, 1_000)))
        execute(payload, replies: 1, at: address, deadline: deadline, on: promise.futureResult.eventLoop).whenComplete { result in
            do {
                let reply = try result.get()[0]
                try reply.throwingError()
                let topology = try RedisClusterTopology(slotsReply: reply, asked: address)
                guard topology.coversAllSlots else {
                    throw RedisError(code: .unavailable, message: "Redis Cluster node \(address) does not know a master for every slot")
                }
                self.apply(topology)
                promise.succeed(())
            } catch {
                self.load(
                    from: candidates.dropFirst(), lastError: (error as? RedisError) ?? RedisError(code: .unexpectedReply, message: "\(error)"),
                    promise: promise)
            }
        }
    }

    private func apply(_ topology: RedisClusterTopology) {
        for master in topology.masters { _ = node(at: master) }
        let changed = state.withLock { state -> Bool in
            var slots = [Int16](repeating: -1, count: RedisHashSlot.count)
            let owners = topology.masters
            for range in topology.ranges {
                let owner = Int16(owners.firstIndex(of: range.master)!)
                for slot in range.slots { slots[slot] = owner }
            }
            let changed = owners != state.owners || slots != state.slots
            state.owners = owners
            state.slots = slots
            return changed
        }
        if changed {
            logger.info(
                "redis.cluster.map", metadata: ["redis.client": "\(name)", "redis.masters": "\(topology.masters.map(\.description).joined(separator: ","))"])
        }
    }
}
