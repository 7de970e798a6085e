import Logging
import NIOCore
import Synchronization

/// A Redis Cluster as one process sees it: which master serves each hash slot (`RedisClusterTopology`, from
/// `CLUSTER SLOTS`), and a `RedisNode` (a `RedisConnection` on each event loop of the client) for each master.
///
/// A command goes to the master of its key's slot. The cluster's answers are followed: `MOVED` (the slot lives
/// elsewhere now: remember it, resend there, and refresh the whole map soon), `ASK` (resend there once after
/// `ASKING`, during a slot migration), `TRYAGAIN`, `CLUSTERDOWN`, `LOADING` and `MASTERDOWN` (resend after a short
/// backoff): `RedisClusterRequestStateMachine` decides, this type sends. A command that could not be written because its node is unreachable is resent after the map is
/// refreshed (a failover promotes a replica). Every wait ends at the command's deadline: past it the caller gets
/// the last error. A command that was written and whose reply was lost is never resent: it may have run.
///
/// The map is loaded at start, refreshed after a redirect or an unreachable node (at most every 100 ms) and every
/// 5 s, from the known masters and then the seeds.
final class RedisCluster: RedisRouter {
    private struct State: Sendable {
        /// Index into `owners` of each slot's master; -1 while unknown.
        var slots = [Int16](repeating: -1, count: RedisHashSlot.count)
        var owners: [RedisAddress] = []
        var nodes: [RedisAddress: RedisNode] = [:]
        var refreshing: EventLoopFuture<Void>?
        var lastRefresh = NIODeadline.uptimeNanoseconds(0)
        var periodic: RepeatedTask?
        var refreshes = 0
        var closed = false
    }

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
        for node in nodes { node.shutdown() }
    }

    /// Whether every slot has a master and every master's connections are up.
    var isConnected: Bool {
        let (owners, covered) = state.withLock { state in (state.owners.compactMap { state.nodes[$0] }, !state.slots.contains(-1)) }
        return covered && owners.allSatisfy(\.isConnected)
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

    var routesBySlot: Bool { true }

    /// Sends `request` to the master of its slot, following the cluster's redirects, and answers its replies on
    /// `eventLoop`.
    func execute(_ request: RedisRequest, on eventLoop: any EventLoop) -> EventLoopFuture<[RedisReply]> {
        let promise = eventLoop.makePromise(of: [RedisReply].self)
        let machine = RedisClusterRequestStateMachine(transaction: request.transaction, deadline: request.deadline)
        perform(machine.start(), request, machine, promise: promise)
        return promise.futureResult
    }

    /// Sends `payload` to the node at `address`, with no redirect followed: for commands about that node itself.
    func execute(_ payload: [UInt8], replies: Int, at address: RedisAddress, deadline: NIODeadline, on eventLoop: any EventLoop) -> EventLoopFuture<
        [RedisReply]
    > {
        node(at: address).execute(RedisRequest(payload: payload, replies: replies, transaction: false, deadline: deadline), on: eventLoop)
    }

    /// Carries out `action` of `machine` for `request`, and what follows from its outcome, until the promise is
    /// settled. Each step hands the machine on by value: one request's steps never run at once.
    private func perform(
        _ action: RedisClusterRequestStateMachine.Action, _ request: RedisRequest, _ machine: RedisClusterRequestStateMachine,
        promise: EventLoopPromise<[RedisReply]>
    ) {
        let eventLoop = promise.futureResult.eventLoop
        switch action {
        case .answer(let replies):
            promise.succeed(replies)
        case .fail(let error):
            promise.fail(error)
        case .retry(let delay):
            eventLoop.scheduleTask(in: delay) { self.perform(.sendBySlot, request, machine, promise: promise) }
        case .refreshMap:
            refresh().hop(to: eventLoop).whenComplete { _ in
                var next = machine
                self.perform(next.mapRefreshed(now: .now(), slot: request.slot), request, next, promise: promise)
            }
        case .sendBySlot:
            guard let master = node(forSlot: request.slot) else { return perform(machine.noMaster(), request, machine, promise: promise) }
            send(request, to: master, asking: false, machine, promise: promise)
        case .send(let address, let asking):
            send(request, to: node(at: address), asking: asking, machine, promise: promise)
        }
    }

    /// Sends `request` to `node` (after `ASKING` when `asking`) and performs what `machine` makes of the outcome.
    private func send(
        _ request: RedisRequest, to node: RedisNode, asking: Bool, _ machine: RedisClusterRequestStateMachine, promise: EventLoopPromise<[RedisReply]>
    ) {
        var sent = request
        if asking {
            sent.payload = Self.asking + sent.payload
            sent.replies += 1
        }
        node.execute(sent, on: promise.futureResult.eventLoop).whenComplete { result in
            var next = machine
            switch result {
            case .success(var replies):
                if asking { replies.removeFirst() }
                let (action, moved) = next.replied(replies, now: .now())
                if let moved { self.learn(moved) }
                self.perform(action, request, next, promise: promise)
            case .failure(let error):
                // The node is unreachable, stalled or gone: a failover may be moving its slots.
                _ = self.refresh(soon: true)
                let action = next.failed(RedisError(error), now: .now())
                self.perform(action, request, next, promise: promise)
            }
        }
    }

    private static let asking: [UInt8] = {
        var payload: [UInt8] = []
        RedisCommandEncoder.append([Array("ASKING".utf8)], to: &payload)
        return payload
    }()

    // MARK: The map

    /// The node at `address`, made (and connected) when new.
    private func node(at address: RedisAddress) -> RedisNode {
        if let known = state.withLock({ $0.nodes[address] }) { return known }
        let made = RedisNode(configuration: configuration, address: address, loops: loops, name: "\(name)-\(address)", logger: logger)
        let (node, closed) = state.withLock { state in
            if let raced = state.nodes[address] { return (raced, false) }
            state.nodes[address] = made
            return (made, state.closed)
        }
        if node !== made || closed { made.shutdown() }
        return node
    }

    /// The master of `slot`, or any master for a command without a key; `nil` while unknown.
    private func node(forSlot slot: Int?) -> RedisNode? {
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
