import ArgumentParser
import Foundation
import Logging
import Shared

/// The options every subcommand takes: where Redis is, the key prefix, and the output format.
struct AdminOptions: ParsableArguments {
    @Option(help: AdminEnvironment.help("OPERYN_REDIS_URL"))
    var redisURL = AdminEnvironment.setting { reader throws(ConfigurationError) in
        _ = try RedisConfiguration(reader)  // checked as the gateway and worker check it
        return RedisConfiguration.url(reader)
    }

    @Option(help: AdminEnvironment.help("OPERYN_KEY_PREFIX"))
    var keyPrefix = AdminEnvironment.setting { reader throws(ConfigurationError) in try RedisKeys(reader, clustered: false).prefix }

    @Option(help: AdminEnvironment.help("OPERYN_STREAM_PARTITIONS"))
    var streamPartitions = AdminEnvironment.setting { reader throws(ConfigurationError) in try RedisKeys(reader, clustered: true).partitions }

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    /// The key names under `--key-prefix`.
    var keys: RedisKeys {
        RedisKeys(prefix: keyPrefix, clustered: (try? RedisConfiguration(url: redisURL))?.isCluster ?? false, partitions: streamPartitions)
    }

    /// Runs `body` with a client on `--redis-url`, shut down afterwards; Redis errors become a clear failure.
    func withRedis<T>(_ body: (RedisClient) async throws -> T) async throws -> T {
        // The URL from the command line; the password file and TLS settings from the environment, as the
        // gateway and worker read them.
        let configuration: RedisConfiguration
        do {
            let environment = try ConfigurationReader(environment: ProcessInfo.processInfo.environment, arguments: [])
            configuration = try RedisConfiguration(environment, url: redisURL)
        } catch {
            throw ValidationError("invalid --redis-url: \(error.message)")
        }
        // Output is for people and scripts: the client's own warnings go to standard error, nothing below warning.
        var logger = Logger(label: "operyn.admin") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .warning
        let redis = RedisClient(configuration: configuration, name: "admin", logger: logger)
        // The client runs as a service beside the command and stops when it is done.
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await redis.run() }
            defer { group.cancelAll() }
            do {
                return try await body(redis)
            } catch let error as RedisError {
                throw AdminFailure("Redis at \(configuration.redactedURL): \(error.message)")
            }
        }
    }

    /// Prints `value` as JSON, or `table` when `--json` was not given.
    func output(_ value: JSONValue, table: @autoclosure () -> String) {
        print(json ? value.jsonText : table())
    }
}

/// The admin's defaults from the environment, read and checked as the gateway and worker read them: a malformed
/// value is the same `configuration error: …` line and exit code 2, never a silent fallback.
enum AdminEnvironment {
    /// Every setting `operyn-admin` reads from the environment, described as the gateway and worker describe them.
    static let settings = ConfigurationReader.describe { reader throws(ConfigurationError) in
        _ = try RedisConfiguration(reader)
        _ = try RedisKeys(reader, clustered: true)
        _ = try ServiceLimit.deploymentDefault(reader)
    }

    /// An option's help from the description of the setting that gives its default.
    static func help(_ variable: String) -> ArgumentHelp {
        guard let setting = settings.first(where: { $0.name == variable }) else { preconditionFailure("\(variable) is not described") }
        // The option's default, read from the environment, is printed beside it by ArgumentParser.
        return ArgumentHelp("\(setting.plainMeaning) (env \(variable)).")
    }

    static func setting<T>(_ read: (ConfigurationReader) throws(ConfigurationError) -> T) -> T {
        do {
            return try read(try ConfigurationReader(environment: ProcessInfo.processInfo.environment, arguments: []))
        } catch {
            Startup.fail("configuration error: \(error.message)", exitCode: 2)
        }
    }
}

/// A failure reported on standard error with exit code 1.
struct AdminFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// An organization id given on the command line, checked like the gateway checks `x-organization-id`.
func checkedOrganization(_ organization: String) throws -> String {
    guard OrganizationID.isValid(organization) else {
        throw ValidationError("organization id must match ^[A-Za-z0-9_-]{1,64}$")
    }
    return organization
}
