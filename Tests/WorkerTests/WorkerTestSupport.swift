import CSQLite
import Foundation
import Logging
import NIOCore
import Prometheus
import Shared
import TestSupport
import Testing

@testable import Sinks
@testable import Worker

/// A worker's parts on the test Redis and a fresh SQLite file, each test on its own key prefix.
struct WorkerHarness {
    let keys: RedisKeys
    let redis: RedisClient
    let reader: RedisClient
    let databasePath: String
    let sink: SQLiteSink

    /// `partitions`: streams per kind; on one server 1 (the layout before partitions, one stream per kind, which these
    /// tests read and write directly) unless a test asks for more.
    init(redisURL: String? = nil, busyTimeoutMilliseconds: Int32 = 5_000, partitions: Int? = nil, name: String = #function) throws {
        let url = try redisURL ?? TestRedis.url
        let clustered = url.hasPrefix("redis+cluster://")
        keys = RedisKeys(prefix: TestRedis.prefix(name), clustered: clustered, partitions: partitions ?? (clustered ? RedisKeys.defaultPartitions : 1))
        // Patient with a machine stalled by the parallel suites (the consumer's own timeouts are its settings').
        let configuration = try TestRedis.configuration(url: url)
        redis = RedisClient(configuration: configuration)
        reader = RedisClient(configuration: configuration)
        databasePath = FileManager.default.temporaryDirectory.appendingPathComponent("operyn-test-\(UUID().uuidString)/operyn.sqlite").path
        sink = SQLiteSink(path: databasePath, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
    }

    func consumer(
        name: String = "c1", claimIdle: Int = 30_000, maxAttempts: Int = 3, consumerExpiry: Int = 3_600_000, sink: (any EventSink)? = nil,
        lanes: OverflowLanes = OverflowLanes(), registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()
    ) -> StreamConsumer {
        var settings = ConsumerSettings(consumer: name)
        settings.consumerExpiryMilliseconds = consumerExpiry
        settings.blockMilliseconds = 100
        settings.claimIdleMilliseconds = claimIdle
        settings.maxAttempts = maxAttempts
        settings.batchSize = 500
        return StreamConsumer(
            commands: redis, reader: reader, sink: sink ?? self.sink, keys: keys, settings: settings,
            metrics: WorkerMetrics(factory: WorkerMetrics.factory(registry: registry)), lanes: lanes, logger: Logger(label: "test"))
    }

    /// XADDs events as a gateway does: one entry per event (`.single`, version 1, as gateways before chunks wrote), or
    /// chunks (version 2) of each run of events of one organization and kind, at most `perChunk` events per chunk (as
    /// requests of that many events would); returns them.
    /// With `overflow`, to the partitions' overflow streams, and counted in the flow as a gateway counts them.
    @discardableResult
    func publish(_ events: [QueuedEvent], as format: EntryFormat = .single, overflow: Bool = false) async throws -> [QueuedEvent] {
        var entries: [(stream: String, fields: [(name: [UInt8], value: [UInt8])])] = []
        func stream(of event: QueuedEvent) -> String { self.stream(of: event, overflow: overflow) }
        switch format {
        case .single:
            entries = events.map { (stream(of: $0), StreamEntryCodec.encode($0)) }
        case .chunks(let perChunk, let maxBytes):
            var run: [QueuedEvent] = []
            func flush() {
                guard let first = run.first else { return }
                for fields in StreamEntryCodec.encodeChunks(run, maxBytes: maxBytes) { entries.append((stream(of: first), fields)) }
                run = []
            }
            for event in events {
                if let first = run.first, first.org != event.org || first.event.kind != event.event.kind || run.count == perChunk { flush() }
                run.append(event)
            }
            flush()
        }
        for start in stride(from: 0, to: entries.count, by: 1_000) {
            let slice = entries[start..<min(start + 1_000, entries.count)]
            for result in try await redis.pipeline(slice.map { XADD($0.stream, fields: $0.fields) }) { _ = try result.get() }
        }
        for (org, count) in Dictionary(events.map { ($0.org, 1) }, uniquingKeysWith: +) {
            _ = try await redis.send(HINCRBY(keys.flow(partition: keys.partition(of: org)), field: "in:\(org)", by: count))
        }
        return events
    }

    /// The stream a gateway appends `event` to: its kind's, of its organization's partition, or with `overflow` that
    /// partition's overflow stream.
    func stream(of event: QueuedEvent, overflow: Bool = false) -> String {
        overflow
            ? keys.overflowStream(event.event.kind, partition: keys.partition(of: event.org))
            : keys.stream(event.event.kind, partition: keys.partition(of: event.org))
    }

    /// Runs `consumer` until `condition` holds or `seconds` pass; returns whether it held.
    func run(_ consumer: StreamConsumer, seconds: Double = 20, until condition: @escaping @Sendable () async throws -> Bool) async throws -> Bool {
        let task = Task { try await consumer.run() }
        defer { task.cancel() }
        let deadline = NIODeadline.now() + .milliseconds(Int64(Int(seconds * 1000)))
        while NIODeadline.now() < deadline {
            if try await condition() {
                task.cancel()
                _ = await task.result
                return true
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        task.cancel()
        _ = await task.result
        return false
    }

    /// Runs a consumer on `sink` that retries refused entries quickly (claim time 200 ms, 3 attempts) until `letters`
    /// dead letters are written and nothing is pending.
    func runRetryingUntilDeadLettered(_ letters: Int, sink: any EventSink) async throws -> Bool {
        try await run(consumer(claimIdle: 200, maxAttempts: 3, sink: sink)) {
            let written = try await redis.send(XLEN(keys.deadLetterStream))
            let pending = try await pending()
            return written == letters && pending == 0
        }
    }

    func count(_ table: String, where clause: String = "1=1") throws -> Int {
        Int((try query("SELECT COUNT(*) FROM \(table) WHERE \(clause)").first?.first ?? "0") ?? "0") ?? 0
    }

    /// Rows of a query, every column as text (NULL as nil).
    func query(_ sql: String) throws -> [[String?]] { try sqliteQuery(path: databasePath, sql) }

    /// Entries pending in the group over every stream; -1 while the group does not exist yet.
    func pending() async throws -> Int {
        var total = 0
        for stream in keys.allStreams {
            let summary = try? await redis.send(XPENDING(stream, group: keys.consumerGroup))
            guard let summary else { return -1 }
            total += summary.count
        }
        return total
    }

    func cleanUp() async {
        var names = keys.allStreams + [keys.deadLetterStream, keys.rejectedStream, keys.attempts, keys.overflowTenants, keys.overflowLease]
        names += (0..<keys.partitions).map { keys.flow(partition: $0) }
        names += ["default", "org_a", "org_b"].flatMap { [keys.services(org: $0), keys.counts(org: $0), keys.settings(org: $0)] }
        // One key a command: in a cluster they live on several masters.
        for name in names { _ = try? await redis.send(DEL([name])) }
        redis.shutdown()
        reader.shutdown()
        try? FileManager.default.removeItem(atPath: (databasePath as NSString).deletingLastPathComponent)
    }
}

/// How `WorkerHarness.publish` writes events to the streams.
enum EntryFormat: Sendable, CustomTestStringConvertible {
    /// One version-1 entry per event.
    case single
    /// Version-2 chunks of at most `perChunk` events and `maxBytes` of event lines.
    case chunks(perChunk: Int, maxBytes: Int = StreamEntryCodec.maxChunkBytes)

    /// Both, chunks of the size of a typical batch request.
    static let both: [EntryFormat] = [.single, .chunks(perChunk: 100)]

    var testDescription: String {
        switch self {
        case .single: "one entry per event"
        case .chunks(let perChunk, _): "chunks of \(perChunk)"
        }
    }
}
