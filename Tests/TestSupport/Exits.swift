import Foundation

/// How a child process ended: its exit status and what it wrote.
public struct ProcessExit: Sendable {
    /// The exit status, or 128 + the signal that ended it; `nil` when it was still running at the deadline (then killed).
    public var status: Int32?
    /// Standard output and error together.
    public var output: String

    /// The lines the process wrote to stderr/stdout that are not JSON log lines.
    public var plainLines: [String] { output.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("{") } }
}

extension ChildProcess {
    /// Runs `arguments` with `environment`, sends `signal` after `signalAfter` seconds when given, and waits at most
    /// `seconds` for it to exit (killing it past that).
    public static func run(
        _ arguments: [String], environment: [String: String], signal: Int32? = nil, signalAfter: Double = 0, seconds: Double = 20
    ) async throws -> ProcessExit {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("operyn-exit-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let pid = try spawn(arguments, environment: environment, output: log)
        let started = ContinuousClock.now
        var signalled = signal == nil
        var status: Int32?
        while ContinuousClock.now - started < .seconds(seconds) {
            var raw: Int32 = 0
            if waitpid(pid, &raw, WNOHANG) == pid {
                status = raw & 0x7F == 0 ? (raw >> 8) & 0xFF : 128 + (raw & 0x7F)
                break
            }
            if !signalled, let signal, ContinuousClock.now - started >= .seconds(signalAfter) {
                kill(pid, signal)
                signalled = true
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        if status == nil {
            kill(pid, SIGKILL)
            wait(pid)
        }
        return ProcessExit(status: status, output: (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }
}
