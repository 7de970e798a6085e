/// The consumer group's backlog per stream: entries not yet delivered (lag) and delivered but not
/// acknowledged (pending). The gateway's backpressure and the worker's metrics read it.
public struct StreamBacklog: Sendable, Equatable {
    /// Entries not yet delivered to any consumer, per kind.
    public var lag: [EventKind: Int] = [:]
    /// Entries delivered and not yet acknowledged, per kind.
    public var pending: [EventKind: Int] = [:]

    /// Lag plus pending over every stream.
    public var total: Int { lag.values.reduce(0, +) + pending.values.reduce(0, +) }

    /// Reads `XINFO GROUPS` on every stream; a stream without the group counts its whole length as lag,
    /// and a group whose lag Redis cannot tell counts the stream length.
    public static func read(redis: RedisClient, keys: RedisKeys) async throws(RedisError) -> StreamBacklog {
        var backlog = StreamBacklog()
        for kind in EventKind.allCases {
            let stream = keys.stream(kind)
            let groups: [[String: RedisReply]]
            do {
                groups = try await redis.send(XINFOGROUPS(stream))
            } catch  where error.serverPrefix == "ERR" {
                backlog.lag[kind] = 0  // no such stream yet
                backlog.pending[kind] = 0
                continue
            }
            if let group = groups.first(where: { $0["name"]?.string == keys.consumerGroup }) {
                backlog.pending[kind] = Int(group["pending"]?.integer ?? 0)
                if let lag = group["lag"]?.integer {
                    backlog.lag[kind] = Int(lag)
                } else {
                    backlog.lag[kind] = try await redis.send(XLEN(stream))
                }
            } else {
                backlog.pending[kind] = 0
                backlog.lag[kind] = try await redis.send(XLEN(stream))
            }
        }
        return backlog
    }
}
