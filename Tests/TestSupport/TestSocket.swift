import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A blocking loopback TCP connection for tests that act as clients no library would be: stalled, slow, or
/// writing a whole body before reading.
/// `@unchecked Sendable`: a descriptor, used by one task at a time.
public final class TestSocket: @unchecked Sendable {
    public let descriptor: Int32

    /// Connects to 127.0.0.1:`port`.
    public init?(port: Int) {
        guard let descriptor = RedisServer.connectLoopback(port: port) else { return nil }
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    /// Sends every byte, blocking up to `seconds` in all; answers whether all were sent.
    @discardableResult
    public func sendAll(_ bytes: [UInt8], seconds: Int = 10) -> Bool {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var offset = 0
        return bytes.withUnsafeBytes { buffer in
            while offset < buffer.count {
                let sent = send(descriptor, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
                guard sent > 0 else { return false }
                offset += sent
            }
            return true
        }
    }

    /// Sends `text`'s UTF-8 bytes.
    @discardableResult
    public func sendAll(_ text: String, seconds: Int = 10) -> Bool { sendAll(Array(text.utf8), seconds: seconds) }

    /// Reads until the server closes or `seconds` pass; answers the bytes and whether the server closed.
    public func receiveAll(seconds: Double) -> (text: String, closed: Bool) {
        let deadline = Date().addingTimeInterval(seconds)
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while Date() < deadline {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(max(1, deadline.timeIntervalSinceNow * 1000)))
            guard ready > 0 else { continue }
            let count = recv(descriptor, &chunk, chunk.count, 0)
            if count <= 0 { return (String(decoding: received, as: UTF8.self), true) }
            received.append(contentsOf: chunk[0..<count])
        }
        return (String(decoding: received, as: UTF8.self), false)
    }

    /// Reads one response whose head says `Content-Length` (or until `seconds` pass); answers its text.
    public func receiveResponse(seconds: Double) -> String {
        let deadline = Date().addingTimeInterval(seconds)
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while Date() < deadline {
            let text = String(decoding: received, as: UTF8.self)
            if let end = text.range(of: "\r\n\r\n") {
                let head = text[..<end.lowerBound].lowercased()
                let length =
                    head.components(separatedBy: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                if text[end.upperBound...].utf8.count >= length { return text }
            }
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(max(1, deadline.timeIntervalSinceNow * 1000))) > 0 else { continue }
            let count = recv(descriptor, &chunk, chunk.count, 0)
            if count <= 0 { break }
            received.append(contentsOf: chunk[0..<count])
        }
        return String(decoding: received, as: UTF8.self)
    }
}
