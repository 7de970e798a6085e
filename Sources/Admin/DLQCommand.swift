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
                        entries.map { [$0.id ?? "", $0.stream, $0.originalID, String($0.attempts), $0.at, $0.reason] },
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
                    entries = entries.filter { wanted.contains($0.id ?? "") }
                    let missing = wanted.subtracting(entries.compactMap(\.id))
                    guard missing.isEmpty else { throw AdminFailure("not in the dead-letter stream: \(missing.sorted().joined(separator: ", "))") }
                }
                let streams = Set(keys.allStreams)
                var replayed: [JSONValue] = []
                for entry in entries {
                    let id = entry.id ?? ""
                    guard streams.contains(entry.stream) else { throw AdminFailure("\(id) names no stream of this prefix: '\(entry.stream)'") }
                    let newID: String
                    if keys.clustered {
                        // Two slots: appended first, then removed. Interrupted between the two, it is in both, and a
                        // second replay stores nothing twice (its events keep their ids).
                        newID = try await redis.send(XADD(entry.stream, fields: entry.originalFields))
                        _ = try await redis.send(XDEL(keys.deadLetterStream, ids: [id]))
                    } else {
                        // One transaction per entry: it is on its stream again or still in the dead-letter stream, never both or neither.
                        var pipeline = RedisPipeline()
                        let added = pipeline.add(XADD(entry.stream, fields: entry.originalFields))
                        pipeline.add(XDEL(keys.deadLetterStream, ids: [id]))
                        newID = try await redis.transaction(pipeline).value(added)
                    }
                    replayed.append(.object([("id", .string(id)), ("stream", .string(entry.stream)), ("newId", .string(newID))]))
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
