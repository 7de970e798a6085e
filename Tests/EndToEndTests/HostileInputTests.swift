import CompressNIO
import Foundation
import NIOCore
import OTLP
import Shared
import TestSupport
import Testing

/// The committed corpus of hostile requests (`Tests/Fixtures/hostile-requests.json`) against a live gateway with the
/// server key and organization keys: each gets exactly its status and message, none is a 5xx, none writes to Redis.
@Suite("Hostile input against a live gateway")
struct HostileInputTests {
    struct Case {
        var name: String
        var method: String
        var path: String
        var headers: [(String, String)]
        var body: [UInt8]
        var status: Int
        var message: String?
    }

    static func loadCorpus(keys: [String: String]) throws -> [Case] {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(
            "Fixtures/hostile-requests.json")
        let document = try JSONParser.parse(Array(try Data(contentsOf: file)))
        return try document["requests"]!.elements.map { entry in
            var headers: [(String, String)] = []
            if case .object(let members) = entry["headers"] ?? .null {
                for member in members { headers.append((member.key, String(decoding: expand(member.value.text ?? "", keys), as: UTF8.self))) }
            }
            var body: [UInt8]
            if let base64 = entry["bodyBase64"]?.text {
                body = Array(Data(base64Encoded: base64) ?? Data())
            } else {
                body = expand(entry["body"]?.text ?? "", keys)
            }
            if entry["gzip"] == .bool(true) { body = try gzip(body) }
            if entry["zstd"] == .bool(true) {
                body = Zstd.compress(body)
                if let cut = entry["truncate"]?.text.flatMap({ Int($0) }) { body.removeLast(cut) }
            }
            return Case(
                name: entry["name"]?.text ?? "?", method: entry["method"]?.text ?? "POST", path: entry["path"]?.text ?? "/events/logs",
                headers: headers, body: body, status: Int(entry["status"]?.text ?? "") ?? 0, message: entry["message"]?.text)
        }
    }

    /// Replaces `{{name}}` with a key and `{{text*N}}` with `text` repeated N times, in one pass over the template.
    static func expand(_ template: String, _ keys: [String: String]) -> [UInt8] {
        let source = Array(template.utf8)
        var output: [UInt8] = []
        var index = 0
        while index < source.count {
            guard source[index] == UInt8(ascii: "{"), index + 1 < source.count, source[index + 1] == UInt8(ascii: "{"),
                let close = (index + 2..<max(index + 2, source.count - 1)).first(where: {
                    source[$0] == UInt8(ascii: "}") && source[$0 + 1] == UInt8(ascii: "}")
                })
            else {
                output.append(source[index])
                index += 1
                continue
            }
            let inner = Array(source[(index + 2)..<close])
            if let key = keys[String(decoding: inner, as: UTF8.self)] {
                output.append(contentsOf: key.utf8)
            } else if let star = inner.lastIndex(of: UInt8(ascii: "*")), let count = Int(String(decoding: inner[(star + 1)...], as: UTF8.self)) {
                output.reserveCapacity(output.count + star * count)
                for _ in 0..<count { output.append(contentsOf: inner[..<star]) }
            } else {
                output.append(contentsOf: source[index..<(close + 2)])
            }
            index = close + 2
        }
        return output
    }

    static func gzip(_ bytes: [UInt8]) throws -> [UInt8] {
        var buffer = ByteBuffer(bytes: bytes)
        let compressed = try buffer.compress(with: .gzip())
        return Array(compressed.readableBytesView)
    }

    /// A bulk answer's reason: the request's error, or the first item's.
    static func bulkReason(_ answer: JSONValue?) -> String? {
        if let reason = answer?["error"]?["reason"]?.text { return reason }
        guard case .array(let items)? = answer?["items"], case .object(let members)? = items.first else { return nil }
        return members.first?.value["error"]?["reason"]?.text
    }

    @Test func everyHostileRequestGetsItsClearAnswerAndWritesNothing() async throws {
        let cluster = try Cluster()
        var passed = false
        defer { cluster.tearDown(keep: !passed) }
        let port = try await cluster.startGateway(["OPERYN_AUTH_FAILURE_LIMIT": "0", "OPERYN_RATE_EVENTS_PER_SECOND": "1000"])
        let acme = try #require(try cluster.adminJSON("keys", "create", "acme")["key"]?.text)
        let revoked = try cluster.adminJSON("keys", "create", "acme")
        #expect(try cluster.admin("keys", "revoke", "acme", try #require(revoked["id"]?.text)).status == 0)
        let corpus = try Self.loadCorpus(keys: [
            "serverKey": Cluster.serverKey, "acmeKey": acme, "revokedKey": try #require(revoked["key"]?.text),
            "acmeBasicAsGlobex": Data("globex:\(acme)".utf8).base64EncodedString(),
        ])
        #expect(corpus.count >= 60)
        try await Task.sleep(for: .milliseconds(400))  // past the gateway's key cache

        var recorded: [String] = []
        for entry in corpus {
            let response = RawHTTP.send(port: port, RawHTTP.request(method: entry.method, path: entry.path, headers: entry.headers, body: entry.body))
            let status = response?.status ?? 0
            let protobuf = response?.contentType == "application/x-protobuf" && status >= 400
            let bulk = entry.path.hasSuffix("/_bulk")
            let json = try? JSONParser.parse(Array((response?.body ?? "").utf8))
            let message =
                protobuf
                ? (try? RPCStatus(serializedBytes: response?.bytes ?? [])).map(\.message)
                : bulk ? Self.bulkReason(json) : json?["message"]?.text
            recorded.append("\(entry.name)\t\(status)\t\(message ?? "<none: \(response?.body.prefix(80) ?? "no answer")>")")
            #expect(status == entry.status, "\(entry.name): \(status) \(response?.body.prefix(200) ?? "no answer")")
            #expect(!(500..<600).contains(status), "\(entry.name) is never a server error")
            #expect(message == entry.message, "\(entry.name)")
            if message != nil && entry.path.hasPrefix("/v1/") && status != 405 {
                // OTLP/HTTP's error shape: a google.rpc.Status in the request's encoding, with the gRPC code.
                let code =
                    protobuf
                    ? (try RPCStatus(serializedBytes: response!.bytes)).code : Int32(try JSONParser.parse(Array(response!.body.utf8))["code"]?.text ?? "")
                #expect(code != nil && code != 0, "\(entry.name): a google.rpc.Status with its code")
            } else if bulk {
                // Elasticsearch's shapes: an error with its status, or the items' answer.
                #expect(json?["status"]?.text == String(status) || (status == 200 && json?["errors"] == .bool(true)), "\(entry.name)")
            } else if message != nil {
                let body = try JSONParser.parse(Array(response!.body.utf8))
                #expect(body["statusCode"]?.text == String(status), "\(entry.name): the spec's error shape")
            }
        }
        if let path = ProcessInfo.processInfo.environment["OPERYN_RECORD_CORPUS"] {
            try recorded.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        }

        // Nothing reached the streams, and the gateway still serves.
        let redis = try cluster.redis()
        defer { redis.shutdown() }
        for stream in cluster.keys.allStreams { #expect(try await redis.send(XLEN(stream)) == 0, "\(stream) is empty") }
        let valid = RawHTTP.send(
            port: port,
            RawHTTP.request(
                method: "POST", path: "/events/logs", headers: [("content-type", "application/json"), ("x-api-key", Cluster.serverKey)],
                body: Array(#"{"service":"svc","level":"info","message":"after"}"#.utf8)))
        #expect(valid?.status == 202)
        passed = true
    }
}
