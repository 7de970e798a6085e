import Shared
import Testing

@Suite("Configuration")
struct ConfigurationTests {
    @Test func redisURLs() throws {
        let plain = try RedisConfiguration(url: "redis://cache.local:6380")
        #expect(plain.host == "cache.local" && plain.port == 6380 && plain.database == 0 && plain.password == nil)
        let full = try RedisConfiguration(url: "redis://ingest:s%40cret@10.0.0.5:7000/3")
        #expect(full.username == "ingest" && full.password == "s@cret" && full.host == "10.0.0.5" && full.port == 7000 && full.database == 3)
        let passwordOnly = try RedisConfiguration(url: "redis://:hunter2@localhost")
        #expect(passwordOnly.username == nil && passwordOnly.password == "hunter2" && passwordOnly.port == 6379)
        let userOnly = try RedisConfiguration(url: "rediss://operyn-gateway@localhost")
        #expect(userOnly.username == "operyn-gateway" && userOnly.password == nil, "a user whose password comes from a file, as redis-py reads it")
        let ipv6 = try RedisConfiguration(url: "redis://[::1]:6390/1")
        #expect(ipv6.host == "::1" && ipv6.port == 6390 && ipv6.database == 1)
        #expect(full.redactedURL == "redis://ingest:***@10.0.0.5:7000/3")
        #expect(!full.description.contains("cret"))
    }

    @Test(arguments: ["http://localhost", "redis://host:0", "redis://host:99999", "redis://host/x", "redis://u:%zz@host"])
    func badRedisURLs(url: String) {
        #expect(throws: RedisError.self) { try RedisConfiguration(url: url) }
    }

    @Test func badURLErrorsNeverRepeatThePassword() {
        do {
            _ = try RedisConfiguration(url: "redis://u:topsecret@host:notaport")
            Issue.record("accepted")
        } catch {
            #expect(!error.message.contains("topsecret"))
        }
    }

    @Test func optionsWinOverEnvironment() throws {
        let reader = try ConfigurationReader(
            environment: ["OPERYN_REDIS_URL": "redis://env:1", "OPERYN_KEY_PREFIX": "fromenv"],
            arguments: ["--redis-url", "redis://option:2", "--redis-command-timeout-ms=500"]
        )
        let redis = try RedisConfiguration(reader)
        #expect(redis.host == "option" && redis.port == 2 && redis.commandTimeoutMilliseconds == 500)
        #expect(try RedisKeys(reader, clustered: false).prefix == "fromenv")
        #expect(ConfigurationReader.optionName("OPERYN_MAX_BATCH_EVENTS") == "max-batch-events")
    }

    @Test func helpNeedsNoValue() throws {
        #expect(try ConfigurationReader(environment: [:], arguments: ["--help"]).wantsHelp)
        #expect(try ConfigurationReader(environment: [:], arguments: ["--port", "1", "-h"]).wantsHelp)
        #expect(try !ConfigurationReader(environment: [:], arguments: []).wantsHelp)
        let settings = ConfigurationReader.describe { reader throws(ConfigurationError) in _ = try RedisConfiguration(reader) }
        let help = ConfigurationReader.help("tool: does things.", settings: settings)
        #expect(help.hasPrefix("tool: does things."))
        #expect(help.contains("--redis-url  (OPERYN_REDIS_URL; default: redis://127.0.0.1:6379)"), "\(help)")
        #expect(help.contains("--redis-command-timeout-ms  (OPERYN_REDIS_COMMAND_TIMEOUT_MS; default: 2000; 1-600000)"), "\(help)")
        #expect(help.contains("(Redis Cluster, TLS)") && !help.contains("operations.md#"), "links become their text: \(help)")
    }

    @Test func describingReadsTheDefaultsAndEachSettingOnce() {
        let settings = ConfigurationReader.describe { reader throws(ConfigurationError) in
            _ = try RedisConfiguration(reader)
            _ = try RedisConfiguration(reader)
        }
        #expect(settings.map(\.name).first == "OPERYN_REDIS_URL" && Set(settings.map(\.name)).count == settings.count)
        #expect(settings.contains { $0.name == "OPERYN_REDIS_TLS_CA_FILE" }, "settings read only for rediss:// are described too")
        #expect(settings.first { $0.name == "OPERYN_REDIS_TLS_INSECURE" }?.range == "true or false")
    }

    @Test func badSettingsNameTheVariable() throws {
        let reader = try ConfigurationReader(environment: ["OPERYN_MAX_BATCH_EVENTS": "lots", "OPERYN_KEY_PREFIX": "has space"], arguments: [])
        #expect(throws: ConfigurationError.self) { try EventLimits(reader) }
        do {
            _ = try EventLimits(reader)
        } catch {
            #expect(error.message.contains("OPERYN_MAX_BATCH_EVENTS"))
        }
        #expect(throws: ConfigurationError.self) { try RedisKeys(reader, clustered: false) }
        #expect(throws: ConfigurationError.self) { try ConfigurationReader(environment: [:], arguments: ["--port"]) }
        let typo = try ConfigurationReader(environment: [:], arguments: ["--redis-ulr", "x"])
        let settings = ConfigurationReader.describe { reader throws(ConfigurationError) in _ = try RedisConfiguration(reader) }
        #expect(throws: ConfigurationError.self) { try typo.checkKnown(settings) }
        try ConfigurationReader(environment: [:], arguments: ["--redis-url", "x"]).checkKnown(settings)
    }

    @Test func keysStartWithThePrefix() {
        let keys = RedisKeys(prefix: "t1")
        #expect(keys.stream(.logs).hasPrefix("t1:stream:{p0-") && RedisKeys(prefix: "t1", partitions: 1).stream(.logs) == "t1:stream:logs")
        #expect(keys.services(org: "default") == "t1:org:default:services")
        #expect(keys.consumerGroup == "t1-workers")
    }

    @Test func organizationIDs() {
        #expect(OrganizationID.isValid("org_123456789"))
        #expect(OrganizationID.isValid(String(repeating: "a", count: 64)))
        for bad in ["", String(repeating: "a", count: 65), "a:b", "*", "{}", "a\r\nb", "é", "a b"] {
            #expect(!OrganizationID.isValid(bad), "\(bad)")
        }
    }
}
