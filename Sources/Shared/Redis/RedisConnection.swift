import CHiredis
import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One TCP connection to Redis, used from a single thread: a non-blocking socket whose every wait
/// is bounded by a deadline (poll), with hiredis's `redisReader` as the RESP decoder.
///
/// Owns the socket and the reader, and frees both in `deinit`. Not thread-safe by design:
/// only the `RedisClient` thread that made it touches it.
final class RedisConnection {
    private var descriptor: Int32
    private let reader = RedisReplyReader()
    private var readBuffer: UnsafeMutableRawBufferPointer

    private init(descriptor: Int32) {
        self.descriptor = descriptor
        self.readBuffer = .allocate(byteCount: 64 * 1024, alignment: 16)
    }

    deinit {
        close()
        readBuffer.deallocate()
    }

    /// Connects and runs the handshake (AUTH, SELECT); every step ends by `deadline`.
    static func open(_ configuration: RedisConfiguration, deadline: NIODeadline) throws(RedisError) -> RedisConnection {
        let connection = RedisConnection(descriptor: try connectSocket(host: configuration.host, port: configuration.port, deadline: deadline))
        let handshake = configuration.handshake
        guard !handshake.isEmpty else { return connection }
        var payload: [UInt8] = []
        for command in handshake { RedisCommandEncoder.append(command.arguments, to: &payload) }
        do throws(RedisError) {
            try connection.write(payload, deadline: deadline)
            for step in handshake.map(\.step) {
                if case .error(let error) = try connection.readReply(deadline: deadline) {
                    // The server's text names no secret, but keep only its code to be sure.
                    throw RedisError(
                        code: .connectionFailed,
                        message: "Redis \(step) failed: \(error.serverPrefix ?? "ERR")",
                        serverPrefix: error.serverPrefix
                    )
                }
            }
        } catch  where error.code == .timeout {
            throw RedisError(code: .connectionFailed, message: "Redis handshake timed out")
        }
        return connection
    }

    /// Closes the socket; later calls fail with `connectionClosed`.
    func close() {
        if descriptor >= 0 {
            _ = Glibc.close(descriptor)
            descriptor = -1
        }
    }

    /// Writes every byte of `bytes`, waiting for the socket no later than `deadline`.
    func write(_ bytes: [UInt8], deadline: NIODeadline) throws(RedisError) {
        var failure: RedisError?
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let sent = Glibc.send(descriptor, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
                if sent > 0 {
                    offset += sent
                } else if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                    if let error = Self.wait(descriptor, for: Int16(POLLOUT), until: deadline) {
                        failure = error
                        return
                    }
                } else {
                    failure = RedisError(code: .connectionClosed, message: "Redis write failed: \(Self.errnoText())")
                    return
                }
            }
        }
        if let failure { throw failure }
    }

    /// Reads one whole reply, waiting for bytes no later than `deadline`.
    func readReply(deadline: NIODeadline) throws(RedisError) -> RedisReply {
        while true {
            if let reply = try reader.next() { return reply }
            try fill(deadline: deadline)
        }
    }

    private func fill(deadline: NIODeadline) throws(RedisError) {
        while true {
            let count = Glibc.recv(descriptor, readBuffer.baseAddress, readBuffer.count, 0)
            if count > 0 {
                reader.feed(UnsafeRawBufferPointer(start: readBuffer.baseAddress, count: count))
                return
            }
            if count == 0 {
                throw RedisError(code: .connectionClosed, message: "Redis closed the connection")
            }
            guard errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else {
                throw RedisError(code: .connectionClosed, message: "Redis read failed: \(Self.errnoText())")
            }
            if let error = Self.wait(descriptor, for: Int16(POLLIN), until: deadline) { throw error }
        }
    }

    /// Waits until the socket is ready for `events`; returns the error to throw when the deadline passes or the socket fails.
    private static func wait(_ descriptor: Int32, for events: Int16, until deadline: NIODeadline) -> RedisError? {
        while true {
            let remaining = deadline.millisecondsFromNow
            if remaining <= 0 {
                return RedisError(code: .timeout, message: "Redis did not answer in time")
            }
            var target = pollfd(fd: descriptor, events: events, revents: 0)
            let ready = poll(&target, 1, Int32(clamping: remaining))
            if ready > 0 {
                if target.revents & Int16(POLLNVAL) != 0 {
                    return RedisError(code: .connectionClosed, message: "Redis connection is closed")
                }
                return nil
            }
            if ready < 0 && errno != EINTR {
                return RedisError(code: .connectionClosed, message: "Redis poll failed: \(errnoText())")
            }
        }
    }

    private static func connectSocket(host: String, port: Int, deadline: NIODeadline) throws(RedisError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw RedisError(code: .connectionFailed, message: "Redis host \(host) could not be resolved")
        }
        defer { freeaddrinfo(list) }
        var lastError = RedisError(code: .connectionFailed, message: "Redis at \(host):\(port) is unreachable")
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let address = candidate {
            candidate = address.pointee.ai_next
            let descriptor = socket(address.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if descriptor < 0 { continue }
            var one: Int32 = 1
            _ = setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            _ = setsockopt(descriptor, SOL_SOCKET, SO_KEEPALIVE, &one, socklen_t(MemoryLayout<Int32>.size))
            if Glibc.connect(descriptor, address.pointee.ai_addr, address.pointee.ai_addrlen) == 0 {
                return descriptor
            }
            if errno == EINPROGRESS {
                if let error = wait(descriptor, for: Int16(POLLOUT), until: deadline) {
                    lastError = RedisError(code: .connectionFailed, message: "Redis at \(host):\(port): connect timed out")
                    _ = Glibc.close(descriptor)
                    if error.code == .timeout { break }
                    continue
                }
                var socketError: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                _ = getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &socketError, &length)
                if socketError == 0 { return descriptor }
                lastError = RedisError(code: .connectionFailed, message: "Redis at \(host):\(port): \(String(cString: strerror(socketError)))")
            } else {
                lastError = RedisError(code: .connectionFailed, message: "Redis at \(host):\(port): \(errnoText())")
            }
            _ = Glibc.close(descriptor)
        }
        throw lastError
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
