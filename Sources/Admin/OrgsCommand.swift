import ArgumentParser
import Foundation
import Shared

/// `operyn-admin orgs`: organizations, their service quota and their counts.
struct OrgsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "orgs",
        abstract: "Organizations: list them, show one, set its service limit, its rate limit and its retention.",
        subcommands: [List.self, Show.self, SetLimit.self, SetRate.self, SetRetention.self]
    )

    /// The limit the workers apply without an override, as the worker reads it.
    struct LimitOptions: ParsableArguments {
        @Option(help: AdminEnvironment.help("OPERYN_DEFAULT_SERVICE_LIMIT"))
        var defaultServiceLimit = AdminEnvironment.setting { reader throws(ConfigurationError) in try ServiceLimit.deploymentDefault(reader) }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every organization with data in Redis, with its services used out of its limit.")

        @OptionGroup var options: AdminOptions
        @OptionGroup var limits: LimitOptions

        func run() async throws {
            try await options.withRedis { redis in
                var summaries: [OrganizationSummary] = []
                for organization in try await OrganizationSummary.organizations(redis: redis, keys: options.keys) {
                    summaries.append(
                        try await OrganizationSummary.read(organization, redis: redis, keys: options.keys, defaultLimit: limits.defaultServiceLimit))
                }
                options.output(
                    .array(summaries.map(\.json)),
                    table: Table.render(
                        ["ORG", "SERVICES", "LIMIT", "STORED", "REJECTED", "KEYS"],
                        summaries.map {
                            [
                                $0.organization, String($0.services.count), $0.limitText, String($0.counters.stored), String($0.counters.rejected),
                                String($0.keyCount),
                            ]
                        },
                        empty: "(no organizations)"))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One organization: its services out of the limit, stored and rejected counts.")

        @OptionGroup var options: AdminOptions
        @OptionGroup var limits: LimitOptions
        @Argument(help: "The organization id.") var organization: String

        func run() async throws {
            let organization = try checkedOrganization(organization)
            try await options.withRedis { redis in
                let summary = try await OrganizationSummary.read(
                    organization, redis: redis, keys: options.keys, defaultLimit: limits.defaultServiceLimit, withUsage: true)
                options.output(summary.json, table: summary.table)
            }
        }
    }

    struct SetLimit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-limit", abstract: "Set an organization's service limit (an override kept in Redis, read by every worker).")

        @OptionGroup var options: AdminOptions
        @Argument(help: "The organization id.") var organization: String
        @Argument(help: "The number of distinct services it may use.") var limit: Int

        func validate() throws {
            guard limit >= 0 else { throw ValidationError("the limit must be 0 or more") }
        }

        func run() async throws {
            let organization = try checkedOrganization(organization)
            try await options.withRedis { redis in
                _ = try await redis.send(ServiceLimit.set(limit, of: organization, keys: options.keys))
                options.output(
                    .object([("org", .string(organization)), ("serviceLimit", .number(String(limit)))]),
                    table: "service limit of \(organization) set to \(limit)")
            }
        }
    }

    struct SetRetention: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-retention",
            abstract:
                "Set how many days an organization's events are kept, for every kind or one (an override of the workers' OPERYN_RETENTION_DAYS, kept in Redis).",
            discussion:
                "The workers apply it at their next retention run (OPERYN_RETENTION_INTERVAL_SECONDS). --clear removes the override (of --kind alone when given): the next one down applies again (the organization's for every kind, then the default)."
        )

        @OptionGroup var options: AdminOptions
        @Argument(help: "The organization id.") var organization: String
        @Option(help: "Only this kind: logs, metrics or deployments.") var kind: String?
        @Option(help: "Days events are kept after they were accepted (1 to \(RetentionPolicy.maximumDays)).") var days: Int?
        @Flag(help: "Remove the override.") var clear = false

        func validate() throws {
            if let kind, EventKind(rawValue: kind) == nil { throw ValidationError("--kind must be logs, metrics or deployments, got '\(kind)'") }
            guard clear != (days != nil) else { throw ValidationError("give either --days N or --clear") }
            if let days, !(1...RetentionPolicy.maximumDays).contains(days) {
                throw ValidationError("--days must be 1 to \(RetentionPolicy.maximumDays), got \(days)")
            }
        }

        func run() async throws {
            let organization = try checkedOrganization(organization)
            let kind = self.kind.flatMap(EventKind.init(rawValue:))
            try await options.withRedis { redis in
                try await OrganizationSettings.setRetention(days, of: organization, kind: kind, redis: redis, keys: options.keys)
                let storage = try await StorageSummary.read(redis: redis, keys: options.keys, organization: organization)
                let scope = kind.map { "\($0.rawValue) of \(organization)" } ?? organization
                options.output(
                    .object([("org", .string(organization)), ("retention", storage.policy.json(organization: organization))]),
                    table: (days.map { "retention of \(scope) set to \($0) days" } ?? "retention override of \(scope) removed") + "\n\n" + storage.table)
            }
        }
    }

    struct SetRate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-rate",
            abstract:
                "Set an organization's ingestion rate limit (an override of the gateways' OPERYN_RATE_* default, kept in Redis; every gateway applies it within OPERYN_RATE_LIMIT_CACHE_MS).",
            discussion: "A rate of 0 leaves that measure unlimited; a burst of 0 is one second's worth of the rate. --clear removes the override.")

        @OptionGroup var options: AdminOptions
        @Argument(help: "The organization id.") var organization: String
        @Option(help: "Events per second (0: unlimited).") var eventsPerSecond = 0
        @Option(help: "Events that may arrive at once after a quiet spell (0: one second's worth).") var eventsBurst = 0
        @Option(help: "Bytes of request bodies per second (0: unlimited).") var bytesPerSecond = 0
        @Option(help: "Bytes that may arrive at once (0: one second's worth).") var bytesBurst = 0
        @Flag(help: "Remove the override: the gateways' default applies again.") var clear = false

        func validate() throws {
            guard [eventsPerSecond, eventsBurst, bytesPerSecond, bytesBurst].allSatisfy({ $0 >= 0 }) else {
                throw ValidationError("rates and bursts must be 0 or more")
            }
            guard eventsBurst == 0 || eventsPerSecond > 0, bytesBurst == 0 || bytesPerSecond > 0 else {
                throw ValidationError("a burst needs its rate (--events-per-second, --bytes-per-second)")
            }
        }

        func run() async throws {
            let organization = try checkedOrganization(organization)
            try await options.withRedis { redis in
                if clear {
                    try await OrganizationSettings.setRateLimit(nil, of: organization, redis: redis, keys: options.keys)
                    options.output(
                        .object([("org", .string(organization)), ("rateLimit", .null)]), table: "rate limit of \(organization): the gateways' default")
                    return
                }
                let limit = RateLimit(eventsPerSecond: eventsPerSecond, eventsBurst: eventsBurst, bytesPerSecond: bytesPerSecond, bytesBurst: bytesBurst)
                try await OrganizationSettings.setRateLimit(limit, of: organization, redis: redis, keys: options.keys)
                options.output(
                    .object([("org", .string(organization)), ("rateLimit", limit.json)]), table: "rate limit of \(organization) set to \(limit)")
            }
        }
    }
}

