// operyn-sink-ceiling: the database's own load rate of the rows the worker stores, with nothing else in the way
// (no Redis, no quota, no acknowledgements): SampleEvents stored through the worker's SQLite sink, its prepared
// INSERT, one transaction per 1 000 rows, the same schema, indexes and pragmas. scripts/bench-worker.sh measures the
// worker's drain against it (and, for PostgreSQL, against COPY of the rows the worker stored).
// Usage: operyn-sink-ceiling sqlite:PATH COUNT → prints rows/s (the time spent making the events is not counted)
import BenchSupport
import Foundation
import Shared
import Sinks

let arguments = CommandLine.arguments
guard arguments.count == 3, arguments[1].hasPrefix("sqlite:"), let count = Int(arguments[2]), count > 0 else {
    print("usage: operyn-sink-ceiling sqlite:PATH COUNT")
    exit(2)
}
let sink = try SinkFactory.make(url: arguments[1])
try await sink.prepare()
let templates = try SampleEvents.templates()
var stored = 0
var nanoseconds: UInt64 = 0
while stored < count {
    let batch = SampleEvents.queued(templates, count: min(1_000, count - stored), offset: stored)
    let start = DispatchTime.now().uptimeNanoseconds
    stored += try await sink.store(batch)
    nanoseconds += DispatchTime.now().uptimeNanoseconds - start
}
await sink.close()
print(Int(Double(stored) / (Double(nanoseconds) / 1e9)))
