import ArgumentParser
import Foundation
import Shared

/// `operyn-admin status`: the queue at a glance.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract:
            "Per stream: length, the group's lag and pending count in entries and (estimated) events, its consumers and their idle time; the organizations whose events overflow; dead-letter and rejected counts."
    )

    @OptionGroup var options: AdminOptions

    @Flag(help: "Refresh until interrupted.")
    var watch = false

    @Option(help: "Seconds between refreshes with --watch.")
    var interval = 2

    func run() async throws {
        try await options.withRedis { redis in
            repeat {
                let status = try await QueueStatus.read(redis: redis, keys: options.keys)
                if watch && !options.json { print("\u{1B}[2J\u{1B}[H", terminator: "") }
                options.output(status.json, table: status.table)
                if watch { try await Task.sleep(for: .seconds(max(1, interval))) }
            } while watch
        }
    }
}

/// What `status` reports, read from Redis with XLEN, XINFO GROUPS and XINFO CONSUMERS.
struct QueueStatus {
    struct Consumer {
        var name: String
        var pending: Int
        var idleMilliseconds: Int
    }

    struct Stream {
        var kind: EventKind
        /// The partition (of an overflow stream, the partition it is the overflow of).
        var partition: Int
        /// Whether it is a partition's overflow stream.
        var overflow = false
        var key: String
        /// In a cluster, the master serving it.
        var node: String?
        var length: Int
        var lag: Int?
        var pending: Int
        var consumers: [Consumer]
        /// The mean events per entry of the newest entries (`StreamBacklog.eventsPerEntry`).
        var eventsPerEntry: Double = 1

        /// Lag and pending in events, estimated from `eventsPerEntry`.
        var lagEvents: Int? { lag.map { StreamBacklog.events(inEntries: $0, perEntry: eventsPerEntry) } }
        var pendingEvents: Int { StreamBacklog.events(inEntries: pending, perEntry: eventsPerEntry) }
    }

    /// In a cluster: each master and its slots, with the streams it serves and their length.
    struct Node {
        var address: String
        var slots: Int
        var streams: Int
        var length: Int
    }

    var streams: [Stream]
    var nodes: [Node]
    /// Event streams of another layout that still hold entries: of another partition count (`OPERYN_STREAM_PARTITIONS`
    /// changed), which no worker of this configuration reads, or on one server the streams before partitions, which
    /// workers read until they are empty.
    var strays: [(key: String, length: Int)] = []
    /// The organizations whose new events go to their partition's overflow stream, by id.
    var overflowing: [(org: String, partition: Int, tenant: OverflowTenant)] = []
    var deadLetters: Int
    var rejected: Int
    /// What the stores hold and keep.
    var storage: StorageSummary

    static func read(redis: RedisClient, keys: RedisKeys) async throws -> QueueStatus {
        try await redis.refreshClusterMap()
        var streams: [Stream] = []
        for kind in EventKind.allCases {
            for index in keys.streamIndices {
                var stream = try await read(kind, partition: index, redis: redis, keys: keys)
                stream.overflow = keys.isOverflow(index)
                stream.partition = keys.basePartition(ofStream: index) ?? index
                streams.append(stream)
            }
        }
        let nodes = redis.clusterMasters.map { master in
            let served = streams.filter { $0.node == master.address }
            return Node(address: master.address, slots: master.slots, streams: served.count, length: served.reduce(0) { $0 + $1.length })
        }
        var strays: [(key: String, length: Int)] = []
        let known = Set(keys.allStreams + [keys.deadLetterStream, keys.rejectedStream])
        for key in try await redis.keys(matching: "\(keys.prefix):stream:*").sorted() where !known.contains(key) {
            // Only event streams: `<prefix>:stream:<kind>` or `<prefix>:stream:{<tag>}:<kind>`, and their overflow streams.
            guard EventKind.allCases.contains(where: { key.hasSuffix(":\($0.rawValue)") || key.hasSuffix(":\($0.rawValue):overflow") }) else { continue }
            let length = try await redis.send(XLEN(key))
            if length > 0 { strays.append((key, length)) }
        }
        let overflowing = try await OverflowTenant.read(redis: redis, keys: keys).sorted { $0.key < $1.key }.map {
            (org: $0.key, partition: keys.partition(of: $0.key), tenant: $0.value)
        }
        return QueueStatus(
            streams: streams, nodes: nodes, strays: strays, overflowing: overflowing, deadLetters: try await redis.send(XLEN(keys.deadLetterStream)),
            rejected: try await redis.send(XLEN(keys.rejectedStream)), storage: try await StorageSummary.read(redis: redis, keys: keys))
    }

