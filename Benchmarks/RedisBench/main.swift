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
//                                                gateways before chunks wrote); packed (format 3) where
//                                                OPERYN_QUEUE_COMPRESS_BYTES says, as a gateway would
//   operyn-redis-bench pack URL                  what packing chunks (format 3, zstd) costs and saves by events per
//                                                chunk: bytes, Redis memory per event, compress and decode time
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
    let packAbove = ProcessInfo.processInfo.environment["OPERYN_QUEUE_COMPRESS_BYTES"].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil }
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
                    commands += StreamEntryCodec.chunks(slice).map { XADD(stream(slice[0]), fields: $0.fields(packAbove: packAbove)) }
                }
            }
        }
        for result in try await redis.pipeline(commands) { _ = try result.get() }
        sent += events.count
    }
    print(sent)
case "pack" where arguments.count == 3:
    let redis = try RedisClient(url: arguments[2], name: "pack")
    // The spec's log event, as batch requests send it (each with its own id and a message that varies a little).
    let body =
        #"{"service":"api-gateway","level":"error","message":"Upstream timeout connecting to auth-service","traceId":"abc-123-def","metadata":{"region":"us-east-1","env":"prod","team":"platform"}}"#
    let event = try EventValidator().event(.logs, body: Array(body.utf8))
    let total = 20_000
    print("events/chunk  lines B/event  packed B/event  ratio  Redis B/event plain  packed  ratio  pack µs/event  decode µs/event (plain, packed)")
    for perEntry in [1, 2, 5, 10, 20, 30, 50, 100, 200] {
        let queued = (0..<total).map { _ in QueuedEvent(id: EventID.make(), org: "default", receivedAt: .now, event: event) }
        var chunks: [StreamChunk] = []
        for start in stride(from: 0, to: total, by: perEntry) { chunks += StreamEntryCodec.chunks(Array(queued[start..<min(start + perEntry, total)])) }
        let lines = chunks.reduce(0) { $0 + $1.lines.count }
        let clock = NIODeadline.now()
        let packed = chunks.map { $0.fields(packAbove: 0) }
        let packSeconds = Double((NIODeadline.now() - clock).nanoseconds) / 1e9
        let plain = chunks.map { $0.fields() }
        let packedBytes = packed.reduce(0) { $0 + $1[5].value.count }
        func decodeSeconds(_ entries: [[(name: [UInt8], value: [UInt8])]]) throws -> Double {
            let slices = entries.map { $0.map { (ArraySlice($0.name), ArraySlice($0.value)) } }
            let start = NIODeadline.now()
            for entry in slices { _ = try StreamEntryCodec.decodeEvents(entry) }
            return Double((NIODeadline.now() - start).nanoseconds) / 1e9
        }
        let (plainDecode, packedDecode) = (try decodeSeconds(plain), try decodeSeconds(packed))
        // Redis's memory for the same events queued both ways (MEMORY USAGE of the whole stream).
        var memory: [Int] = []
        for (name, entries) in [("plain", plain), ("packed", packed)] {
            let stream = "bench:pack:\(perEntry):\(name)"
            _ = try await redis.send(DEL([stream]))
            for start in stride(from: 0, to: entries.count, by: 500) {
                for result in try await redis.pipeline(entries[start..<min(start + 500, entries.count)].map { XADD(stream, fields: $0) }) {
                    _ = try result.get()
                }
            }
            let usage = try await redis.send(RawCommand("MEMORY", "USAGE", stream, "SAMPLES", "0")).integer ?? 0
            memory.append(Int(usage))
            _ = try await redis.send(DEL([stream]))
        }
        func format(_ value: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", value) }
        print(
            [
                String(perEntry), format(Double(lines) / Double(total)), format(Double(packedBytes) / Double(total)),
                format(Double(packedBytes) / Double(lines), 2), format(Double(memory[0]) / Double(total)), format(Double(memory[1]) / Double(total)),
                format(Double(memory[1]) / Double(memory[0]), 2), format(packSeconds * 1e6 / Double(total), 3),
                format(plainDecode * 1e6 / Double(total), 2) + ", " + format(packedDecode * 1e6 / Double(total), 2),
            ].joined(separator: "  "))
    }
default:
    print("usage: operyn-redis-bench fields | xadd URL TASKS COUNT | preload URL PREFIX COUNT [PER_ENTRY] | pack URL")
    exit(2)
}
