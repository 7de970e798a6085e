import Foundation
import Shared
import SwiftProtobuf
import Testing

@testable import OTLP

/// The OTLP/JSON logs fast path (`OTLPJSONLogs`) against swift-protobuf's JSON decoder on the same bodies: random
/// requests written as exporters write them (hex ids, severities by number, 64-bit integers quoted or not), and the
/// same bodies changed in the ways that must send a body to swift-protobuf (proto names, enum names, nulls, bytes,
/// duplicate keys, a oneof twice, unknown fields). Whenever the fast path answers, its message must be swift-protobuf's.
@Suite("OTLP/JSON logs fast path against swift-protobuf's JSON decoder")
struct OTLPJSONLogsTests {
    typealias Seeded = OTLPBinaryDecoderTests.Seeded

    /// `text` as a JSON string.
    static func string(_ text: String) -> String {
        var bytes: [UInt8] = []
        JSONValue.encodeString(text, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    static func integer(_ text: String, _ random: inout Seeded) -> String { Bool.random(using: &random) ? "\"\(text)\"" : text }

    static func value(_ value: OTLPAnyValue, _ random: inout Seeded) -> String {
        switch value.value {
        case .stringValue(let text): return #"{"stringValue":\#(string(text))}"#
        case .boolValue(let flag): return #"{"boolValue":\#(flag)}"#
        case .intValue(let number): return #"{"intValue":\#(integer(String(number), &random))}"#
        case .doubleValue(let number):
            return number.isFinite ? #"{"doubleValue":\#(number)}"# : #"{"doubleValue":"\#(number > 0 ? "Infinity" : "-Infinity")"}"#
        case .bytesValue(let bytes): return #"{"bytesValue":"\#(bytes.base64EncodedString())"}"#
        case .arrayValue(let array): return #"{"arrayValue":{"values":[\#(array.values.map { Self.value($0, &random) }.joined(separator: ","))]}}"#
        case .kvlistValue(let list): return #"{"kvlistValue":{"values":\#(attributes(list.values, &random))}}"#
        case nil: return "{}"
        }
    }

    static func attributes(_ attributes: [OTLPKeyValue], _ random: inout Seeded) -> String {
        "[" + attributes.map { #"{"key":\#(string($0.key))\#($0.hasValue ? ",\"value\":" + value($0.value, &random) : "")}"# }.joined(separator: ",") + "]"
    }

    static func hex(_ data: Data) -> String { data.map { String(format: "%02x", $0) }.joined() }

    /// The request as an OpenTelemetry exporter writes OTLP/JSON.
    static func json(_ request: OTLPExportLogsServiceRequest, _ random: inout Seeded) -> String {
        let resources = request.resourceLogs.map { resourceLogs in
            let scopes = resourceLogs.scopeLogs.map { scopeLogs in
                let records = scopeLogs.logRecords.map { record in
                    var fields = [
                        #""timeUnixNano":\#(integer(String(record.timeUnixNano), &random))"#, #""severityNumber":\#(record.severityNumber.rawValue)"#,
                        #""severityText":\#(string(record.severityText))"#, #""attributes":\#(attributes(record.attributes, &random))"#,
                        #""flags":\#(record.flags)"#, #""traceId":"\#(hex(record.traceID))""#, #""spanId":"\#(hex(record.spanID))""#,
                        #""eventName":\#(string(record.eventName))"#, #""droppedAttributesCount":3"#,
                    ]
                    if record.observedTimeUnixNano > 0 { fields.append(#""observedTimeUnixNano":"\#(record.observedTimeUnixNano)""#) }
                    if record.hasBody { fields.append(#""body":\#(value(record.body, &random))"#) }
                    fields.shuffle(using: &random)
                    return "{" + fields.joined(separator: ",") + "}"
                }
                let scope =
                    #"{"name":\#(string(scopeLogs.scope.name)),"version":\#(string(scopeLogs.scope.version)),"attributes":\#(attributes(scopeLogs.scope.attributes, &random))}"#
                return #"{"scope":\#(scope),"logRecords":[\#(records.joined(separator: ","))],"schemaUrl":"https://opentelemetry.io/schemas/1.21.0"}"#
            }
            return #"{"resource":{"attributes":\#(attributes(resourceLogs.resource.attributes, &random))},"scopeLogs":[\#(scopes.joined(separator: ","))]}"#
        }
        return #"{"resourceLogs":[\#(resources.joined(separator: ","))]}"#
    }

    struct Refusal: Error, Equatable {
        var message: String
    }

    static func theirs(_ body: String) -> Result<OTLPExportLogsServiceRequest, Refusal> {
        var options = JSONDecodingOptions()
        options.messageDepthLimit = OTLPEncoding.depthLimit
        options.ignoreUnknownFields = true
        do {
            return .success(try OTLPExportLogsServiceRequest(jsonUTF8Bytes: Array(body.utf8), options: options))
        } catch {
            return .failure(Refusal(message: "\(error)"))
        }
    }

    static func ours(_ body: String) -> OTLPExportLogsServiceRequest? { Array(body.utf8).withUnsafeBytes { OTLPJSONLogs.decode($0) } }

    /// Changes that send a body to swift-protobuf, or that both must read alike.
    static let changes: [(String, String)] = [
        (#""timeUnixNano""#, #""time_unix_nano""#), (#""severityNumber":9"#, #""severityNumber":"SEVERITY_NUMBER_INFO""#),
        (#""severityText":"#, #""severityText":null,"x":"#), (#""scopeLogs""#, #""scope_logs""#), (#""flags":"#, #""flags":-"#),
        (#""stringValue""#, #""stringValue":"a","boolValue":true,"x""#), (#""traceId":""#, #""traceId":"zz"#),
        (#""resourceLogs""#, #""unknown":{"a":[1,{"b":null}]},"resourceLogs""#), (#""logRecords":[{"#, #""logRecords":[{"flags":1,"#),
        (#""intValue":"#, #""intValue":1e3,"x":"#), (#""doubleValue":"#, #""doubleValue":"NaN","y":"#), ("}", "}   "),
    ]

    @Test("random exporters' bodies: the fast path answers, with swift-protobuf's message")
    func randomBodies() throws {
        var random = Seeded(state: 29)
        var (taken, compared) = (0, 0)
        for _ in 0..<400 {
            var request = OTLPBinaryDecoderTests.logs(&random)
            // As exporters send them: ids of their length (or none), known severities.
            for r in request.resourceLogs.indices {
                for s in request.resourceLogs[r].scopeLogs.indices {
                    for l in request.resourceLogs[r].scopeLogs[s].logRecords.indices {
                        request.resourceLogs[r].scopeLogs[s].logRecords[l].severityNumber = OTLPSeverityNumber(
                            rawValue: Int.random(in: 0...24, using: &random))!
                        if request.resourceLogs[r].scopeLogs[s].logRecords[l].traceID.count == 3 {
                            request.resourceLogs[r].scopeLogs[s].logRecords[l].traceID = Data()
                        }
                    }
                }
            }
            let body = Self.json(request, &random)
            let expected = Self.theirs(body)
            guard case .success(let message) = expected else {
                Issue.record("swift-protobuf refused an exporter's body: \(expected)\n\(body.prefix(500))")
                continue
            }
            compared += 1
            if let fast = Self.ours(body) {
                taken += 1
                #expect(fast == message, "\(body.prefix(800))")
            }
        }
        // Bytes values, non-finite doubles and deep values go to swift-protobuf; most bodies do not hold any.
        #expect(taken * 3 >= compared, "the fast path took \(taken) of \(compared) bodies")
    }

    @Test("changed bodies: the fast path declines or agrees with swift-protobuf")
    func changedBodies() throws {
        var random = Seeded(state: 30)
        var declined = 0
        for index in 0..<600 {
            let request = OTLPBinaryDecoderTests.logs(&random)
            var body = Self.json(request, &random)
            let (from, to) = Self.changes[index % Self.changes.count]
            if let range = body.range(of: from) { body.replaceSubrange(range, with: to) }
            guard let fast = Self.ours(body) else {
                declined += 1
                continue
            }
            guard case .success(let message) = Self.theirs(body) else {
                Issue.record("the fast path took a body swift-protobuf refuses: \(Self.theirs(body))\n\(body.prefix(800))")
                continue
            }
            #expect(fast == message, "\(body.prefix(800))")
        }
        #expect(declined > 100)
    }

    @Test("the bench's body and a Collector's take the fast path")
    func exportersBodies() throws {
        let collector = #"""
            {"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}},{"key":"host.name","value":{"stringValue":"web-1"}}]},"scopeLogs":[{"scope":{"name":"otel.collector","version":"0.110.0"},"logRecords":[{"timeUnixNano":"1733479200000000000","observedTimeUnixNano":"1733479200000000001","severityNumber":17,"severityText":"ERROR","body":{"stringValue":"payment failed"},"attributes":[{"key":"order.id","value":{"intValue":"42"}},{"key":"retry","value":{"boolValue":false}},{"key":"ratio","value":{"doubleValue":0.25}},{"key":"tags","value":{"arrayValue":{"values":[{"stringValue":"a"}]}}},{"key":"ctx","value":{"kvlistValue":{"values":[{"key":"k","value":{"stringValue":"v"}}]}}}],"droppedAttributesCount":0,"flags":1,"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}],"schemaUrl":"https://opentelemetry.io/schemas/1.21.0"}]}
            """#
        let fast = try #require(Self.ours(collector))
        #expect(Self.theirs(collector) == .success(fast))
        #expect(fast.resourceLogs[0].scopeLogs[0].logRecords[0].severityNumber == .error)
    }
}
