import Foundation
import Logging
import NIOCore

/// The queue and thread behind a `RedisClient`.
///
/// `@unchecked Sendable`: every stored property that changes is read and written only while
/// holding `condition`, except `connection`, which only the client's own thread touches.
final class RedisClientCore: RedisTransport, @unchecked Sendable {
    /// Commands from one caller, written contiguously and answered together.
    private struct Request {
        let payload: [UInt8]
        let replyCount: Int
        let deadline: NIODeadline
        let continuation: UnsafeContinuation<[RedisReply], any Error>

        func fail(_ error: RedisError) { continuation.resume(throwing: error) }
    }

    let configuration: RedisConfiguration
    private let name: String
    private let logger: Logger
    private let condition = NSCondition()

    // Guarded by `condition`.
    private var queue: [Request] = []
    private var stopped = false
    private var connected = false

    // Touched by the client's thread only.
    private var connection: RedisConnection?
    private var nextAttempt = NIODeadline.uptimeNanoseconds(0)
    private var reconnectDelay: Int
    private var reportedDown = false

    init(configuration: RedisConfiguration, name: String, logger: Logger) {
        self.configuration = configuration
        self.name = name
        self.logger = logger
        self.reconnectDelay = configuration.reconnectDelayMilliseconds
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "redis-\(name)"
        thread.start()
    }

    func shutdown() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    var isConnected: Bool {
        condition.lock()
        defer { condition.unlock() }
        return connected
    }

    /// Queues pre-encoded commands and waits for their `replies` replies.
    func execute(_ payload: [UInt8], replies: Int, blockingMilliseconds: Int) async throws(RedisError) -> [RedisReply] {
        let deadline = NIODeadline.now() + .milliseconds(Int64(configuration.commandTimeoutMilliseconds + blockingMilliseconds))
        do {
            return try await withUnsafeThrowingContinuation { continuation in
                let request = Request(payload: payload, replyCount: replies, deadline: deadline, continuation: continuation)
                condition.lock()
                if stopped {
                    condition.unlock()
                    request.fail(RedisError(code: .shutdown, message: "Redis client is shut down"))
                    return
                }
                queue.append(request)
                if queue.count == 1 { condition.signal() }
                condition.unlock()
            }
        } catch {
            throw error as! RedisError
        }
    }

    // MARK: The client's thread

    private func run() {
        while let batch = nextBatch() {
            process(batch)
        }
        connection = nil
        condition.lock()
        let leftover = queue
        queue = []
        connected = false
        condition.unlock()
        for request in leftover { request.fail(RedisError(code: .shutdown, message: "Redis client is shut down")) }
    }

    /// Waits for queued requests; while disconnected, wakes up to reconnect on schedule. `nil` once stopped.
    private func nextBatch() -> [Request]? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && !stopped {
            if connection == nil {
                let wait = nextAttempt.millisecondsFromNow
                if wait <= 0 {
                    condition.unlock()
                    reconnect(deadline: NIODeadline.now() + .milliseconds(Int64(configuration.connectTimeoutMilliseconds)))
                    condition.lock()
                    continue
                }
                _ = condition.wait(until: Date(timeIntervalSinceNow: Double(wait) / 1000))
            } else {
                condition.wait()
            }
        }
        if stopped { return nil }
        let batch = queue
        queue = []
        return batch
    }

    private func process(_ batch: [Request]) {
        let now = NIODeadline.now()
        var live: [Request] = []
        live.reserveCapacity(batch.count)
        for request in batch {
            if request.deadline <= now {
                request.fail(RedisError(code: .timeout, message: "Redis did not answer in time"))
            } else {
                live.append(request)
            }
        }
        guard let first = live.first else { return }

        if connection == nil {
            guard nextAttempt <= now else {
                let error = RedisError(code: .unavailable, message: "Redis is unreachable; reconnecting")
                for request in live { request.fail(error) }
                return
            }
            let connectBy = min(now + .milliseconds(Int64(configuration.connectTimeoutMilliseconds)), first.deadline)
            if let error = reconnect(deadline: connectBy) {
                for request in live { request.fail(error) }
                return
            }
        }
        guard let connection else { return }

        var payload: [UInt8]
        if live.count == 1 {
            payload = first.payload
        } else {
            payload = []
            payload.reserveCapacity(live.reduce(0) { $0 + $1.payload.count })
            for request in live { payload.append(contentsOf: request.payload) }
        }
        do {
            try connection.write(payload, deadline: first.deadline)
        } catch {
            drop(error, failing: live[...])
            return
        }
        for (index, request) in live.enumerated() {
            var replies: [RedisReply] = []
            replies.reserveCapacity(request.replyCount)
            do {
                for _ in 0..<request.replyCount { replies.append(try connection.readReply(deadline: request.deadline)) }
            } catch {
                drop(error, failing: live[index...])
                return
            }
            request.continuation.resume(returning: replies)
        }
    }

    /// Closes a broken connection and fails the requests that were waiting on it.
    private func drop(_ error: RedisError, failing requests: ArraySlice<Request>) {
        connection = nil
        setConnected(false)
        logger.warning("redis.connection.lost", metadata: ["redis.client": "\(name)", "redis.error": "\(error.message)"])
        for request in requests { request.fail(error) }
        nextAttempt = .now()
        reconnectDelay = configuration.reconnectDelayMilliseconds
    }

    /// Connects; on failure schedules the next attempt with doubled backoff and returns the error.
    @discardableResult
    private func reconnect(deadline: NIODeadline) -> RedisError? {
        do {
            connection = try RedisConnection.open(configuration, deadline: deadline)
            reconnectDelay = configuration.reconnectDelayMilliseconds
            setConnected(true)
            if reportedDown {
                logger.info("redis.reconnected", metadata: ["redis.client": "\(name)", "redis.url": "\(configuration.redactedURL)"])
                reportedDown = false
            }
            return nil
        } catch {
            nextAttempt = NIODeadline.now() + .milliseconds(Int64(reconnectDelay))
            reconnectDelay = min(reconnectDelay * 2, configuration.maxReconnectDelayMilliseconds)
            if !reportedDown {
                logger.warning(
                    "redis.connect.failed",
                    metadata: ["redis.client": "\(name)", "redis.url": "\(configuration.redactedURL)", "redis.error": "\(error.message)"]
                )
                reportedDown = true
            }
            return error
        }
    }

    private func setConnected(_ value: Bool) {
        condition.lock()
        connected = value
        condition.unlock()
    }
}
