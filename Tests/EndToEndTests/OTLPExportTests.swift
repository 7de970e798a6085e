import Foundation
import Shared
import TestSupport
import Testing

/// A real OpenTelemetry client: the Python SDK's OTLP exporters (HTTP in protobuf and JSON, and gRPC;
/// `Tests/otel/export.py`) send logs and metrics to a running gateway; a worker stores them in SQLite, and every mapped field is read back.
///
/// The test command installs the SDK (`Tests/otel/requirements.txt`) into a virtualenv and names its Python in
/// `OPERYN_TEST_OTEL_PYTHON`.
@Suite("End to end: the OpenTelemetry Python SDK exports to the gateway", .serialized)
struct OTLPExportTests {
    static var root: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// A Python client of `Tests/otel` running against the gateway, its output in the cluster's directory.
    struct PythonClient {
        let pid: pid_t
        let script: String
        let output: String

        /// Starts `script` with `arguments` under the SDK's Python (the test command installs it and names it in
        /// `OPERYN_TEST_OTEL_PYTHON`).
        init(_ script: String, _ arguments: [String], in cluster: Cluster, name: String) throws {
            let python = try #require(
                ProcessInfo.processInfo.environment["OPERYN_TEST_OTEL_PYTHON"], "OPERYN_TEST_OTEL_PYTHON names the SDK's Python (the test command sets it)")
            self.script = script
            output = "\(cluster.directory)/\(name).out"
            pid = try ChildProcess.spawn(
                [python, OTLPExportTests.root.appendingPathComponent("Tests/otel/\(script)").path] + arguments, output: output, errors: output + ".err")
        }

