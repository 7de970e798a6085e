import Foundation
import Hummingbird
import HummingbirdTesting
import Shared
import TestSupport
import Testing

@testable import Gateway

/// `docs/openapi.json` is the document the gateway serves at `GET /openapi.json` (default limits), so the repository's
/// API description can never drift from the code. After changing the API, rewrite it with
/// `OPERYN_WRITE_OPENAPI=1 scripts/test.sh --filter OpenAPIFileTests`.
@Suite("docs/openapi.json")
struct OpenAPIFileTests {
    static let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/openapi.json")

    @Test func theCommittedDocumentIsWhatTheGatewayServes() async throws {
        try await TestGateway().application.test(.router) { client in
            let response = try await client.execute(uri: "/openapi.json", method: .get)
            let served = try JSONParser.parse(Array(response.body.readableBytesView))
            if ProcessInfo.processInfo.environment["OPERYN_WRITE_OPENAPI"] == "1" {
                try Data(served.prettyPrinted().utf8).write(to: Self.file)
            }
            let committed = try JSONParser.parse(Array(try Data(contentsOf: Self.file)))
            #expect(committed == served, "docs/openapi.json differs from GET /openapi.json: rewrite it (see this suite's comment)")
        }
    }
}

extension JSONValue {
    /// JSON text indented by two spaces, members in their order, ending with a newline.
    func prettyPrinted() -> String {
        var output: [UInt8] = []
        write(into: &output, indent: 0)
        output.append(UInt8(ascii: "\n"))
        return String(decoding: output, as: UTF8.self)
    }

    private func write(into output: inout [UInt8], indent: Int) {
        func newline(_ level: Int) {
            output.append(UInt8(ascii: "\n"))
            output.append(contentsOf: repeatElement(UInt8(ascii: " "), count: level * 2))
        }
        switch self {
        case .array(let elements) where !elements.isEmpty:
            output.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                newline(indent + 1)
                element.write(into: &output, indent: indent + 1)
            }
            newline(indent)
            output.append(UInt8(ascii: "]"))
        case .object(let members) where !members.isEmpty:
            output.append(UInt8(ascii: "{"))
            for (index, member) in members.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                newline(indent + 1)
                JSONValue.encodeString(member.key, into: &output)
                output.append(contentsOf: ": ".utf8)
                member.value.write(into: &output, indent: indent + 1)
            }
            newline(indent)
            output.append(UInt8(ascii: "}"))
        default:
            encode(into: &output)
        }
    }
}
