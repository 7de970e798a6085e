import ArgumentParser
import Shared

/// `operyn-admin dlq`: entries that failed processing too often, with their reason.
struct DLQCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "The dead-letter stream: list, replay to the original stream, purge.",
        subcommands: [List.self, Replay.self, Purge.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Dead-lettered entries, oldest first, with reason, origin and attempts.")

        @OptionGroup var options: AdminOptions
        @Option(help: "At most this many entries.") var count = 100

        func run() async throws {
            try await options.withRedis { redis in
                let entries = try await redis.send(XRANGE(options.keys.deadLetterStream, count: max(1, count))).map(DeadLetter.init)
                options.output(
                    .array(entries.map(\.json)),
                    table: Table.render(
                        ["DLQ ID", "STREAM", "ORIGINAL ID", "ATTEMPTS", "AT", "REASON"],
                        entries.map { [$0.id, $0.stream, $0.originalID, $0.attempts, $0.at, $0.reason] },
                        empty: "(dead-letter stream is empty)"))
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put entries back on their original stream (all when no id is given) and remove them from the dead-letter stream.")

        @OptionGroup var options: AdminOptions
        @Argument(help: "Dead-letter entry ids; none means all.") var ids: [String] = []

        func run() async throws {
            try await options.withRedis { redis in
                let keys = options.keys
                var entries = try await redis.send(XRANGE(keys.deadLetterStream)).map(DeadLetter.init)
                if !ids.isEmpty {
                    let wanted = Set(ids)
                    entries = entries.filter { wanted.contains($0.id) }
                    let missing = wanted.subtracting(entries.map(\.id))
                    guard missing.isEmpty else { throw AdminFailure("not in the dead-letter stream: \(missing.sorted().joined(separator: ", "))") }
                }
                let streams = Set(keys.allStreams)
                var replayed: [JSONValue] = []
                for entry in entries {
                    guard streams.contains(entry.stream) else { throw AdminFailure("\(entry.id) names no stream of this prefix: '\(entry.stream)'") }
                    let newID: String
                    if keys.clustered {
                        // Two slots: appended first, then removed. Interrupted between the two, it is in both, and a
                        // second replay stores nothing twice (its events keep their ids).
                        newID = try await redis.send(XADD(entry.stream, fields: entry.originalFields))
                        _ = try await redis.send(XDEL(keys.deadLetterStream, ids: [entry.id]))
                    } else {
                        // One transaction per entry: it is on its stream again or still in the dead-letter stream, never both or neither.
                        var pipeline = RedisPipeline()
                        let added = pipeline.add(XADD(entry.stream, fields: entry.originalFields))
                        pipeline.add(XDEL(keys.deadLetterStream, ids: [entry.id]))
                        newID = try await redis.transaction(pipeline).value(added)
                    }
                    replayed.append(.object([("id", .string(entry.id)), ("stream", .string(entry.stream)), ("newId", .string(newID))]))
                }
                options.output(.object([("replayed", .array(replayed))]), table: "replayed \(replayed.count) entries")
            }
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete every dead-lettered entry.")

        @OptionGroup var options: AdminOptions
        @Flag(help: "Confirm: the entries are gone for good.") var yes = false

        func validate() throws {
            guard yes else { throw ValidationError("purge deletes every dead-lettered entry for good; pass --yes to confirm") }
        }

        func run() async throws {
            try await options.withRedis { redis in
                let length = try await redis.send(XLEN(options.keys.deadLetterStream))
                _ = try await redis.send(DEL([options.keys.deadLetterStream]))
                options.output(.object([("purged", .number(String(length)))]), table: "purged \(length) entries")
            }
        }
    }
}

/// A dead-letter entry: the worker's `dlq_*` fields followed by the original entry's fields.
struct DeadLetter {
    var id: String
    var fields: [(name: [UInt8], value: [UInt8])]

    init(_ entry: StreamEntry) {
        id = entry.id
        fields = (entry.fields ?? []).map { (Array($0.name), Array($0.value)) }
    }

    func value(_ name: String) -> String {
        fields.first { $0.name == Array(name.utf8) }.map { String(decoding: $0.value, as: UTF8.self) } ?? ""
    }

    var stream: String { value("dlq_stream") }
    var originalID: String { value("dlq_id") }
    var reason: String { value("dlq_reason") }
    var attempts: String { value("dlq_attempts") }
    var at: String { value("dlq_at") }
    /// The entry as it was on its stream.
    var originalFields: [(name: [UInt8], value: [UInt8])] { fields.filter { !$0.name.starts(with: Array("dlq_".utf8)) } }

    var json: JSONValue {
        .object([
            ("id", .string(id)), ("stream", .string(stream)), ("originalId", .string(originalID)), ("reason", .string(reason)),
            ("attempts", .number(attempts.isEmpty ? "0" : attempts)), ("at", .string(at)),
            ("fields", .object(originalFields.map { (String(decoding: $0.name, as: UTF8.self), .string(String(decoding: $0.value, as: UTF8.self))) })),
        ])
    }
}
