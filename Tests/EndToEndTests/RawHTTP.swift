import Foundation
import TestSupport

/// HTTP/1.1 over a plain blocking socket, byte for byte: for requests no HTTP client would send (CR in a header
/// value, 100 KB headers, invalid UTF-8). Each request has its own connection (`Connection: close`).
enum RawHTTP {
    struct Response {
        var status: Int
        var body: String
        /// The body's bytes as received (a protobuf answer is not text).
        var bytes: [UInt8] = []
        /// The `Content-Type` of the answer.
        var contentType: String? = nil
    }

    /// The request's bytes: request line, headers in order, `Content-Length`, body.
    static func request(method: String, path: String, headers: [(String, String)], body: [UInt8]) -> [UInt8] {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "Content-Length: \(body.count)\r\n\r\n"
        return Array(head.utf8) + body
    }

    /// Sends `bytes` to 127.0.0.1:`port` and reads the answer until the server closes (at most 15 s). Like curl, it
    /// stops sending once the server has answered (an early 413 on a large body is not followed by reading it).
    static func send(port: Int, _ bytes: [UInt8]) -> Response? {
        guard let descriptor = RedisServer.connectLoopback(port: port) else { return nil }
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var sendTimeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &sendTimeout, socklen_t(MemoryLayout<timeval>.size))
        var offset = 0
        var stalled = 0
        bytes.withUnsafeBytes { buffer in
            while offset < buffer.count && stalled < 75 {
                var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                if poll(&poller, 1, 0) > 0 { break }  // the server answered (or closed) before reading everything
                let sent = Glibc.send(descriptor, buffer.baseAddress! + offset, min(65_536, buffer.count - offset), Int32(MSG_NOSIGNAL))
                if sent > 0 {
                    offset += sent
                    stalled = 0
                } else if errno == EAGAIN || errno == EWOULDBLOCK {
                    stalled += 1
                } else {
                    break
                }
            }
        }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = recv(descriptor, &chunk, chunk.count, 0)
            if count <= 0 { break }
            received.append(contentsOf: chunk[0..<count])
        }
        let text = String(decoding: received, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 "), let status = Int(text.dropFirst(9).prefix(3)) else { return nil }
        let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        let separator = (0..<max(0, received.count - 3)).first { received[$0..<($0 + 4)].elementsEqual([13, 10, 13, 10]) }
        let head = separator.map { String(decoding: received[..<$0], as: UTF8.self) } ?? text
        let contentType = head.components(separatedBy: "\r\n").first { $0.lowercased().hasPrefix("content-type:") }.map {
            $0.dropFirst("content-type:".count).trimmingCharacters(in: .whitespaces)
        }
        return Response(
            status: status, body: Self.dechunk(body), bytes: separator.map { Array(received[($0 + 4)...]) } ?? [], contentType: contentType)
    }

    /// The body of a chunked answer joined; other bodies as they are.
    static func dechunk(_ body: String) -> String {
        let lines = body.components(separatedBy: "\r\n")
        guard lines.count >= 3, let size = Int(lines[0], radix: 16), size == lines[1].utf8.count else { return body }
        var result = ""
        var index = 0
        while index + 1 < lines.count, let size = Int(lines[index], radix: 16), size > 0 {
            result += lines[index + 1]
            index += 2
        }
        return result
    }
}