        /// Waits for it to end and reads the JSON object it printed; a failure shows what it printed.
        func report() async throws -> JSONValue {
            let status = await ChildProcess.exited(pid)
            let printed = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            let errors = (try? String(contentsOfFile: output + ".err", encoding: .utf8)) ?? ""
            try #require(status == 0, "\(script) exited \(status): \(printed) \(errors.suffix(2_000))")
            return try JSONParser.parse(Array(printed.utf8))
        }
    }

    @Test(arguments: ["protobuf", "json", "grpc"]) func logsAndMetricsArriveWithEveryField(encoding: String) async throws {
        let cluster = try Cluster()
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let grpcPort = try RedisServer.freePort()
        let port = try await cluster.startGateway(encoding == "grpc" ? ["OPERYN_GRPC_PORT": "\(grpcPort)"] : [:])
        try cluster.startWorker("w1")
        let service = "otel-\(encoding)"
        let url = "http://127.0.0.1:\(encoding == "grpc" ? grpcPort : port)"

        let report = try await PythonClient("export.py", [url, encoding, Cluster.serverKey, "acme", service], in: cluster, name: "export-\(encoding)").report()
        #expect(report["results"] == ["logs": ["SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS"], "metrics": ["SUCCESS"]], "\(report)")

        let logs = try await cluster.rows(
            count: 5, "SELECT org_id, level, message, timestamp, trace_id, span_id, metadata FROM logs WHERE service = '\(service)' ORDER BY timestamp"
        )
        // The four records with fixed times, in time order, then the standard library's one (now).
        #expect(logs.map { $0[0] } == Array(repeating: "acme", count: 5))
        #expect(logs.map { $0[1] } == ["warn", "debug", "fatal", "warn", "error"])
        #expect(
            logs.map { $0[2] } == [
                "disk almost full", #"{"order":{"id":42,"items":["a","b"]}}"#, #"[1,"two",3.5]"#, "no number, a text", "payment declined for order 42",
            ])
        #expect(
            logs.prefix(4).map { $0[3] } == ["2025-11-24T16:00:00.123Z", "2025-11-24T16:00:01.000Z", "2025-11-24T16:00:02.000Z", "2025-11-24T16:00:03.000Z"])
        #expect(logs[0][4] == report["traceId"]?.text && logs[0][5] == report["spanId"]?.text, "the span's ids, in hex")
        #expect(logs[0][4]?.count == 32 && logs[0][5]?.count == 16)
        #expect(logs.dropFirst().allSatisfy { $0[4] == nil && $0[5] == nil }, "no span: no ids")

        let first = try JSONParser.parse(Array(try #require(logs[0][6]).utf8))
        #expect(first["attributes"] == ["disk": "/dev/sda1", "pct": .number("91.5"), "retries": 3, "ok": true, "tags": ["a", "b"]])
        #expect(first["resource"]?["service.name"] == nil && first["resource"]?["deployment.environment"] == "test", "service.name is the service")
        #expect(first["resource"]?["telemetry.sdk.language"] == "python")
        #expect(first["scope"] == ["name": "checkout.orders", "version": "1.2.3"])
        #expect(first["severityText"] == "WARN" && first["eventName"] == "disk.usage")
        let standard = try JSONParser.parse(Array(try #require(logs[4][6]).utf8))
        #expect(standard["scope"] == ["name": "checkout.std"] && standard["severityText"] == "ERROR")
        #expect(standard["attributes"]?["code.function.name"] == "<module>")

        let metrics = try await cluster.rows(
            count: 7, "SELECT org_id, name, value, unit, labels, timestamp FROM metrics WHERE service = '\(service)' ORDER BY name")
        let seen = metrics.map { "\($0[1]!) \($0[2]!) \($0[3]!) \($0[4] ?? "-")" }
        #expect(
            seen == [
                #"latency_count 2.0 1 {"route":"/buy"}"#, #"latency_max 30.0 ms {"route":"/buy"}"#, #"latency_min 12.5 ms {"route":"/buy"}"#,
                #"latency_sum 42.5 ms {"route":"/buy"}"#, #"orders_total 5.0 1 {"route":"/buy"}"#, "queue_depth 5.0  -",
                #"temperature 21.5 Cel {"room":"a","floor":"3"}"#,
            ], "\(seen)")
        #expect(metrics.allSatisfy { $0[0] == "acme" })
        let now = Timestamp.now.milliseconds
        #expect(metrics.allSatisfy { abs((Timestamp(iso8601: $0[5] ?? "")?.milliseconds ?? 0) - now) < 120_000 }, "collected now")
        passed = true
    }

    /// The SDK's gRPC exporters retry `RESOURCE_EXHAUSTED` when it carries `RetryInfo`: with a rate limit of 1 event a
    /// second and a burst of 7, the five single-record log exports pass and the metrics export (7 points) is refused
    /// until the budget refills, then retried by the SDK after the delay the gateway gave, and stored once.
    @Test func aRateLimitedGRPCExportIsRetriedByTheSDKAndStoredOnce() async throws {
        let cluster = try Cluster()
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let grpcPort = try RedisServer.freePort()
        let port = try await cluster.startGateway([
            "OPERYN_GRPC_PORT": "\(grpcPort)", "OPERYN_RATE_EVENTS_PER_SECOND": "1", "OPERYN_RATE_EVENTS_BURST": "7",
        ])
        try cluster.startWorker("w1")
        let report = try await PythonClient(
            "export.py", ["http://127.0.0.1:\(grpcPort)", "grpc", Cluster.serverKey, "acme", "otel-limited"], in: cluster, name: "export-limited"
        ).report()
        #expect(report["results"] == ["logs": ["SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS"], "metrics": ["SUCCESS"]], "\(report)")
        _ = try await cluster.rows(count: 5, "SELECT id FROM logs WHERE service = 'otel-limited'")
        _ = try await cluster.rows(count: 7, "SELECT id FROM metrics WHERE service = 'otel-limited'")
        try await Task.sleep(for: .seconds(1))
        #expect(try await cluster.rows(count: 7, "SELECT id FROM metrics WHERE service = 'otel-limited'").count == 7, "stored once")
        let metrics = try cluster.get(port: port, "/metrics", headers: [:]).body
        #expect(
            metrics.contains(#"operyn_grpc_requests_total{method="opentelemetry.proto.collector.metrics.v1.MetricsService/Export",code="RESOURCE_EXHAUSTED"}"#),
            "the export was refused before it passed")
        passed = true
    }

    /// OpenTelemetry exporters retry without keys. Through a Redis stall, appends time out at the gateway (503,
    /// `UNAVAILABLE`) and run when Redis resumes, and the SDK sends the same export again: with the retry window each
    /// record is stored once; with it off (the last case, which shows the test can fail) some are stored twice. The
    /// ledger is the SDK's own result per export.
    @Test(arguments: [("protobuf", 300), ("grpc", 300), ("grpc", 0)])
    func exportsThroughARedisStallAreStoredOnce(encoding: String, window: Int) async throws {
        let server = try await RedisServer()
        let cluster = try await Cluster(store: .sqlite, redisURL: server.url)
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let grpcPort = try RedisServer.freePort()
        let port = try await cluster.startGateway([
            "OPERYN_REDIS_COMMAND_TIMEOUT_MS": "500", "OPERYN_GRPC_PORT": "\(grpcPort)", "OPERYN_OTLP_RETRY_WINDOW_SECONDS": "\(window)",
        ])
        try cluster.startWorker("w1")
        let service = "ledger-\(encoding)-\(window)"
        let url = "http://127.0.0.1:\(encoding == "grpc" ? grpcPort : port)"
        let ledger = try PythonClient("ledger.py", [url, encoding, Cluster.serverKey, "acme", service, "2000"], in: cluster, name: service)
        try await Task.sleep(for: .milliseconds(1_000))
        server.signal(SIGSTOP)
        try await Task.sleep(for: .milliseconds(2_000))
        server.signal(SIGCONT)
        let report = try await ledger.report()
        let succeeded = Set((report["succeeded"]?.elements ?? []).compactMap { $0.text.flatMap { Int($0) } })
        let failed = Set((report["failed"]?.elements ?? []).compactMap { $0.text.flatMap { Int($0) } })
        #expect(succeeded.count + failed.count == 2_000, "every export ended")

        // The drain: every acknowledged record, then a little longer for any second copy.
        var stored: [String: Int] = [:]
        for _ in 0..<300 {
            let rows = try await cluster.query("SELECT message, count(*) FROM logs WHERE service = '\(service)' GROUP BY message")
            stored = Dictionary(uniqueKeysWithValues: rows.compactMap { row in row[0].flatMap { message in row[1].flatMap { Int($0) }.map { (message, $0) } } })
            if succeeded.allSatisfy({ stored["ledger-\($0)"] != nil }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        try await Task.sleep(for: .seconds(2))
        let rows = try await cluster.query("SELECT message, count(*) FROM logs WHERE service = '\(service)' GROUP BY message")
        stored = Dictionary(uniqueKeysWithValues: rows.compactMap { row in row[0].flatMap { message in row[1].flatMap { Int($0) }.map { (message, $0) } } })
        let lost = succeeded.filter { stored["ledger-\($0)"] == nil }
        let twice = stored.filter { $0.value > 1 }.count
        print(
            "[OTLP retries, \(encoding), window \(window)] succeeded \(succeeded.count), failed \(failed.count), stored \(stored.count), twice \(twice), lost \(lost.count)"
        )
        #expect(lost.isEmpty, "acknowledged and not stored: \(lost.sorted().prefix(10))")
        if window > 0 {
            #expect(twice == 0, "stored twice: \(stored.filter { $0.value > 1 }.keys.sorted().prefix(10))")
        } else {
            #expect(twice > 0, "without the window, retries of exports that were queued store them twice")
        }
        passed = true
    }
}
