import Dispatch
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Start-up steps both executables share.
public enum Startup {
    /// Reads configuration with `read`; on `--help` prints `help` and exits 0, on a bad setting prints it and exits 2.
    public static func configuration<Configuration>(
        help: String,
        _ read: (ConfigurationReader) throws(ConfigurationError) -> Configuration
    ) -> Configuration {
        do {
            let reader = try ConfigurationReader.process()
            if reader.wantsHelp {
                print(help)
                exit(0)
            }
            return try read(reader)
        } catch {
            let text = Array("configuration error: \(error.message)\n".utf8)
            _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            exit(2)
        }
    }

    /// Pings Redis until it answers, logging once while it does not; then logs its durability settings.
    public static func waitForRedis(_ client: RedisClient, logger: Logger) async throws {
        var warned = false
        while true {
            try Task.checkCancellation()
            do {
                _ = try await client.send(PING())
                break
            } catch {
                if !warned {
                    logger.warning("redis.waiting", metadata: ["redis.url": "\(client.configuration.redactedURL)", "redis.error": "\(error.message)"])
                    warned = true
                }
                try await Task.sleep(for: .milliseconds(250))
            }
        }
        if let durability = try? await RedisDurability.read(from: client) { durability.log(to: logger) }
    }

    /// Waits for SIGTERM or SIGINT.
    public static func waitForTerminationSignal() async -> Int32 {
        await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            let box = SignalBox(continuation)
            for number in [SIGTERM, SIGINT] {
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { box.fire(number) }
                source.resume()
                box.keep(source)
            }
        }
    }
}

/// Resumes a continuation once, from whichever signal comes first; keeps the signal sources alive.
private final class SignalBox: @unchecked Sendable {
    // `lock` guards `continuation` and `sources`.
    private let lock = NSLockish()
    private var continuation: CheckedContinuation<Int32, Never>?
    private var sources: [any DispatchSourceSignal] = []

    init(_ continuation: CheckedContinuation<Int32, Never>) { self.continuation = continuation }

    func keep(_ source: any DispatchSourceSignal) {
        lock.withLock { sources.append(source) }
    }

    func fire(_ number: Int32) {
        let pending = lock.withLock { () -> CheckedContinuation<Int32, Never>? in
            defer { continuation = nil }
            return continuation
        }
        pending?.resume(returning: number)
    }
}

/// A pthread mutex.
private final class NSLockish: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func withLock<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }
}
