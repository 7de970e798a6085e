import Shared
import Testing

@testable import Gateway

@Suite("Gateway configuration")
struct GatewayConfigurationTests {
    @Test func defaults() throws {
        let configuration = try GatewayConfiguration(ConfigurationReader(environment: [:], arguments: []))
        #expect(configuration.host == "127.0.0.1" && configuration.port == 3001)
        #expect(configuration.apiKey == nil)
        #expect(configuration.redis.host == "127.0.0.1" && configuration.redis.port == 6379)
        #expect(configuration.keys.prefix == "operyn")
        #expect(configuration.limits == EventLimits())
    }

    @Test func everySettingIsReadFromEnvironmentAndOptions() throws {
        let reader = try ConfigurationReader(
            environment: ["OPERYN_API_KEY": "k", "OPERYN_PORT": "8080", "OPERYN_MAX_BATCH_EVENTS": "50"],
            arguments: ["--host", "0.0.0.0", "--redis-url", "redis://r:7000/2", "--key-prefix", "p"]
        )
        let configuration = try GatewayConfiguration(reader)
        #expect(configuration.apiKey == "k" && configuration.port == 8080 && configuration.host == "0.0.0.0")
        #expect(configuration.redis.port == 7000 && configuration.redis.database == 2 && configuration.keys.prefix == "p")
        #expect(configuration.limits.maxBatchEvents == 50)
    }

    @Test func emptyAPIKeyMeansOpenAndTyposAreRefused() throws {
        #expect(try GatewayConfiguration(ConfigurationReader(environment: ["OPERYN_API_KEY": ""], arguments: [])).apiKey == nil)
        let settings = ConfigurationReader.describe { reader throws(ConfigurationError) in _ = try GatewayConfiguration(reader) }
        #expect(throws: ConfigurationError.self) { try ConfigurationReader(environment: [:], arguments: ["--prot", "1"]).checkKnown(settings) }
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration(ConfigurationReader(environment: ["OPERYN_PORT": "70000"], arguments: [])) }
    }
}
