import ArgumentParser
import Shared

/// `operyn-admin keys`: organization API keys. Only their SHA-256 is kept; a key is printed once, when made.
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Organization API keys: create (printed once), list, rotate, revoke.",
        subcommands: [Create.self, List.self, Rotate.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a key for an organization and print it once.")

        @OptionGroup var options: AdminOptions
        @Argument(help: "The organization id.") var organization: String
        @Option(help: "Seconds until the key stops working (default: never, until revoked).") var expiresIn: Int?

        func run() async throws {
            let organization = try checkedOrganization(organization)
            try await options.withRedis { redis in
                let now = Timestamp.now.milliseconds
                let (key, record) = try await APIKeyStore(redis: redis, keys: options.keys).create(
                    organization: organization, now: now, expiresAt: expiresIn.map { now + Int64($0) * 1_000 })
                options.printNewKey(key, record, lines: ["organization: \(organization)", "expires: \(Table.time(record.expiresAt))"])
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "An organization's keys: ids, creation and expiry, never the key.")

        @OptionGroup var options: AdminOptions
        @Argument(help: "The organization id.") var organization: String

        func run() async throws {
            let organization = try checkedOrganization(organization)
            try await options.withRedis { redis in
                let records = try await APIKeyStore(redis: redis, keys: options.keys).list(organization: organization)
                let now = Timestamp.now.milliseconds
                options.output(
                    .array(records.map { .object($0.jsonMembers + [("active", .bool($0.isValid(at: now)))]) }),
                    table: Table.render(
                        ["KEY ID", "CREATED", "EXPIRES", "STATUS"],
                        records.map { [$0.id, Table.time($0.createdAt), Table.time($0.expiresAt), $0.isValid(at: now) ? "active" : "expired"] },
                        empty: "(no keys)"))
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a new key and let the old one work for an overlap, then expire; prints the new key once.")

        @OptionGroup var options: AdminOptions
        @Argument(help: "The organization id.") var organization: String
        @Argument(help: "The id of the key being replaced.") var keyID: String
        @Option(help: "Seconds the old key keeps working.") var overlap = 86_400

        func run() async throws {
            let organization = try checkedOrganization(organization)
            try await options.withRedis { redis in
                let store = APIKeyStore(redis: redis, keys: options.keys)
                let now = Timestamp.now.milliseconds
                let oldExpiry = now + Int64(max(0, overlap)) * 1_000
                guard try await store.expire(organization: organization, id: keyID, at: oldExpiry) else {
                    throw AdminFailure("organization \(organization) has no key \(keyID)")
                }
                let (key, record) = try await store.create(organization: organization, now: now)
                options.printNewKey(
                    key, record, lines: ["\(keyID) works until \(Table.time(oldExpiry))"],
                    json: [("replaces", .string(keyID)), ("replacedExpiresAt", .number(String(oldExpiry)))])
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a key now; gateways refuse it once their key cache lapses (OPERYN_API_KEY_CACHE_MS, default 5 s).")

        @OptionGroup var options: AdminOptions
        @Argument(help: "The organization id.") var organization: String
        @Argument(help: "The key id, as keys list shows it.") var keyID: String

        func run() async throws {
            let organization = try checkedOrganization(organization)
            try await options.withRedis { redis in
                guard try await APIKeyStore(redis: redis, keys: options.keys).revoke(organization: organization, id: keyID) else {
                    throw AdminFailure("organization \(organization) has no key \(keyID)")
                }
                options.output(.object([("id", .string(keyID)), ("org", .string(organization)), ("revoked", .bool(true))]), table: "revoked \(keyID)")
            }
        }
    }
}

extension AdminOptions {
    /// Prints a key just made, the only time it is shown, with its record and `lines` (or `json` members) about it.
    func printNewKey(_ key: String, _ record: APIKeyRecord, lines: [String], json: [(key: String, value: JSONValue)] = []) {
        output(
            .object([("key", .string(key))] + record.jsonMembers + json),
            table: (["key id: \(record.id)"] + lines).joined(separator: "\n") + "\n\n\(key)\n\n"
                + "Store this key now: it is not kept and cannot be shown again.")
    }
}

extension APIKeyRecord {
    /// The record's fields for `--json` output.
    var jsonMembers: [(key: String, value: JSONValue)] {
        [
            ("id", .string(id)), ("org", .string(organization)), ("createdAt", .string(Table.time(createdAt))),
            ("expiresAt", expiresAt.map { .string(Table.time($0)) } ?? .null),
        ]
    }
}
