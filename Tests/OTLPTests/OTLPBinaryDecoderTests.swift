import Foundation
import SwiftProtobuf
import Testing

@testable import OTLP

/// The gateway's protobuf decoder (`OTLPBinaryDecoder`) against swift-protobuf's own, on the same bytes: random OTLP
/// requests of every field kind, the same bytes damaged in random ways, and the wire format's corners (packed and
/// unpacked lists, unknown fields of every wire type, a field sent with another wire type, maps, closed enums, nesting
/// past the limit, bad UTF-8). Both must give the same message, or fail with the same error.
@Suite("OTLP binary decoder against swift-protobuf's")
struct OTLPBinaryDecoderTests {
    /// A seeded generator (SplitMix64): every run sees the same cases, a failure can be replayed.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    enum Outcome<M: Message & Equatable>: Equatable {
        case decoded(M)
        case failed(String)

        /// Messages equal, or of the same bytes (a damaged double may be NaN, which equals nothing).
        static func == (left: Outcome, right: Outcome) -> Bool {
            switch (left, right) {
            case (.decoded(let a), .decoded(let b)): a == b || (try? a.serializedBytes() as [UInt8]) == (try? b.serializedBytes() as [UInt8])
            case (.failed(let a), .failed(let b)): a == b
            default: false
            }
        }
    }

    static func ours<M: Message & Equatable>(_ type: M.Type, _ bytes: [UInt8]) -> Outcome<M> {
        do {
            return .decoded(try bytes.withUnsafeBytes { try OTLPBinaryDecoder.decode(type, from: $0, depthLimit: OTLPEncoding.depthLimit) })
        } catch {
            return .failed("\(error)")
        }
    }

    static func theirs<M: Message & Equatable>(_ type: M.Type, _ bytes: [UInt8]) -> Outcome<M> {
        var options = BinaryDecodingOptions()
        options.messageDepthLimit = OTLPEncoding.depthLimit
        options.discardUnknownFields = true
        do {
            return .decoded(try M(serializedBytes: bytes, options: options))
        } catch {
            return .failed("\(error)")
        }
    }

    static func bytes(_ message: some Message) throws -> [UInt8] { try message.serializedBytes() }

    // MARK: Random requests

    static func text(_ random: inout Seeded) -> String {
        let pieces = ["", "a", "service.name", "é", "日本", "🙂", "x y", "\u{0}", String(repeating: "z", count: 200)]
        return (0..<Int.random(in: 0...3, using: &random)).map { _ in pieces.randomElement(using: &random)! }.joined()
    }

    static func value(_ random: inout Seeded, depth: Int) -> OTLPAnyValue {
        var value = OTLPAnyValue()
        switch Int.random(in: 0...(depth > 0 ? 7 : 5), using: &random) {
        case 0: value.value = nil
        case 1: value.stringValue = text(&random)
        case 2: value.boolValue = Bool.random(using: &random)
        case 3: value.intValue = Int64.random(in: .min ... .max, using: &random)
        case 4: value.doubleValue = [0, -0.0, 1.5, .infinity, -1e300, .leastNonzeroMagnitude].randomElement(using: &random)!
        case 5: value.bytesValue = Data((0..<Int.random(in: 0...20, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) })
        case 6: value.arrayValue.values = (0..<Int.random(in: 0...3, using: &random)).map { _ in Self.value(&random, depth: depth - 1) }
        default: value.kvlistValue.values = attributes(&random, depth: depth - 1)
        }
        return value
    }

    static func attributes(_ random: inout Seeded, depth: Int = 2) -> [OTLPKeyValue] {
        (0..<Int.random(in: 0...3, using: &random)).map { _ in
            var attribute = OTLPKeyValue()
            attribute.key = text(&random)
            if Bool.random(using: &random) { attribute.value = value(&random, depth: depth) }
            return attribute
        }
    }

    static func logs(_ random: inout Seeded) -> OTLPExportLogsServiceRequest {
        var request = OTLPExportLogsServiceRequest()
        request.resourceLogs = (0..<Int.random(in: 0...2, using: &random)).map { _ in
            var resourceLogs = OTLPResourceLogs()
            if Bool.random(using: &random) { resourceLogs.resource.attributes = attributes(&random) }
            resourceLogs.scopeLogs = (0..<Int.random(in: 0...2, using: &random)).map { _ in
                var scopeLogs = OTLPScopeLogs()
                if Bool.random(using: &random) {
                    scopeLogs.scope.name = text(&random)
                    scopeLogs.scope.version = text(&random)
                    scopeLogs.scope.attributes = attributes(&random)
                }
                scopeLogs.logRecords = (0..<Int.random(in: 0...3, using: &random)).map { _ in
                    var record = OTLPLogRecord()
                    record.timeUnixNano = UInt64.random(in: 0 ... .max, using: &random)
                    if Bool.random(using: &random) { record.observedTimeUnixNano = UInt64.random(in: 0 ... .max, using: &random) }
                    record.severityNumber = OTLPSeverityNumber(rawValue: Int.random(in: -3...30, using: &random))!
                    record.severityText = text(&random)
                    if Bool.random(using: &random) { record.body = value(&random, depth: 3) }
                    record.attributes = attributes(&random)
                    record.flags = UInt32.random(in: 0 ... .max, using: &random)
                    record.traceID = Data((0..<[0, 16, 3].randomElement(using: &random)!).map { UInt8($0) })
                    record.spanID = Data((0..<[0, 8].randomElement(using: &random)!).map { UInt8($0 + 7) })
                    record.eventName = text(&random)
                    return record
                }
                return scopeLogs
            }
            return resourceLogs
        }
        return request
    }

    static func point(_ random: inout Seeded) -> OTLPNumberDataPoint {
        var point = OTLPNumberDataPoint()
        point.attributes = attributes(&random)
        point.startTimeUnixNano = UInt64.random(in: 0 ... .max, using: &random)
        point.timeUnixNano = UInt64.random(in: 0 ... .max, using: &random)
        switch Int.random(in: 0...2, using: &random) {
        case 0: point.asDouble = Double.random(in: -1e9...1e9, using: &random)
        case 1: point.asInt = Int64.random(in: .min ... .max, using: &random)
        default: break
        }
        point.flags = UInt32.random(in: 0...3, using: &random)
        return point
    }

    static func metrics(_ random: inout Seeded) -> OTLPExportMetricsServiceRequest {
        var request = OTLPExportMetricsServiceRequest()
        var resourceMetrics = OTLPResourceMetrics()
        resourceMetrics.resource.attributes = attributes(&random)
        var scopeMetrics = OTLPScopeMetrics()
        scopeMetrics.metrics = (0..<Int.random(in: 0...5, using: &random)).map { _ in
            var metric = OTLPMetric()
            metric.name = text(&random)
            metric.unit = text(&random)
            metric.description_p = text(&random)
            let temporality = OTLPAggregationTemporality(rawValue: Int.random(in: 0...3, using: &random))!
            switch Int.random(in: 0...5, using: &random) {
            case 0: metric.gauge.dataPoints = [point(&random), point(&random)]
            case 1:
                metric.sum.dataPoints = [point(&random)]
                metric.sum.isMonotonic = Bool.random(using: &random)
                metric.sum.aggregationTemporality = temporality
            case 2:
                var point = OTLPHistogramDataPoint()
                point.count = UInt64.random(in: 0 ... .max, using: &random)
                if Bool.random(using: &random) { point.sum = 2.5 }
                if Bool.random(using: &random) { point.min = -1 }
                if Bool.random(using: &random) { point.max = 0 }
                point.attributes = attributes(&random)
                metric.histogram.dataPoints = [point]
                metric.histogram.aggregationTemporality = temporality
            case 3:
                var point = OTLPExponentialHistogramDataPoint()
                point.count = 7
                point.sum = 3
                point.flags = 1
                metric.exponentialHistogram.dataPoints = [point]
            case 4:
                var point = OTLPSummaryDataPoint()
                point.count = 3
                point.sum = 9
                point.quantileValues = (0..<Int.random(in: 0...3, using: &random)).map { index in
                    var quantile = OTLPSummaryDataPoint.ValueAtQuantile()
                    quantile.quantile = Double(index) / 2
                    quantile.value = Double(index)
                    return quantile
                }
                metric.summary.dataPoints = [point]
            default: break
            }
            return metric
        }
        resourceMetrics.scopeMetrics = [scopeMetrics]
        request.resourceMetrics = [resourceMetrics]
        return request
    }

    @Test("random logs and metrics requests decode to the messages sent")
    func randomRequests() throws {
        var random = Seeded(state: 1)
        for _ in 0..<300 {
            let logs = Self.logs(&random)
            #expect(Self.ours(OTLPExportLogsServiceRequest.self, try Self.bytes(logs)) == .decoded(logs))
            let metrics = Self.metrics(&random)
            #expect(Self.ours(OTLPExportMetricsServiceRequest.self, try Self.bytes(metrics)) == .decoded(metrics))
        }
    }

    /// Cut short, a byte changed, random bytes put in, a run of 0xFF (an endless varint): each outcome swift-protobuf's.
    @Test("damaged bytes decode, or fail, as swift-protobuf's decoder says")
    func damagedBytes() throws {
        var random = Seeded(state: 2)
        var failures = 0
        for round in 0..<3000 {
            var bytes = round % 2 == 0 ? try Self.bytes(Self.logs(&random)) : try Self.bytes(Self.metrics(&random))
            guard !bytes.isEmpty else { continue }
            let at = Int.random(in: 0..<bytes.count, using: &random)
            switch round % 4 {
            case 0: bytes.removeSubrange(at...)
            case 1: bytes[at] ^= UInt8.random(in: 1...255, using: &random)
            case 2: bytes.insert(contentsOf: (0..<Int.random(in: 1...4, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }, at: at)
            default: bytes.replaceSubrange(at..<min(at + 3, bytes.count), with: repeatElement(0xFF, count: 11))
            }
            if round % 2 == 0 {
                let ours = Self.ours(OTLPExportLogsServiceRequest.self, bytes)
                #expect(ours == Self.theirs(OTLPExportLogsServiceRequest.self, bytes), "round \(round): \(bytes)")
                if case .failed = ours { failures += 1 }
            } else {
                let ours = Self.ours(OTLPExportMetricsServiceRequest.self, bytes)
                #expect(ours == Self.theirs(OTLPExportMetricsServiceRequest.self, bytes), "round \(round): \(bytes)")
                if case .failed = ours { failures += 1 }
            }
        }
        // Both outcomes are well represented: damage is not always fatal, nor never.
        #expect(failures > 500 && failures < 2900)
    }

    /// A tag: field number and wire type as a varint.
    static func tag(_ field: Int, _ wireType: Int) -> [UInt8] { varint(UInt64(field << 3 | wireType)) }

    static func varint(_ value: UInt64) -> [UInt8] {
        var value = value
        var bytes: [UInt8] = []
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        return bytes + [UInt8(value)]
    }

    @Test("unknown fields of every wire type are skipped, nested groups too")
    func unknownFields() throws {
        var record = OTLPLogRecord()
        record.severityText = "WARN"
        record.body.stringValue = "kept"
        let known = try Self.bytes(record)
        let unknown: [UInt8] =
            Self.tag(90, 0) + Self.varint(.max) + Self.tag(91, 1) + Array(repeating: 7, count: 8) + Self.tag(92, 5) + [1, 2, 3, 4]
            + Self.tag(93, 2) + Self.varint(3) + [9, 9, 9] + Self.tag(94, 3) + Self.tag(1, 0) + [5] + Self.tag(95, 3) + Self.tag(2, 2)
            + [0] + Self.tag(95, 4) + Self.tag(94, 4)
        for bytes in [unknown + known, known + unknown, Array(known.prefix(6)) + unknown + known.dropFirst(6)] {
            #expect(Self.ours(OTLPLogRecord.self, bytes) == .decoded(record))
            #expect(Self.theirs(OTLPLogRecord.self, bytes) == .decoded(record))
        }
        // A group closed by another field's end tag, or never closed.
        for bytes in [Self.tag(94, 3) + Self.tag(95, 4), Self.tag(94, 3) + Self.tag(1, 0) + [5]] {
            #expect(Self.ours(OTLPLogRecord.self, bytes) == Self.theirs(OTLPLogRecord.self, bytes))
            #expect(Self.ours(OTLPLogRecord.self, bytes) != .decoded(OTLPLogRecord()))
        }
    }

    @Test("a field sent with another wire type than declared is skipped; a later value replaces an earlier one")
    func wireTypesAndRepeats() throws {
        // severity_text (3, a string) as a varint; time_unix_nano (1, fixed64) as a varint; then the real ones, twice.
        var record = OTLPLogRecord()
        record.severityText = "second"
        record.timeUnixNano = 42
        let first = try Self.bytes(
            OTLPLogRecord.with {
                $0.severityText = "first"
                $0.timeUnixNano = 1
            })
        let bytes = Self.tag(3, 0) + [1] + Self.tag(1, 0) + [5] + first + (try Self.bytes(record))
        #expect(Self.ours(OTLPLogRecord.self, bytes) == .decoded(record))
        #expect(Self.theirs(OTLPLogRecord.self, bytes) == .decoded(record))
        // A message field sent twice is merged.
        let body = Self.tag(5, 2) + Self.varint(3) + Self.tag(2, 0) + [1] + Self.tag(6, 2) + Self.varint(2) + Self.tag(1, 2) + [0]
        #expect(Self.ours(OTLPLogRecord.self, body) == Self.theirs(OTLPLogRecord.self, body))
    }

    @Test("repeated scalars packed and not, closed enums, maps, extensions: as swift-protobuf reads them")
    func otherFieldKinds() throws {
        // SourceCodeInfo.Location: repeated int32 path, packed; span, not; extensions declared on SourceCodeInfo.
        let packed = try Self.bytes(
            Google_Protobuf_SourceCodeInfo.Location.with {
                $0.path = [1, -2, 300, .max]; $0.span = [4, 5, 6]
            })
        let unpacked = Self.tag(1, 0) + Self.varint(1) + Self.tag(1, 2) + Self.varint(2) + Self.varint(3) + Self.varint(4)
        for bytes in [packed, unpacked, packed + unpacked] {
            let ours = Self.ours(Google_Protobuf_SourceCodeInfo.Location.self, bytes)
            #expect(ours == Self.theirs(Google_Protobuf_SourceCodeInfo.Location.self, bytes))
            guard case .decoded = ours else {
                Issue.record("\(bytes) not decoded: \(ours)")
                continue
            }
        }
        // A closed enum's unknown value is skipped, a known one read.
        let field = try Self.bytes(
            Google_Protobuf_FieldDescriptorProto.with {
                $0.type = .string; $0.number = 7; $0.name = "n"
            })
        for bytes in [field, field + Self.tag(5, 0) + [99], field + Self.tag(5, 0) + [8]] {
            #expect(Self.ours(Google_Protobuf_FieldDescriptorProto.self, bytes) == Self.theirs(Google_Protobuf_FieldDescriptorProto.self, bytes))
        }
        // A map of messages (Struct), entries without a key or a value, a repeated key.
        let structure = try Google_Protobuf_Struct(jsonString: #"{"a":1,"b":{"c":[true,null,"x"]}}"#)
        let entries = try Self.bytes(structure) + Self.tag(1, 2) + Self.varint(0) + Self.tag(1, 2) + Self.varint(3) + Self.tag(1, 2) + [1, 0x7A]
        let ours = Self.ours(Google_Protobuf_Struct.self, entries)
        #expect(ours == Self.theirs(Google_Protobuf_Struct.self, entries))
        if case .decoded(let decoded) = ours { #expect(decoded.fields.keys.sorted() == ["", "a", "b", "z"]) } else { Issue.record("\(ours)") }
    }

    static func nested(_ depth: Int) -> OTLPAnyValue {
        var value = OTLPAnyValue()
        value.stringValue = "leaf"
        for _ in 0..<depth {
            var outer = OTLPAnyValue()
            outer.arrayValue.values = [value]
            value = outer
        }
        return value
    }

    @Test("nesting: at the limit decoded, past it refused; bad UTF-8 and lengths refused as swift-protobuf refuses them")
    func limits() throws {
        for depth in [30, 31, 32, 100] {
            let bytes = try Self.bytes(OTLPLogRecord.with { $0.body = Self.nested(depth) })
            #expect(Self.ours(OTLPLogRecord.self, bytes) == Self.theirs(OTLPLogRecord.self, bytes), "depth \(depth)")
        }
        #expect(Self.ours(OTLPLogRecord.self, try Self.bytes(OTLPLogRecord.with { $0.body = Self.nested(32) })) == .failed("messageDepthLimit"))
        #expect(Self.ours(OTLPLogRecord.self, try Self.bytes(OTLPLogRecord.with { $0.body = Self.nested(31) })) != .failed("messageDepthLimit"))
        let cases: [([UInt8], String)] = [
            (Self.tag(3, 2) + [2, 0xC3, 0x28], "invalidUTF8"),
            (Self.tag(3, 2) + Self.varint(1 << 32) + [1], "malformedProtobuf"),
            (Self.tag(3, 2) + [5, 1], "truncated"),
            (Self.tag(1, 1) + [1, 2, 3], "truncated"),
            (Self.tag(2, 0), "truncated"),
            (Self.tag(2, 0) + [0x80], "malformedProtobuf"),
            (Self.tag(2, 0) + Array(repeating: 0xFF, count: 11), "malformedProtobuf"),
            (Self.tag(0, 0) + [1], "malformedProtobuf"),
            (Self.tag(4, 6) + [1], "malformedProtobuf"),
            (Self.tag(4, 4), "malformedProtobuf"),
            ([0x80, 0x80, 0x80, 0x80, 0x80, 0x01], "malformedProtobuf"),
        ]
        for (bytes, error) in cases {
            #expect(Self.ours(OTLPLogRecord.self, bytes) == .failed(error), "\(bytes)")
            #expect(Self.theirs(OTLPLogRecord.self, bytes) == .failed(error), "\(bytes)")
        }
        #expect(Self.ours(OTLPLogRecord.self, []) == .decoded(OTLPLogRecord()))
    }
}
