import Foundation
import Shared
import TestSupport
import Testing

@testable import Worker

/// The built `operyn-worker` executable, run as a child process.
@Suite("operyn-worker as a process", .serialized)
struct ProcessTests {
    func environment(_ harness: WorkerHarness, name: String) throws -> [String: String] {
        [
            "OPERYN_REDIS_URL": try TestRedis.url, "OPERYN_KEY_PREFIX": harness.keys.prefix,
            "OPERYN_STREAM_PARTITIONS": "\(harness.keys.partitions)", "OPERYN_DATABASE_URL": "sqlite:\(harness.databasePath)",
            "OPERYN_METRICS_PORT": "0", "OPERYN_CONSUMER_NAME": name, "OPERYN_BATCH_SIZE": "200", "OPERYN_BLOCK_MS": "100", "OPERYN_LOG_LEVEL": "warning",
        ].merging(TestRedis.patientSettings) { $1 }
    }

    var worker: String { ChildProcess.binDirectory() + "/operyn-worker" }

    @Test func aWorkerKilledMidBatchLosesNothing() async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        let total = 6_000
        let events = (0..<total).map { Sample.log(service: "svc-\($0 % 4)", message: "event \($0)") }
        try await harness.publish(events)
        let pid = try ChildProcess.spawn([worker], environment: try environment(harness, name: "doomed"))
        var stored = 0
        for _ in 0..<300 where stored == 0 {
            try await Task.sleep(for: .milliseconds(20))
            stored = (try? harness.count("logs")) ?? 0
        }
        kill(pid, SIGKILL)
        #expect(await ChildProcess.exited(pid) == 128 + SIGKILL)
        stored = try harness.count("logs")
        #expect(stored > 0 && stored < total, "killed mid-way: \(stored) of \(total) stored")

        // Another worker takes over the dead one's pending entries once they are idle.
        let survivor = harness.consumer(name: "survivor", claimIdle: 300)
        #expect(try await harness.run(survivor, seconds: 60) { (try? harness.count("logs")) == total })
        #expect(try harness.count("logs") == total)
        #expect(Set(try harness.query("SELECT message FROM logs").compactMap(\.first)).count == total, "every event exactly once")
        #expect(try await harness.pending() == 0)
    }

    @Test func sigtermFinishesTheBatchAndExitsCleanly() async throws {
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        try await harness.publish((0..<2_000).map { Sample.log(message: "e\($0)") })
        let pid = try ChildProcess.spawn([worker], environment: try environment(harness, name: "graceful"))
        var started = false
        for _ in 0..<300 where !started {
            try await Task.sleep(for: .milliseconds(20))
            started = ((try? harness.count("logs")) ?? 0) > 0
        }
        kill(pid, SIGTERM)
        #expect(await ChildProcess.exited(pid) == 0, "exit code after SIGTERM")
        let stored = try harness.count("logs")
        let pending = try await harness.pending()
        #expect(pending == 0, "the batch in hand was committed and acknowledged before exit (\(stored) stored)")
        #expect(try await harness.redis.send(XLEN(harness.keys.stream(.logs))) == 2_000 - stored)
    }

    /// The case that used to die of `SIGILL`: SIGTERM while the worker backs off from a database that fails.
    @Test func sigtermWhileTheDatabaseIsDown() async throws {
        let server = try await PostgresServer()
        let harness = try WorkerHarness()
        defer { Task { await harness.cleanUp() } }
        var environment = try environment(harness, name: "backing-off")
        environment["OPERYN_DATABASE_URL"] = server.url
        environment["OPERYN_SHUTDOWN_GRACE_SECONDS"] = "3"
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("operyn-worker-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let pid = try ChildProcess.spawn([worker], environment: environment, output: log)
        try await harness.publish((0..<10).map { Sample.log(message: "before \($0)") })
        var drained = false
        for _ in 0..<300 where !drained {
            try await Task.sleep(for: .milliseconds(50))
            drained = try await harness.redis.send(XLEN(harness.keys.stream(.logs))) == 0
        }
        #expect(drained, "stored while the database is up")
        try await server.stop()
        try await harness.publish((0..<50).map { Sample.log(message: "during \($0)") })
        try await Task.sleep(for: .seconds(2))
        kill(pid, SIGTERM)
        let signalled = ContinuousClock.now
        let status = await ChildProcess.exited(pid)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(status == 0, "\(output)")
        #expect(ContinuousClock.now - signalled < .seconds(8), "the batch waiting on the database is abandoned after the grace time")
        #expect(!output.contains("Fatal error"))
        #expect(try await harness.redis.send(XLEN(harness.keys.stream(.logs))) == 50, "nothing unstored was acknowledged")
    }
}