extension RateLimit {
    /// As `operyn-admin` prints it.
    var json: JSONValue {
        .object([
            ("eventsPerSecond", .number(String(eventsPerSecond))), ("eventsBurst", .number(String(eventsBurst))),
            ("bytesPerSecond", .number(String(bytesPerSecond))), ("bytesBurst", .number(String(bytesBurst))),
        ])
    }
}

/// One organization as `orgs list` and `orgs show` report it.
struct OrganizationSummary {
    var organization: String
    var services: [String]
    var limit: Int
    var limitIsOverride: Bool
    /// Its events stored and not stored.
    var counters: OrganizationCounters
    var keyCount: Int
    /// Its rate-limit override, if it has one (the gateways' default applies otherwise).
    var rateLimit: RateLimit?
    /// What it sent and what became of it, today and the 30 days before (`orgs show` only).
    var usage: UsageReport?
    /// Its retention of each kind, with what the stores hold (`orgs show` only).
    var storage: StorageSummary?
    /// Whether its events overflow (`orgs show` only).
    var overflow: OverflowTenant?

    var limitText: String { limitIsOverride ? "\(limit) (set)" : String(limit) }

    /// Organizations found under `<prefix>:org:*` (services, settings, counts or keys).
    static func organizations(redis: RedisClient, keys: RedisKeys) async throws(RedisError) -> [String] {
        let start = "\(keys.prefix):org:"
        var found = Set<String>()
        for key in try await redis.keys(matching: start + "*") {
            let rest = key.dropFirst(start.count)
            guard let colon = rest.firstIndex(of: ":") else { continue }
            var organization = rest[..<colon]
            if keys.clustered && organization.hasPrefix("{") && organization.hasSuffix("}") { organization = organization.dropFirst().dropLast() }
            found.insert(String(organization))
        }
        return found.sorted()
    }

