import Logging
import NIOCore
import Synchronization

/// What a client sends: pre-encoded commands expecting `replies` replies, of one hash slot (or of none), plain or as
/// one `MULTI`/`EXEC`, answered by `deadline`.
struct RedisRequest: Sendable {
    var payload: [UInt8]
    var replies: Int
    /// The slot of the commands' keys; `nil`: any node (and always on a single server, which needs none).
    var slot: Int?
    /// `payload` is `MULTI` … `EXEC`: in a cluster a redirect shows in the replies of the queued commands.
    var transaction: Bool
    var deadline: NIODeadline
}

/// Where a `RedisClient`'s requests go: one server (`RedisNode`) or a Redis Cluster (`RedisCluster`). The client
/// writes each command shape (send, `WAIT`, pipeline, transaction) once over this; a router only delivers requests.
/// Every connection is a `RedisConnection`, so TLS, the handshake and reconnection are set up in one place.
protocol RedisRouter: AnyObject, Sendable {
    /// Sends `request` and answers its replies on `eventLoop`: from that loop's own connection when there is one,
    /// with no thread hop.
    func execute(_ request: RedisRequest, on eventLoop: any EventLoop) -> EventLoopFuture<[RedisReply]>
    /// Whether requests are routed by their slot: a pipeline's commands then go each to its own slot's master,
    /// a transaction's must share one, and the client computes slots at all.
    var routesBySlot: Bool { get }
    /// Whether every connection is up right now.
    var isConnected: Bool { get }
    /// Closes every connection; later requests fail with `shutdown`.
    func shutdown()
}

/// One Redis server: a `RedisConnection` on each event loop of the client. The single-server router, and each master
/// of a cluster.
final class RedisNode: RedisRouter {
    let address: RedisAddress
    let connections: [RedisConnection]
    private let byLoop: [ObjectIdentifier: RedisConnection]
    private let next = Atomic<Int>(0)

    /// Connections to `configuration`'s server (or, in a cluster, to the node at `address`), one on each of
    /// `loops`, named `<name>-<index>`; each connects at once and whenever its link is lost.
    init(configuration: RedisConfiguration, address: RedisAddress? = nil, loops: [any EventLoop], name: String, logger: Logger) {
        let address = address ?? RedisAddress(host: configuration.host, port: configuration.port)
        let configuration = configuration.node(address)
        self.address = address
        connections = loops.enumerated().map { index, loop in
            RedisConnection(configuration: configuration, eventLoop: loop, name: "\(name)-\(index)", logger: logger)
        }
        byLoop = Dictionary(connections.map { (ObjectIdentifier($0.eventLoop), $0) }, uniquingKeysWith: { first, _ in first })
        for connection in connections { connection.start() }
    }

    /// The connection living on `eventLoop`, or else each in turn.
    func connection(for eventLoop: any EventLoop) -> RedisConnection {
        if let own = byLoop[ObjectIdentifier(eventLoop)] { return own }
        return connections.count == 1 ? connections[0] : connections[next.wrappingAdd(1, ordering: .relaxed).oldValue % connections.count]
    }

    func execute(_ request: RedisRequest, on eventLoop: any EventLoop) -> EventLoopFuture<[RedisReply]> {
        let connection = connection(for: eventLoop)
        let promise = connection.eventLoop.makePromise(of: [RedisReply].self)
        connection.enqueue(request.payload, replies: request.replies, deadline: request.deadline, promise: promise)
        return promise.futureResult.hop(to: eventLoop)
    }

    var routesBySlot: Bool { false }

    var isConnected: Bool { connections.allSatisfy(\.isConnected) }

    func shutdown() {
        for connection in connections { connection.shutdown() }
    }
}
