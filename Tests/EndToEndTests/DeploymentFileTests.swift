import Foundation
import TestSupport
import Testing
import Yams

/// No Docker engine runs here, so the deployment files are checked for their structure: the services, their
/// healthchecks and dependencies, and that every executable gets the environment it needs and only settings it reads.
@Suite("docker-compose.yml, Dockerfile and the load balancer configuration")
struct DeploymentFileTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func text(_ name: String) throws -> String { try String(contentsOf: Self.root.appendingPathComponent(name), encoding: .utf8) }

    func compose() throws -> [String: Any] {
        try #require(try Yams.load(yaml: text("docker-compose.yml")) as? [String: Any])
    }

    func service(_ name: String) throws -> [String: Any] {
        let services = try #require(try compose()["services"] as? [String: Any])
        return try #require(services[name] as? [String: Any], "service \(name)")
    }

    func environment(_ service: [String: Any]) throws -> [String: String] {
        let environment = try #require(service["environment"] as? [String: Any])
        return environment.mapValues { "\($0)" }
    }

    func dependencies(_ service: [String: Any]) -> [String: String] {
        let dependsOn = service["depends_on"] as? [String: Any] ?? [:]
        return dependsOn.mapValues { (($0 as? [String: Any])?["condition"] as? String) ?? "" }
    }

    /// The settings an executable reads, from its `--help`.
    func settings(of executable: String) throws -> Set<String> {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("help-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let pid = try ChildProcess.spawn([ChildProcess.binDirectory() + "/" + executable, "--help"], output: output)
        _ = ChildProcess.wait(pid)
        let help = try String(contentsOfFile: output, encoding: .utf8)
        let names = help.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "_") }).filter { $0.hasPrefix("OPERYN_") }
        return Set(names.map(String.init))
    }

    @Test func servicesHealthchecksAndDependencies() throws {
        let services = try #require(try compose()["services"] as? [String: Any])
        #expect(Set(services.keys).isSuperset(of: ["redis", "postgres", "gateway", "lb", "worker", "admin"]))
        for name in ["redis", "postgres", "gateway", "lb", "worker"] {
            let healthcheck = try #require(try service(name)["healthcheck"] as? [String: Any], "\(name) has a healthcheck")
            #expect((healthcheck["test"] as? [Any])?.isEmpty == false)
        }
        let redisArguments = try #require(try service("redis")["command"] as? [Any])
        let redisCommand = redisArguments.map { "\($0)" }
        #expect(redisCommand.joined(separator: " ").contains("--appendonly yes"), "Redis keeps an AOF")
        #expect(redisCommand.joined(separator: " ").contains("--maxmemory-policy noeviction"))

        #expect(dependencies(try service("gateway")) == ["redis": "service_healthy"])
        #expect(dependencies(try service("worker")) == ["redis": "service_healthy", "postgres": "service_healthy"])
        #expect(dependencies(try service("lb")) == ["gateway": "service_healthy"])

        // The load balancer owns port 3001; gateways and workers publish no host port, so they scale.
        #expect((try service("lb")["ports"] as? [Any])?.map { "\($0)" } == ["${OPERYN_PORT:-3001}:3001", "${OPERYN_GRPC_PORT:-4317}:4317"])
        for name in ["gateway", "worker"] {
            let scaled = try service(name)
            #expect(scaled["ports"] == nil && scaled["container_name"] == nil, "\(name) can be scaled with --scale")
            #expect(((scaled["deploy"] as? [String: Any])?["replicas"] as? String)?.contains(":-") == true, "\(name) replicas from the environment")
        }
        #expect(try text("deploy/nginx.conf").contains("server gateway:3001"))
        #expect(try text("deploy/nginx.conf").contains("server gateway:4317") && text("deploy/nginx.conf").contains("grpc_pass grpc://gateways_grpc;"))
        #expect(try text("deploy/nginx.conf").contains("proxy_set_header X-Forwarded-For $remote_addr;"))
    }

    @Test func everyExecutableGetsTheEnvironmentItNeeds() throws {
        let gateway = try environment(try service("gateway"))
        let redisURL = "${OPERYN_REDIS_URL:-redis://redis:6379}"  // the single Redis, unless pointed at the cluster profile's
        #expect(gateway["OPERYN_REDIS_URL"] == redisURL)
        #expect(gateway["OPERYN_REDIS_WAIT_REPLICAS"] == "${OPERYN_REDIS_WAIT_REPLICAS:-0}")
        #expect(gateway["OPERYN_HOST"] == "0.0.0.0" && gateway["OPERYN_PORT"] == "3001")
        #expect(gateway["OPERYN_API_KEY"] == "${OPERYN_API_KEY:-}")
        #expect(gateway["OPERYN_TRUST_FORWARDED_FOR"] == "true", "behind the load balancer, failures count per real client")

        let worker = try environment(try service("worker"))
        #expect(worker["OPERYN_REDIS_URL"] == redisURL)
        #expect(worker["OPERYN_DATABASE_URL"]?.hasPrefix("postgres://operyn:") == true)
        #expect(worker["OPERYN_DATABASE_URL"]?.hasSuffix("@postgres:5432/operyn") == true)
        #expect(worker["OPERYN_KEY_PREFIX"] == gateway["OPERYN_KEY_PREFIX"], "one key prefix for the whole service")

        let admin = try environment(try service("admin"))
        #expect(admin["OPERYN_REDIS_URL"] == redisURL && admin["OPERYN_KEY_PREFIX"] == gateway["OPERYN_KEY_PREFIX"])

        // Only settings each executable reads (a typo would pass silently in the environment).
        let gatewaySettings = try settings(of: "operyn-gateway")
        let workerSettings = try settings(of: "operyn-worker")
        #expect(gatewaySettings.contains("OPERYN_REDIS_URL") && workerSettings.contains("OPERYN_DATABASE_URL"))
        #expect(Set(gateway.keys).subtracting(gatewaySettings).isEmpty, "\(Set(gateway.keys).subtracting(gatewaySettings))")
        #expect(Set(worker.keys).subtracting(workerSettings).isEmpty, "\(Set(worker.keys).subtracting(workerSettings))")
        #expect(Set(admin.keys) == ["OPERYN_REDIS_URL", "OPERYN_KEY_PREFIX", "OPERYN_DEFAULT_SERVICE_LIMIT"])

        let postgres = try environment(try service("postgres"))
        #expect(postgres["POSTGRES_USER"] == "operyn" && postgres["POSTGRES_DB"] == "operyn")
    }

    /// The `cluster` profile: six cluster nodes with AOF and `noeviction`, joined once by `redis-cluster-init` when all
    /// are healthy; none of it starts without the profile.
    @Test func theClusterProfileHasSixNodesJoinedOnce() throws {
        for index in 1...6 {
            let node = try service("redis-node-\(index)")
            #expect(node["profiles"] as? [String] == ["cluster"])
            let command = (node["command"] as? [Any])?.map { "\($0)" } ?? []
            for (flag, value) in [("--cluster-enabled", "yes"), ("--appendonly", "yes"), ("--maxmemory-policy", "noeviction")] {
                #expect(command.firstIndex(of: flag).map { command[$0 + 1] } == value, "redis-node-\(index) \(flag)")
            }
            #expect((node["volumes"] as? [Any])?.map { "\($0)" } == ["redis-node-\(index)-data:/data"])
            #expect(node["healthcheck"] != nil)
        }
        let initializer = try service("redis-cluster-init")
        #expect(initializer["profiles"] as? [String] == ["cluster"])
        #expect(dependencies(initializer) == Dictionary(uniqueKeysWithValues: (1...6).map { ("redis-node-\($0)", "service_healthy") }))
        let script = (initializer["command"] as? [Any])?.map { "\($0)" }.joined() ?? ""
        #expect(script.contains("cluster_state:ok ||") && script.contains("--cluster create") && script.contains("--cluster-replicas 1"))
        for name in ["redis", "postgres", "gateway", "worker", "lb"] { #expect(try service(name)["profiles"] == nil, "\(name) runs by default") }
    }

    @Test func dockerfileIsMultiStageAndRunsAsNonRoot() throws {
        let dockerfile = try text("Dockerfile")
        let stages = dockerfile.split(separator: "\n").filter { $0.hasPrefix("FROM ") }
        #expect(stages.count == 2 && stages[0].contains("AS build"))
        #expect(dockerfile.contains("ARG SWIFT_IMAGE=swift:") && dockerfile.contains("ARG RUNTIME_IMAGE=debian:"))
        for product in ["operyn-gateway", "operyn-worker", "operyn-admin"] {
            #expect(dockerfile.contains("--product \(product)"))
        }
        #expect(dockerfile.contains("libhiredis0.14"))
        let user = try #require(dockerfile.split(separator: "\n").last { $0.hasPrefix("USER ") })
        #expect(user != "USER root" && user != "USER 0")
        #expect(try text(".dockerignore").contains(".build/"))
    }
}
