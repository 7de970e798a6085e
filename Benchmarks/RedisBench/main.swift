import BenchSupport
import Foundation
// operyn-redis-bench: pipelined XADD throughput of the project's Redis client from many concurrent tasks.
//
//   operyn-redis-bench fields                    prints the benchmark entry's fields, one per line
//   operyn-redis-bench xadd URL TASKS COUNT      XADDs COUNT entries from TASKS tasks, prints entries/s
//   operyn-redis-bench preload URL PREFIX COUNT [PER_ENTRY]
//                                                queues COUNT mixed events (logs, metrics, deployments) as the gateway
//                                                would: chunks of PER_ENTRY events of one kind (default 100, a batch
//                                                request's), or with PER_ENTRY 1 one format-1 entry per event (as
//                                                gateways before chunks wrote)
//
// scripts/bench-redis.sh runs it beside `redis-benchmark -P 64` on the same Redis and prints the ratio.
import NIOCore
import Shared

#if canImport(Glibc)
    import Glibc
#endif

/// The spec's example log event, encoded as the gateway writes it.
func benchmarkFields() throws -> [(name: [UInt8], value: [UInt8])] {
    let body =
        #"{"service":"api-gateway","level":"error","message":"Upstream timeout connecting to auth-service","traceId":"abc-123-def","metadata":{"region":"us-east-1","env":"prod","team":"platform"}}"#
    let event = try EventValidator().event(.logs, body: Array(body.utf8))
    let queued = QueuedEvent(id: "f47ac10b-58cc-4372-a567-0e02b2c3d479", org: "default", receivedAt: .now, event: event)
    return StreamEntryCodec.encode(queued)
}

let arguments = CommandLine.arguments
switch arguments.dropFirst().first {
case "fields":
    for field in try benchmarkFields() {
        print(String(decoding: field.name, as: UTF8.self))
        print(String(decoding: field.value, as: UTF8.self))
    }
case "xadd" where arguments.count == 5:
    guard let tasks = Int(arguments[3]), let count = Int(arguments[4]), tasks > 0, count >= tasks else {
        fatalError("usage: operyn-redis-bench xadd URL TASKS COUNT")
    }
    let redis = try RedisClient(url: arguments[2], name: "bench")
    let stream = "bench:client:stream"
    let fields = try benchmarkFields()
    _ = try await redis.send(DEL([stream]))
    _ = try await redis.send(XADD(stream, fields: fields))
    let start = NIODeadline.now()
    try await withThrowingTaskGroup(of: Void.self) { group in
        for task in 0..<tasks {
            let share = count / tasks + (task < count % tasks ? 1 : 0)
            group.addTask {
                for _ in 0..<share { _ = try await redis.send(XADD(stream, fields: fields)) }
            }
        }
        try await group.waitForAll()
    }
    let seconds = Double(NIODeadline.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    let length = try await redis.send(XLEN(stream))
    precondition(length == count + 1, "stream holds \(length) entries, expected \(count + 1)")
    _ = try await redis.send(DEL([stream]))
    print(Int(Double(count) / seconds))
case "preload" where arguments.count == 5 || arguments.count == 6:
    guard let count = Int(arguments[4]), let perEntry = arguments.count == 6 ? Int(arguments[5]) : 100, perEntry > 0 else {
        fatalError("usage: operyn-redis-bench preload URL PREFIX COUNT [PER_ENTRY]")
    }
    let redis = try RedisClient(url: arguments[2], name: "preload")
    // The layout of the workers that will read them: OPERYN_STREAM_PARTITIONS (1: the layout before partitions, which
    // an older worker reads); each event in its organization's partition.
    let partitions = ProcessInfo.processInfo.environment["OPERYN_STREAM_PARTITIONS"].flatMap { Int($0) } ?? RedisKeys.defaultPartitions
    let keys = RedisKeys(prefix: arguments[3], partitions: partitions)
    func stream(_ event: QueuedEvent) -> String { keys.stream(event.event.kind, partition: keys.partition(of: event.org)) }
    let templates = try SampleEvents.templates()
    var sent = 0
    while sent < count {
        let events = SampleEvents.queued(templates, count: min(max(5_000, perEntry * 3), count - sent), offset: sent)
        var commands: [XADD] = []
        if perEntry == 1 {
            commands = events.map { XADD(stream($0), fields: StreamEntryCodec.encode($0)) }
        } else {
            // Chunks of one organization and kind, as a gateway makes them.
            var runs: [String: [QueuedEvent]] = [:]
            for event in events { runs["\(event.org)/\(event.event.kind.rawValue)", default: []].append(event) }
            for run in runs.values.sorted(by: { $0[0].id < $1[0].id }) {
                for start in stride(from: 0, to: run.count, by: perEntry) {
                    let slice = Array(run[start..<min(start + perEntry, run.count)])
                    commands += StreamEntryCodec.encodeChunks(slice).map { XADD(stream(slice[0]), fields: $0) }
                }
            }
        }
        for result in try await redis.pipeline(commands) { _ = try result.get() }
        sent += events.count
    }
    print(sent)
default:
    print("usage: operyn-redis-bench fields | xadd URL TASKS COUNT | preload URL PREFIX COUNT [PER_ENTRY]")
    exit(2)
}
