import Foundation
import TestSupport

/// HTTP/2 over a plain blocking socket, frame by frame: for gRPC calls no client library would make (a wrong compressed
/// flag, a message that claims 100 MB, streams past the cap, a stream that never sends its message, a reset flood).
/// Header blocks are written as HPACK literals without indexing; the server's header blocks are not decoded: a call
/// answered with a message has a DATA frame, one refused ends with headers alone (trailers-only) or a reset.
final class RawHTTP2 {
    struct Frame {
        var type: UInt8
        var flags: UInt8
        var stream: UInt32
        var payload: [UInt8]

        static let data: UInt8 = 0, headers: UInt8 = 1, reset: UInt8 = 3, settings: UInt8 = 4, goAway: UInt8 = 7
        var endsStream: Bool { flags & 0x1 != 0 && (type == Self.data || type == Self.headers) }
    }

    let descriptor: Int32
    private var received: [UInt8] = []
    /// Whether the server closed the connection.
    private(set) var closed = false

    /// Connects to 127.0.0.1:`port` and sends the connection preface and empty settings (and acknowledges the
    /// server's).
    init?(port: Int) {
        guard let descriptor = RedisServer.connectLoopback(port: port) else { return nil }
        self.descriptor = descriptor
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        send(Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + Self.frame(Frame.settings, 0, 0, []) + Self.frame(Frame.settings, 0x1, 0, []))
    }

    deinit { close(descriptor) }

    static func frame(_ type: UInt8, _ flags: UInt8, _ stream: UInt32, _ payload: [UInt8]) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags]
            + [UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)] + payload
    }

    /// A gRPC call's headers on `stream`: POST to `path`, `content-type: application/grpc`, `te: trailers`, and `extra`.
    static func callHeaders(_ stream: UInt32, path: String, extra: [(String, String)] = [], endStream: Bool = false) -> [UInt8] {
        var block: [UInt8] = []
        let fields = [
            (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "127.0.0.1"), ("content-type", "application/grpc"), ("te", "trailers"),
        ]
        for (name, value) in fields + extra {
            block += [0x00, UInt8(name.utf8.count)] + Array(name.utf8) + [UInt8(value.utf8.count)] + Array(value.utf8)
        }
        return frame(Frame.headers, endStream ? 0x5 : 0x4, stream, block)
    }

    /// A gRPC message: the compressed flag, the length (big-endian; `claimedLength` to lie), the bytes.
    static func message(_ bytes: [UInt8], compressed: Bool = false, claimedLength: Int? = nil) -> [UInt8] {
        let length = claimedLength ?? bytes.count
        return [compressed ? 1 : 0, UInt8(length >> 24 & 0xFF), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + bytes
    }

    /// A whole call: headers, then the message in one DATA frame that ends the stream.
    static func call(_ stream: UInt32, path: String, message: [UInt8], extra: [(String, String)] = []) -> [UInt8] {
        callHeaders(stream, path: path, extra: extra) + frame(Frame.data, 0x1, stream, message)
    }

    static func reset(_ stream: UInt32) -> [UInt8] { frame(Frame.reset, 0, stream, [0, 0, 0, 8]) }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 {
                closed = true
                return
            }
            offset += sent
        }
    }

    /// The frames the server sends until `done` says enough, the connection closes, or `seconds` pass.
    func frames(for seconds: Double, until done: ([Frame]) -> Bool = { _ in false }) -> [Frame] {
        var frames: [Frame] = []
        let deadline = Date().addingTimeInterval(seconds)
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while Date() < deadline && !closed && !done(frames) {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count == 0 { closed = true }
            if count > 0 { received += buffer[0..<count] }
            while received.count >= 9 {
                let length = Int(received[0]) << 16 | Int(received[1]) << 8 | Int(received[2])
                guard received.count >= 9 + length else { break }
                let stream = UInt32(received[5] & 0x7F) << 24 | UInt32(received[6]) << 16 | UInt32(received[7]) << 8 | UInt32(received[8])
                frames.append(Frame(type: received[3], flags: received[4], stream: stream, payload: Array(received[9..<(9 + length)])))
                received.removeFirst(9 + length)
            }
        }
        return frames
    }

    /// Whether `stream` ended (headers or data with END_STREAM, or a reset) among `frames`, or the connection went away.
    static func ended(_ stream: UInt32, in frames: [Frame]) -> Bool {
        frames.contains { ($0.stream == stream && ($0.endsStream || $0.type == Frame.reset)) || $0.type == Frame.goAway }
    }

    /// Whether `stream` was answered with a message.
    static func answered(_ stream: UInt32, in frames: [Frame]) -> Bool {
        frames.contains { $0.stream == stream && $0.type == Frame.data && !$0.payload.isEmpty }
    }
}
