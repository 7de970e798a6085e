/// How many distinct services an organization may use: its own setting (`service_limit` in its settings hash, set by
/// `operyn-admin orgs set-limit`), else 5 for the `default` organization (the spec's), else the deployment's default
/// (`OPERYN_DEFAULT_SERVICE_LIMIT`, 100). The one statement of the rule: the worker's quota script, `GET /usage` and
/// `operyn-admin orgs` read it here.
public struct ServiceLimit: Sendable, Equatable {
    /// The field of the organization's settings hash (`RedisKeys.settings`) that overrides the default.
    public static let settingsField = "service_limit"
    /// The spec's limit for the `default` organization.
    public static let defaultOrganization = 5

    /// The deployment's default (`OPERYN_DEFAULT_SERVICE_LIMIT`), as the worker, the gateway and `operyn-admin` read it.
    public static func deploymentDefault(_ reader: ConfigurationReader) throws(ConfigurationError) -> Int {
        try reader.integer(
            "OPERYN_DEFAULT_SERVICE_LIMIT", default: 100, in: 0...1_000_000,
            about: "service quota of organizations other than `default` (which has \(defaultOrganization)) without an override")
    }

    /// The limit that applies.
    public var limit: Int
    /// Whether it is the organization's own setting.
    public var isOverride: Bool

    /// The limit of `org` when it has no setting of its own, with `deploymentDefault` for organizations other than
    /// `default`.
    public static func fallback(for org: String, deploymentDefault: Int) -> Int {
        org == OrganizationID.default ? defaultOrganization : deploymentDefault
    }

    /// `org`'s limit under its `settings`.
    public init(_ org: String, settings: OrganizationSettings, deploymentDefault: Int) {
        if let own = settings.serviceLimit {
            self.init(limit: own, isOverride: true)
        } else {
            self.init(limit: Self.fallback(for: org, deploymentDefault: deploymentDefault), isOverride: false)
        }
    }

    public init(limit: Int, isOverride: Bool) {
        self.limit = limit
        self.isOverride = isOverride
    }

    /// `org`'s limit, its settings read from Redis.
    public static func read(_ org: String, redis: RedisClient, keys: RedisKeys, deploymentDefault: Int) async throws(RedisError) -> ServiceLimit {
        ServiceLimit(org, settings: try await OrganizationSettings.read(org, redis: redis, keys: keys), deploymentDefault: deploymentDefault)
    }

    /// The command that gives `org` a limit of its own.
    public static func set(_ limit: Int, of org: String, keys: RedisKeys) -> HSET {
        HSET(keys.settings(org: org), fields: [(settingsField, String(limit))])
    }
}
