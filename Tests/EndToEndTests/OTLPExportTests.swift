import Foundation
import Shared
import TestSupport
import Testing

/// A real OpenTelemetry client: the Python SDK's OTLP/HTTP exporters (protobuf and JSON, `Tests/otel/export.py`) send
/// logs and metrics to a running gateway; a worker stores them in SQLite, and every mapped field is read back.
///
/// The test command installs the SDK (`Tests/otel/requirements.txt`) into a virtualenv and names its Python in
/// `OPERYN_TEST_OTEL_PYTHON`.
@Suite("End to end: the OpenTelemetry Python SDK exports to the gateway", .serialized)
struct OTLPExportTests {
    static var root: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    @Test(arguments: ["protobuf", "json"]) func logsAndMetricsArriveWithEveryField(encoding: String) async throws {
        let python = try #require(
            ProcessInfo.processInfo.environment["OPERYN_TEST_OTEL_PYTHON"], "OPERYN_TEST_OTEL_PYTHON names the SDK's Python (the test command sets it)")
        let cluster = try Cluster()
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let port = try await cluster.startGateway()
        try cluster.startWorker("w1")
        let service = "otel-\(encoding)"

        let output = "\(cluster.directory)/export-\(encoding).out"
        let pid = try ChildProcess.spawn(
            [python, Self.root.appendingPathComponent("Tests/otel/export.py").path, "http://127.0.0.1:\(port)", encoding, Cluster.serverKey, "acme", service],
            output: output, errors: output + ".err")
        let status = ChildProcess.wait(pid)
        let printed = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        let errors = (try? String(contentsOfFile: output + ".err", encoding: .utf8)) ?? ""
        try #require(status == 0, "export.py exited \(status): \(printed) \(errors.suffix(2_000))")
        let report = try JSONParser.parse(Array(printed.utf8))
        #expect(report["results"] == ["logs": ["SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS"], "metrics": ["SUCCESS"]], "\(printed)")

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
}