    static func read(
        _ organization: String, redis: RedisClient, keys: RedisKeys, defaultLimit: Int, withUsage: Bool = false
    ) async throws(RedisError) -> OrganizationSummary {
        let services = try await redis.send(SMEMBERS(keys.services(org: organization))).sorted()
        let settings = try await OrganizationSettings.read(organization, redis: redis, keys: keys)
        let serviceLimit = ServiceLimit(organization, settings: settings, deploymentDefault: defaultLimit)
        let counters = try await OrganizationCounters.read(organization, redis: redis, keys: keys)
        let keyCount = try await redis.send(HGETALL(keys.apiKeys(org: organization))).count
        return OrganizationSummary(
            organization: organization, services: services, limit: serviceLimit.limit, limitIsOverride: serviceLimit.isOverride, counters: counters,
            keyCount: keyCount, rateLimit: settings.rateLimit,
            usage: withUsage ? try await UsageReport.read(redis: redis, keys: keys, organization: organization, today: .now) : nil,
            storage: withUsage ? try await StorageSummary.read(redis: redis, keys: keys, organization: organization) : nil,
            overflow: withUsage ? try await redis.send(HGET(keys.overflowTenants, field: organization)).flatMap(OverflowTenant.init(value:)) : nil)
    }

    var json: JSONValue {
        var extra: [(key: String, value: JSONValue)] = usage.map { [("usage", $0.json)] } ?? []
        if let storage { extra += [("retention", storage.policy.json(organization: organization)), ("storage", storage.json)] }
        if usage != nil { extra.append(("overflow", overflow?.json ?? .null)) }
        return .object(
            [
                ("org", .string(organization)), ("services", .array(services.map { .string($0) })), ("serviceLimit", .number(String(limit))),
                ("limitOverride", .bool(limitIsOverride)), ("stored", .number(String(counters.stored))), ("rejected", .number(String(counters.rejected))),
                ("counts", .object(counters.counts.sorted { $0.key < $1.key }.map { ($0.key, .number(String($0.value))) })),
                ("keys", .number(String(keyCount))), ("rateLimit", rateLimit?.json ?? .null),
            ] + extra)
    }

    var table: String {
        var lines = [
            ["organization", organization],
            ["services", "\(services.count) of \(limitText): \(services.isEmpty ? "-" : services.joined(separator: ", "))"],
            ["stored", String(counters.stored)],
            ["rejected", String(counters.rejected)],
            ["api keys", String(keyCount)],
            ["rate limit", rateLimit.map { "\($0) (set)" } ?? "the gateways' default"],
        ]

        let countRows = counters.counts.sorted { $0.key < $1.key }.map { [$0.key, String($0.value)] }
        if let overflow {
            let since = Timestamp(milliseconds: overflow.since).iso8601
            let state = "since \(since) (\(overflow.reason.rawValue)): \(overflow.backlogEvents) events queued, \(overflow.eventsPerSecond) events/s"
            lines.append(["overflow", state])
        }
        var text = Table.render(["FIELD", "VALUE"], lines) + "\n\n" + Table.render(["COUNTER", "VALUE"], countRows)
        if let usage {
            let rows = usage.days.filter { day in Usage.measures.contains { day.total($0) > 0 } }.map { day in
                [day.date] + Usage.measures.map { String(day.total($0)) }
            }
            text +=
                "\n\nusage by the UTC day events were accepted (all kinds; --json has each kind):\n"
                + Table.render(["DAY", "ACCEPTED", "RATE-LIMITED", "QUOTA-REJECTED", "STORED", "DEAD-LETTERED"], rows, empty: "(nothing in 31 days)")
        }
        if let storage { text += "\n\n" + storage.table }
        return text
    }
}
