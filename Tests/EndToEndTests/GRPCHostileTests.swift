import Foundation
import OTLP
import Shared
import SwiftProtobuf
import TestSupport
import Testing

/// The hostile corpus's gRPC cases against a running gateway, over raw HTTP/2 (`RawHTTP2`): each is refused (its
/// stream ended without a message, or the connection closed), and the gateway stays up, with bounded memory, and
/// answers a valid export on another connection meanwhile and after.
@Suite("End to end: hostile gRPC calls", .serialized)
struct GRPCHostileTests {
    static let export = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
    static let auth = [("x-api-key", Cluster.serverKey), ("x-organization-id", "acme")]

    static func validMessage() throws -> [UInt8] {
        var record = OTLPLogRecord()
        record.body.stringValue = "hostile-\(UUID().uuidString.prefix(8))"
        var service = OTLPKeyValue()
        service.key = "service.name"
        service.value.stringValue = "grpc-hostile"
        var scope = OTLPScopeLogs()
        scope.logRecords = [record]
        var resource = OTLPResourceLogs()
        resource.resource.attributes = [service]
        resource.scopeLogs = [scope]
        var request = OTLPExportLogsServiceRequest()
        request.resourceLogs = [resource]
        return RawHTTP2.message(try request.serializedBytes())
    }

    /// A valid export on a connection of its own is answered with a message.
    static func validExportIsAnswered(port: Int) throws -> Bool {
        let connection = try #require(RawHTTP2(port: port))
        connection.send(RawHTTP2.call(1, path: export, message: try validMessage(), extra: auth))
        let frames = connection.frames(for: 10) { RawHTTP2.ended(1, in: $0) }
        return RawHTTP2.answered(1, in: frames) && RawHTTP2.ended(1, in: frames)
    }

    static func residentMegabytes(_ pid: pid_t) -> Double {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1_024
    }

    @Test func everyHostileCallIsRefusedAndTheGatewayServesOthers() async throws {
        let cluster = try Cluster()
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let grpcPort = try RedisServer.freePort()
        let port = try await cluster.startGateway([
            "OPERYN_GRPC_PORT": "\(grpcPort)", "OPERYN_HEADER_TIMEOUT_MS": "500", "OPERYN_BODY_TIMEOUT_MS": "500", "OPERYN_MAX_BATCH_BODY_BYTES": "65536",
        ])
        for _ in 0..<100 where !RedisServer.accepts(port: grpcPort) { try await Task.sleep(for: .milliseconds(50)) }
        let pid = try #require(cluster.pid("gateway-\(port)"))
        #expect(try Self.validExportIsAnswered(port: grpcPort), "the baseline: a valid export")
        let startRSS = Self.residentMegabytes(pid)

        // A message flagged compressed on a call without grpc-encoding, and a call in an encoding the server lacks.
        for (name, bytes, extra) in [
            ("compressed flag without an encoding", RawHTTP2.message(Array(try Self.validMessage().dropFirst(5)), compressed: true), Self.auth),
            ("grpc-encoding snappy", try Self.validMessage(), Self.auth + [("grpc-encoding", "snappy")]),
            ("a message cut short", Array(try Self.validMessage().dropLast(4)), Self.auth),
            ("a message claiming 100 MB", RawHTTP2.message(Array(repeating: 0x0A, count: 64), claimedLength: 100 << 20), Self.auth),
        ] {
            let connection = try #require(RawHTTP2(port: grpcPort))
            connection.send(RawHTTP2.call(1, path: Self.export, message: bytes, extra: extra))
            let frames = connection.frames(for: 10) { RawHTTP2.ended(1, in: $0) }
            #expect(RawHTTP2.ended(1, in: frames) || connection.closed, "\(name): the call ends")
            #expect(!RawHTTP2.answered(1, in: frames), "\(name): no export response")
        }

        // A stream whose message never comes: ended after the message timeout, its slot freed.
        let stalled = try #require(RawHTTP2(port: grpcPort))
        stalled.send(RawHTTP2.callHeaders(1, path: Self.export, extra: Self.auth))
        #expect(try Self.validExportIsAnswered(port: grpcPort), "served meanwhile")
        let stalledFrames = stalled.frames(for: 5) { RawHTTP2.ended(1, in: $0) }
        #expect(RawHTTP2.ended(1, in: stalledFrames), "a stalled stream is ended by the gateway")

        // Streams past the cap of 100 per connection, all stalled: refused beyond the cap, and all ended in time.
        let crowded = try #require(RawHTTP2(port: grpcPort))
        crowded.send((0..<300).flatMap { RawHTTP2.callHeaders(UInt32(2 * $0 + 1), path: Self.export, extra: Self.auth) })
        #expect(try Self.validExportIsAnswered(port: grpcPort), "served meanwhile")
        let crowdedFrames = crowded.frames(for: 8) { frames in (0..<300).allSatisfy { RawHTTP2.ended(UInt32(2 * $0 + 1), in: frames) } }
        #expect(crowded.closed || (0..<300).allSatisfy { RawHTTP2.ended(UInt32(2 * $0 + 1), in: crowdedFrames) }, "every stream ends")
        #expect(
            crowded.closed || crowdedFrames.contains { $0.type == RawHTTP2.Frame.reset || $0.type == RawHTTP2.Frame.goAway },
            "streams over the cap are refused")

        // A rapid reset flood (CVE-2023-44487's pattern): streams opened and cancelled at once, thousands of them.
        let flood = try #require(RawHTTP2(port: grpcPort))
        for batch in 0..<20 {
            flood.send(
                (0..<250).flatMap { index -> [UInt8] in
                    let stream = UInt32(2 * (batch * 250 + index) + 1)
                    return RawHTTP2.callHeaders(stream, path: Self.export, extra: Self.auth) + RawHTTP2.reset(stream)
                })
            if flood.closed { break }
        }
        let floodFrames = flood.frames(for: 5) { $0.contains { $0.type == RawHTTP2.Frame.goAway } }
        #expect(flood.closed || floodFrames.contains { $0.type == RawHTTP2.Frame.goAway }, "the flooding connection is sent away")
        #expect(try Self.validExportIsAnswered(port: grpcPort), "served after the flood")

        #expect(kill(pid, 0) == 0, "the gateway is up")
        let endRSS = Self.residentMegabytes(pid)
        print("[hostile gRPC] gateway RSS \(startRSS) MB before, \(endRSS) MB after")
        #expect(endRSS < startRSS + 64, "memory stays bounded: \(startRSS) → \(endRSS) MB")
        passed = true
    }
}
