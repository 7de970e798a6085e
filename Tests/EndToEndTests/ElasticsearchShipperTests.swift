import Foundation
import Shared
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Real shippers send to the gateway's Elasticsearch bulk API, each started with the configuration committed in
/// `Tests/shippers/` (the one the API page shows) and fed syslog lines over TCP; a worker stores them in SQLite and
/// every mapped field is read back, with the organization the credentials named:
/// - rsyslog with `omelasticsearch` (Debian's `rsyslog-elasticsearch`);
/// - syslog-ng with `elasticsearch-http()` (unpacked by the test command into `OPERYN_TEST_SYSLOG_NG`);
/// - the `elasticsearch` Python client's bulk helper (pinned in `Tests/otel/requirements.txt`, `OPERYN_TEST_OTEL_PYTHON`).
@Suite("End to end: rsyslog, syslog-ng and the Elasticsearch client ship to the bulk API", .serialized)
struct ElasticsearchShipperTests {
    static var root: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// A committed shipper configuration with its `@NAME@`s filled in, written into `directory`.
    static func configuration(_ name: String, into directory: String, _ values: [String: String]) throws -> String {
        var text = try String(contentsOf: root.appendingPathComponent("Tests/shippers/\(name)"), encoding: .utf8)
        for (key, value) in values { text = text.replacingOccurrences(of: "@\(key)@", with: value) }
        let path = "\(directory)/\(name)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// RFC 5424 lines from `service`: error, warning, notice, debug, at fixed times.
    static func syslogLines(service: String) -> String {
        [
            "<11>1 2025-11-24T16:00:00.125Z web-1 \(service) 4242 - - payment declined for order 42",
            "<12>1 2025-11-24T16:00:01.000Z web-1 \(service) 4242 - - disk almost full",
            "<13>1 2025-11-24T16:00:02.000Z web-1 \(service) 4242 - - user signed in",
            "<15>1 2025-11-24T16:00:03.000Z web-1 \(service) 4242 - - cache miss",
        ].joined(separator: "\n") + "\n"
    }

    /// Sends `text` to a shipper listening on `port`, once it listens.
    static func feed(port: Int, _ text: String) async throws {
        var attempts = 0
        while !RedisServer.accepts(port: port) && attempts < 200 {
            attempts += 1
            try await Task.sleep(for: .milliseconds(50))
        }
        let socket = try #require(TestSocket(port: port), "the shipper listens on \(port)")
        #expect(socket.sendAll(text))
        try await Task.sleep(for: .milliseconds(200))
        close(socket.descriptor)
    }

    /// The four syslog lines, as the shippers' configurations map them.
    func expectSyslogRows(_ cluster: Cluster, service: String, shipper: String) async throws {
        let rows = try await cluster.rows(
            count: 4, "SELECT org_id, level, message, timestamp, metadata FROM logs WHERE service = '\(service)' ORDER BY timestamp")
        #expect(rows.map { $0[0] } == ["acme", "acme", "acme", "acme"], "\(shipper): the organization of the Basic user")
        #expect(rows.map { $0[1] } == ["error", "warn", "info", "debug"], "\(shipper)")
        #expect(rows.map { $0[2] } == ["payment declined for order 42", "disk almost full", "user signed in", "cache miss"], "\(shipper)")
        #expect(rows.first?[3] == "2025-11-24T16:00:00.125Z" && rows.last?[3] == "2025-11-24T16:00:03.000Z", "\(shipper)")
        let metadata = try JSONParser.parse(Array(try #require(rows.first?[4]).utf8))
        #expect(metadata["host.name"] == "web-1" && metadata["log.syslog.facility.name"] == "user", "\(shipper): \(metadata)")
        #expect(metadata["_index"] == "logs-syslog" && metadata["log.level"] == "err", "\(shipper): the level's own name is kept")
    }

    @Test func rsyslogWithOmelasticsearch() async throws {
        let rsyslogd = try #require(["/usr/sbin/rsyslogd", "/sbin/rsyslogd"].first { FileManager.default.isExecutableFile(atPath: $0) }, "rsyslog")
        let cluster = try Cluster()
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let port = try await cluster.startGateway()
        try cluster.startWorker("w1")
        let listen = try RedisServer.freePort()
        let work = "\(cluster.directory)/rsyslog"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let config = try Self.configuration(
            "rsyslog.conf", into: cluster.directory,
            [
                "WORK": work, "LISTEN_PORT": "\(listen)", "GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": "\(port)", "ORGANIZATION": "acme",
                "KEY": Cluster.serverKey,
            ])
        let pid = try ChildProcess.spawn([rsyslogd, "-n", "-f", config, "-i", "\(work)/rsyslogd.pid"], output: "\(cluster.directory)/rsyslogd.log")
        defer {
            kill(pid, SIGTERM)
            _ = ChildProcess.wait(pid)
        }
        try await Self.feed(port: listen, Self.syslogLines(service: "checkout-rsyslog"))
        try await expectSyslogRows(cluster, service: "checkout-rsyslog", shipper: "rsyslog")
        passed = true
    }

    @Test func syslogNgWithElasticsearchHTTP() async throws {
        let root = try #require(ProcessInfo.processInfo.environment["OPERYN_TEST_SYSLOG_NG"], "OPERYN_TEST_SYSLOG_NG: syslog-ng unpacked (the test command)")
        let cluster = try Cluster()
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let port = try await cluster.startGateway()
        try cluster.startWorker("w1")
        let listen = try RedisServer.freePort()
        let path = try Self.configuration(
            "syslog-ng.conf", into: cluster.directory,
            ["LISTEN_PORT": "\(listen)", "GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": "\(port)", "ORGANIZATION": "acme", "KEY": Cluster.serverKey])
        // Unpacked rather than installed: the configuration library is included by its path.
        let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(
            of: #"@include "scl.conf""#, with: #"@include "\#(root)/usr/share/syslog-ng/include/scl/elasticsearch/elastic-http.conf""#)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let directory = cluster.directory
        let pid = try ChildProcess.spawn(
            [
                "\(root)/usr/sbin/syslog-ng", "-F", "-e", "-f", path, "--module-path=\(root)/usr/lib/syslog-ng/3.38", "-R", "\(directory)/syslog-ng.persist",
                "-c", "\(directory)/syslog-ng.ctl", "-p", "\(directory)/syslog-ng.pid",
            ], environment: ["LD_LIBRARY_PATH": "\(root)/usr/lib/syslog-ng"], output: "\(directory)/syslog-ng.log")
        defer {
            kill(pid, SIGTERM)
            _ = ChildProcess.wait(pid)
        }
        try await Self.feed(port: listen, Self.syslogLines(service: "checkout-syslog-ng"))
        try await expectSyslogRows(cluster, service: "checkout-syslog-ng", shipper: "syslog-ng")
        passed = true
    }

    @Test func pythonClientBulkHelper() async throws {
        let python = try #require(ProcessInfo.processInfo.environment["OPERYN_TEST_OTEL_PYTHON"], "OPERYN_TEST_OTEL_PYTHON (the test command sets it)")
        let cluster = try Cluster()
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let port = try await cluster.startGateway()
        try cluster.startWorker("w1")
        let output = "\(cluster.directory)/bulk.out"
        let pid = try ChildProcess.spawn(
            [python, Self.root.appendingPathComponent("Tests/shippers/bulk.py").path, "http://127.0.0.1:\(port)", "globex", Cluster.serverKey, "py-orders"],
            output: output, errors: output + ".err")
        let status = await ChildProcess.exited(pid)
        let printed = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        try #require(
            status == 0, "bulk.py exited \(status): \(printed) \(((try? String(contentsOfFile: output + ".err", encoding: .utf8)) ?? "").suffix(2_000))")
        let report = try JSONParser.parse(Array(printed.utf8))
        #expect(report["version"] == "8.11.0" && report["ping"] == .bool(true))
        #expect(report["basic"] == [3, []] && report["apiKey"] == [1, []], "\(printed)")
        #expect(report["refused"] == ["@timestamp must be an ISO 8601 date-time or epoch milliseconds, got 'not a time'"], "\(printed)")

        let rows = try await cluster.rows(
            count: 5, "SELECT org_id, level, message, timestamp, trace_id, metadata FROM logs WHERE service = 'py-orders' ORDER BY message")
        #expect(rows.map { $0[0] } == Array(repeating: "globex", count: 5))
        #expect(rows.map { $0[2] } == ["by api key", "kept", "order 0 shipped", "order 1 shipped", "order 2 shipped"])
        #expect(rows.map { $0[1] } == ["debug", "info", "info", "warn", "error"])
        #expect(rows[2][3] == "2025-11-24T16:00:00.000Z" && rows[2][4] == "4bf92f3577b34da6a3ce929d0e0e4736")
        let metadata = try JSONParser.parse(Array(try #require(rows[3][5]).utf8))
        #expect(metadata["service.version"] == "2.1" && metadata["labels.order"] == .number("1") && metadata["_index"] == "logs-python")
        #expect(metadata["log.level"] == "WARN")
        passed = true
    }

    @Test func aMixedBulkRequestRetriedWithAnIdempotencyKeyIsStoredOnce() async throws {
        let cluster = try Cluster()
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let port = try await cluster.startGateway()
        try cluster.startWorker("w1")
        let body =
            [
                #"{"create":{"_index":"mixed"}}"#, #"{"message":"first"}"#, #"{"create":{"_index":"mixed"}}"#, #"{"@timestamp":"soon"}"#,
                #"{"create":{"_index":"mixed"}}"#, #"{"message":"second"}"#, #"{"delete":{"_index":"mixed","_id":"x"}}"#,
            ].joined(separator: "\n") + "\n"
        let headers = ["x-api-key": Cluster.serverKey, "Idempotency-Key": "mixed-bulk-1"]
        let first = try cluster.post(port: port, "/_bulk", body, headers: headers)
        let again = try cluster.post(port: port, "/_bulk", body, headers: headers)
        #expect(first.status == 200 && again.status == 200)
        let answer = try JSONParser.parse(Array(first.body.utf8))
        let replayed = try JSONParser.parse(Array(again.body.utf8))
        #expect(answer["errors"] == .bool(true) && answer["items"] == replayed["items"], "the same answer")
        let rows = try await cluster.rows(count: 2, "SELECT id, message FROM logs WHERE service = 'mixed' ORDER BY message")
        guard case .array(let items)? = answer["items"] else { throw TestSetupError("no items: \(first.body)") }
        #expect(rows.map { $0[1] } == ["first", "second"])
        #expect(rows.map { $0[0] } == [items[0]["create"]?["_id"]?.text, items[2]["create"]?["_id"]?.text], "stored under the answered ids")
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await cluster.query("SELECT count(*) FROM logs").first?.first == "2", "nothing written twice")
        passed = true
    }
}