    private static func read(_ kind: EventKind, partition: Int, redis: RedisClient, keys: RedisKeys) async throws(RedisError) -> Stream {
        let key = keys.stream(kind, partition: partition)
        let length = try await redis.send(XLEN(key))
        var stream = Stream(kind: kind, partition: partition, key: key, node: redis.node(of: key), length: length, lag: nil, pending: 0, consumers: [])
        let exists = try await redis.send(RawCommand("EXISTS", key)).integer == 1
        if exists {
            let groups = try await redis.send(XINFOGROUPS(key))
            if let group = groups.first(where: { $0["name"]?.string == keys.consumerGroup }) {
                stream.lag = group["lag"]?.integer.map(Int.init)
                stream.pending = group["pending"]?.integer.map(Int.init) ?? 0
                stream.eventsPerEntry = try await StreamBacklog.eventsPerEntry(redis: redis, stream: key)
                stream.consumers = try await redis.send(XINFOCONSUMERS(key, group: keys.consumerGroup)).map {
                    Consumer(
                        name: $0["name"]?.string ?? "?", pending: $0["pending"]?.integer.map(Int.init) ?? 0,
                        idleMilliseconds: $0["idle"]?.integer.map(Int.init) ?? 0)
                }
            }
        }
        return stream
    }

    var json: JSONValue {
        .object([
            (
                "streams",
                .array(
                    streams.map { stream in
                        .object([
                            ("kind", .string(stream.kind.rawValue)), ("partition", .number(String(stream.partition))),
                            ("overflow", .bool(stream.overflow)), ("stream", .string(stream.key)),
                            ("node", stream.node.map { .string($0) } ?? .null), ("length", .number(String(stream.length))),
                            ("lag", stream.lag.map { .number(String($0)) } ?? .null), ("pending", .number(String(stream.pending))),
                            ("lagEvents", stream.lagEvents.map { .number(String($0)) } ?? .null),
                            ("pendingEvents", .number(String(stream.pendingEvents))),
                            ("eventsPerEntry", .number(String(format: "%.1f", stream.eventsPerEntry))),
                            (
                                "consumers",
                                .array(
                                    stream.consumers.map {
                                        .object([
                                            ("name", .string($0.name)), ("pending", .number(String($0.pending))),
                                            ("idleMs", .number(String($0.idleMilliseconds))),
                                        ])
                                    })
                            ),
                        ])
                    })
            ),
            (
                "nodes",
                .array(
                    nodes.map {
                        .object([
                            ("address", .string($0.address)), ("slots", .number(String($0.slots))), ("streams", .number(String($0.streams))),
                            ("length", .number(String($0.length))),
                        ])
                    })
            ),
            (
                "overflowing",
                .array(
                    overflowing.map {
                        guard case .object(let fields) = $0.tenant.json else { return .null }
                        return .object([("org", .string($0.org)), ("partition", .number(String($0.partition)))] + fields)
                    })
            ),
            ("otherStreams", .array(strays.map { .object([("stream", .string($0.key)), ("length", .number(String($0.length)))]) })),
            ("deadLetters", .number(String(deadLetters))), ("rejected", .number(String(rejected))), ("storage", storage.json),
        ])
    }

    var table: String {
        // Overflow streams only when they hold something: most of the time they are empty.
        let shown = streams.filter { !$0.overflow || $0.length > 0 || $0.pending > 0 }
        let streamRows = shown.map {
            [
                $0.key, $0.node ?? "-", String($0.length), $0.lag.map(String.init) ?? "-", String($0.pending), $0.lagEvents.map { "≈\($0)" } ?? "-",
                "≈\($0.pendingEvents)",
                String(format: "%.1f", $0.eventsPerEntry), String($0.consumers.count),
            ]
        }
        let consumerRows = shown.flatMap { stream in
            stream.consumers.map { [stream.key, $0.name, String($0.pending), String(format: "%.1fs", Double($0.idleMilliseconds) / 1_000)] }
        }
        return [
            Table.render(["STREAM", "NODE", "LENGTH", "LAG", "PENDING", "LAG EVENTS", "PENDING EVENTS", "EVENTS/ENTRY", "CONSUMERS"], streamRows),
            "",
            Table.render(["STREAM", "CONSUMER", "PENDING", "IDLE"], consumerRows, empty: "(no consumers)"),
            "",
            "organizations whose events overflow (queued apart, so that the rest of their partition passes them):",
            Table.render(
                ["ORG", "PARTITION", "REASON", "SINCE", "BACKLOG EVENTS", "EVENTS/S"],
                overflowing.map {
                    [
                        $0.org, String($0.partition), $0.tenant.reason.rawValue, Timestamp(milliseconds: $0.tenant.since).iso8601,
                        String($0.tenant.backlogEvents), String($0.tenant.eventsPerSecond),
                    ]
                }, empty: "(none)"),
            "",
            "dead letters: \(deadLetters)    rejected (capped stream): \(rejected)",
            "",
            storage.table,
        ]
        .joined(separator: "\n") + nodeTable
    }

    /// In a cluster, the masters: where the streams' work lands; then streams of another layout that hold entries.
    private var nodeTable: String {
        var text = ""
        if !nodes.isEmpty {
            let rows = nodes.map { [$0.address, String($0.slots), String($0.streams), String($0.length)] }
            text = "\n\n" + Table.render(["MASTER", "SLOTS", "STREAMS", "LENGTH"], rows)
        }
        if !strays.isEmpty {
            text +=
                "\n\nwarning: streams of another layout hold entries (another OPERYN_STREAM_PARTITIONS, or on one server the"
                + " streams before partitions, which workers read until they are empty; docs/operations.md#changing-the-partition-count):\n"
                + Table.render(["STREAM", "LENGTH"], strays.map { [$0.key, String($0.length)] })
        }
        return text
    }
}
