import NIOCore
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Start-up steps both executables share, and how they end: one line on stderr and a documented exit code, never
/// a crash.
///
/// | exit code | meaning |
/// |---|---|
/// | 0 | stopped by `SIGTERM` or `SIGINT` (or `--help`) |
/// | 1 | failed while running |
/// | 2 | a setting is invalid |
/// | 3 | Redis or the database unreachable or unusable at start, within `OPERYN_STARTUP_TIMEOUT_SECONDS` |
/// | 4 | cannot listen on the configured address and port |
public enum Startup {
    /// Reads configuration with `read`; on `--help` prints every setting `read` reads (from their descriptions)
    /// and exits 0; on an unknown option or a bad setting prints it and exits 2.
    public static func configuration<Configuration>(
        purpose: String,
        _ read: (ConfigurationReader) throws(ConfigurationError) -> Configuration
    ) -> Configuration {
        let settings = ConfigurationReader.describe { reader throws(ConfigurationError) in _ = try read(reader) }
        do {
            let reader = try ConfigurationReader.process()
            if reader.wantsHelp {
                print(ConfigurationReader.help(purpose, settings: settings))
                exit(0)
            }
            try reader.checkKnown(settings)
            return try read(reader)
        } catch {
            fail("configuration error: \(error.message)", exitCode: 2)
        }
    }

    /// `OPERYN_STARTUP_TIMEOUT_SECONDS`, as the gateway and the worker read it.
    public static func timeoutSeconds(_ reader: ConfigurationReader) throws(ConfigurationError) -> Int {
        try reader.integer(
            "OPERYN_STARTUP_TIMEOUT_SECONDS", default: 30, in: 0...86_400,
            about: "how long Redis (and the worker's database) may be unreachable at start before exit code 3; `0` waits for ever")
    }

    /// Writes `line` to stderr and exits with `exitCode`.
    public static func fail(_ line: String, exitCode: Int32) -> Never {
        let text = Array("\(line)\n".utf8)
        _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        exit(exitCode)
    }

    /// Ends the process after its service group threw `error`: a `StartupError` with its own line and code; a
    /// socket error before `listener` started listening as "cannot listen" (4); a cancellation as a clean stop (0);
    /// anything else as a failure (1).
    public static func end(after error: any Error, listener: Listener? = nil) -> Never {
        if let error = error as? StartupError { fail("startup error: \(error.message)", exitCode: error.exitCode) }
        if let listener, !listener.isListening, let error = error as? IOError {
            fail("startup error: \(listener.setting): cannot listen on \(listener.address): \(String(cString: strerror(error.errnoCode)))", exitCode: 4)
        }
        if error is CancellationError { exit(0) }
        fail("error: \(error)", exitCode: 1)
    }

    /// An HTTP listener the process starts, to tell a failure to bind from a later one.
    public final class Listener: Sendable {
        /// The settings that name the address, for the error line (`OPERYN_HOST/OPERYN_PORT`).
        public let setting: String
        /// `host:port`.
        public let address: String
        private let listening = Atomic<Bool>(false)

        /// A listener on `host:port`, configured by `setting`.
        public init(setting: String, host: String, port: Int) {
            self.setting = setting
            self.address = "\(host):\(port)"
        }

        /// Whether the server has started listening.
        public var isListening: Bool { listening.load(ordering: .acquiring) }

        /// Called once the server listens (Hummingbird's `onServerRunning`).
        public func started() { listening.store(true, ordering: .releasing) }
    }
}

/// A dependency that could not be reached or used at start: the process exits with `exitCode` (3 unless said).
public struct StartupError: Error, Sendable {
    /// One line naming the setting and the cause.
    public var message: String
    /// The process's exit code.
    public var exitCode: Int32

    /// An error for `message`.
    public init(_ message: String, exitCode: Int32 = 3) {
        self.message = message
        self.exitCode = exitCode
    }
}

/// Waits at start until `check` succeeds, for at most `timeoutSeconds` (0: for ever), then stays out of the way
/// until shutdown. Past the timeout it throws a `StartupError` built by `failure` from the last error, which ends
/// the service group and the process (exit code 3). A graceful shutdown while waiting ends it quietly.
public struct StartupCheck: Service {
    let timeoutSeconds: Int
    let check: @Sendable () async throws -> Void
    let failure: @Sendable (any Error) -> StartupError

    /// A check with its time limit and the error it ends with.
    public init(
        timeoutSeconds: Int, check: @escaping @Sendable () async throws -> Void, failure: @escaping @Sendable (any Error) -> StartupError
    ) {
        self.timeoutSeconds = timeoutSeconds
        self.check = check
        self.failure = failure
    }

    public func run() async throws {
        do {
            try await Self.wait(timeoutSeconds: timeoutSeconds, check, failure: failure)
        } catch is CancellationError {
            return
        }
        try? await gracefulShutdown()
    }

    /// Runs `check` until it succeeds (backing off from 100 ms to 2 s); throws `failure`'s error once
    /// `timeoutSeconds` have passed (even in the middle of an attempt) or at once for an error that is not
    /// `retryable`; throws `CancellationError` at a graceful shutdown (even in the middle of an attempt).
    public static func wait<T: Sendable>(
        timeoutSeconds: Int, _ check: @escaping @Sendable () async throws -> T, retryable: @escaping @Sendable (any Error) -> Bool = { _ in true },
        failure: @escaping @Sendable (any Error) -> StartupError
    ) async throws -> T {
        let lastError = LastError()
        return try await cancelWhenGracefulShutdown {
            try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask {
                    try await retry(check, retryable: retryable, failure: failure) { error in lastError.text.withLock { $0 = "\(error)" } }
                }
                if timeoutSeconds > 0 {
                    group.addTask {
                        try await Task.sleep(for: .seconds(timeoutSeconds))
                        return nil
                    }
                }
                defer { group.cancelAll() }
                guard let value = try await group.next() ?? nil else {
                    throw failure(StartupTimeout(seconds: timeoutSeconds, lastError: lastError.text.withLock { $0 }))
                }
                return value
            }
        }
    }

    private static func retry<T>(
        _ check: () async throws -> T, retryable: (any Error) -> Bool, failure: (any Error) -> StartupError, failed: (any Error) -> Void
    ) async throws -> T {
        var backoff = Backoff(firstMilliseconds: 100, maxMilliseconds: 2_000)
        return try await backoff.retrying(check) { error in
            if Task.isCancelled { throw CancellationError() }
            if !retryable(error) { throw failure(error) }
            failed(error)
        }
    }
}

/// No answer within the start-up timeout: the last error seen, if any.
struct StartupTimeout: Error, CustomStringConvertible {
    var seconds: Int
    var lastError: String?
    var description: String { lastError ?? "no answer within \(seconds) s" }
}

/// The description of the last failed attempt, shared with the attempting task.
private final class LastError: Sendable {
    let text = Mutex<String?>(nil)
}
