import CompressNIO
import Foundation
import HTTPTypes
import NIOCore
import OTLP
import Shared
import SwiftProtobuf
import Testing

@testable import Gateway

/// `POST /v1/logs` and `/v1/metrics` in process: every mapping rule, partial success, every refusal, in both encodings.
@Suite("OTLP/HTTP routes (in-process, in-memory publisher)")
struct OTLPRouteTests {
    static let protobuf: HTTPFields = [.contentType: "application/x-protobuf", .organizationID: "acme"]
    static let json: HTTPFields = [.contentType: "application/json", .organizationID: "acme"]
    static let traceID = Data((0..<16).map { UInt8($0 + 0xA0) })
    static let spanID = Data((0..<8).map { UInt8($0 + 1) })

    // MARK: Builders

    static func attribute(_ key: String, _ value: OTLPAnyValue.OneOf_Value?) -> OTLPKeyValue {
        var attribute = OTLPKeyValue()
        attribute.key = key
        attribute.value.value = value
        return attribute
    }

    static func record(_ configure: (inout OTLPLogRecord) -> Void) -> OTLPLogRecord {
        var record = OTLPLogRecord()
        configure(&record)
        return record
    }

    static func logs(service: String? = "checkout", _ records: [OTLPLogRecord], scope: String = "") -> OTLPExportLogsServiceRequest {
        var scopeLogs = OTLPScopeLogs()
        scopeLogs.scope.name = scope
        scopeLogs.logRecords = records
        var resourceLogs = OTLPResourceLogs()
        if let service { resourceLogs.resource.attributes = [attribute("service.name", .stringValue(service)), attribute("host.name", .stringValue("h1"))] }
        resourceLogs.scopeLogs = [scopeLogs]
        var request = OTLPExportLogsServiceRequest()
        request.resourceLogs = [resourceLogs]
        return request
    }

    static func metrics(service: String = "checkout", _ metrics: [OTLPMetric]) -> OTLPExportMetricsServiceRequest {
        var scopeMetrics = OTLPScopeMetrics()
        scopeMetrics.metrics = metrics
        var resourceMetrics = OTLPResourceMetrics()
        resourceMetrics.resource.attributes = [attribute("service.name", .stringValue(service))]
        resourceMetrics.scopeMetrics = [scopeMetrics]
        var request = OTLPExportMetricsServiceRequest()
        request.resourceMetrics = [resourceMetrics]
        return request
    }

    static func point(_ value: OTLPNumberDataPoint.OneOf_Value?, time: UInt64 = 1_700_000_000_000_000_000, _ attributes: [OTLPKeyValue] = [])
        -> OTLPNumberDataPoint
    {
        var point = OTLPNumberDataPoint()
        point.value = value
        point.timeUnixNano = time
        point.attributes = attributes
        return point
    }

    static func metric(_ name: String, unit: String = "", _ data: OTLPMetric.OneOf_Data) -> OTLPMetric {
        var metric = OTLPMetric()
        metric.name = name
        metric.unit = unit
        metric.data = data
        return metric
    }

    static func post(_ client: GatewayTestClient, _ path: String, _ message: some SwiftProtobuf.Message, headers: HTTPFields = protobuf) async throws
        -> GatewayResponse
    {
        try await client.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(bytes: try message.serializedBytes() as [UInt8]))
    }

    func logEvents(_ gateway: TestGateway) -> [LogEvent] {
        gateway.publisher.events.compactMap { if case .log(let log) = $0.event { log } else { nil } }
    }

    // MARK: Logs

    @Test func logRecordsMapFieldByField() async throws {
        let gateway = TestGateway()
        let records = [
            Self.record {
                $0.timeUnixNano = 1_700_000_000_123_456_789
                $0.observedTimeUnixNano = 1_800_000_000_000_000_000
                $0.severityNumber = .warn
                $0.severityText = "WARN"
                $0.body.value = .stringValue("disk almost full")
                $0.traceID = Self.traceID
                $0.spanID = Self.spanID
                $0.eventName = "disk.usage"
                $0.attributes = [
                    Self.attribute("pct", .doubleValue(91.5)), Self.attribute("retries", .intValue(3)), Self.attribute("ok", .boolValue(true)),
                    Self.attribute("pct", .doubleValue(92)),
                ]
            },
            Self.record {
                $0.observedTimeUnixNano = 1_700_000_001_000_000_000
                $0.severityNumber = .trace2
                var list = OTLPKeyValueList()
                list.values = [
                    Self.attribute("id", .intValue(42)),
                    Self.attribute(
                        "tags",
                        .arrayValue(
                            OTLPArrayValue.with { $0.values = [.with { $0.value = .stringValue("a") }, .with { $0.value = .bytesValue(Data([1, 2])) }] })),
                ]
                $0.body.value = .kvlistValue(list)
            },
            Self.record { $0.severityNumber = .info4 },
            Self.record {
                $0.severityNumber = .error; $0.body.value = .doubleValue(.nan)
            },
            Self.record {
                $0.severityNumber = .fatal4; $0.body.value = .intValue(-7)
            },
            Self.record { $0.severityText = "Warning: disk" },
            Self.record { $0.severityText = "CRITICAL" },
            Self.record { $0.severityText = "" },
            Self.record {
                $0.severityNumber = .debug; $0.traceID = Data(count: 16); $0.spanID = Data(count: 8)
            },
        ]
        let response = try await gateway.test { client in try await Self.post(client, "/v1/logs", Self.logs(records, scope: "orders")) }
        #expect(response.status == .ok)
        #expect(response.headers[.contentType] == "application/x-protobuf")
        let answer = try OTLPExportLogsServiceResponse(serializedBytes: Array(response.body.readableBytesView))
        #expect(!answer.hasPartialSuccess, "everything accepted: no partial_success")

        let events = logEvents(gateway)
        try #require(events.count == records.count)
        let resource: JSONValue = ["host.name": "h1"]  // service.name is the service
        let first = events[0]
        #expect(first.service == "checkout" && first.level == .warn && first.message == "disk almost full")
        #expect(first.timestamp == Timestamp(milliseconds: 1_700_000_000_123))
        #expect(first.traceId == "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf" && first.spanId == "0102030405060708")
        #expect(
            first.metadata
                == [
                    "attributes": ["pct": .number("92"), "retries": 3, "ok": true], "resource": resource, "scope": ["name": "orders"],
                    "severityText": "WARN", "eventName": "disk.usage",
                ])
        #expect(events[1].level == .debug && events[1].message == #"{"id":42,"tags":["a","AQI="]}"#)
        #expect(events[1].timestamp == Timestamp(milliseconds: 1_700_000_001_000), "no time: the observed time")
        #expect(events[1].metadata == ["resource": resource, "scope": ["name": "orders"]])
        #expect(events[2].level == .info && events[2].message == "", "no body: an empty message")
        #expect(abs(events[2].timestamp.milliseconds - Timestamp.now.milliseconds) < 60_000, "no time at all: receipt")
        #expect(events[3].level == .error && events[3].message == #""NaN""#)
        #expect(events[4].level == .fatal && events[4].message == "-7")
        #expect(events[5].level == .warn && events[6].level == .fatal && events[7].level == .info, "unspecified: from the text, else info")
        #expect(events[8].traceId == nil && events[8].spanId == nil, "all-zero ids are no ids")
        #expect(Set(gateway.publisher.events.map(\.org)) == ["acme"])
    }

    @Test(arguments: [
        (1, LogLevel.debug), (4, .debug), (5, .debug), (8, .debug), (9, .info), (12, .info), (13, .warn), (16, .warn), (17, .error), (20, .error), (21, .fatal),
        (24, .fatal),
    ])
    func severityRanges(number: Int, level: LogLevel) {
        #expect(OTLPLogs.level(number: number, text: "ignored") == level)
    }

    @Test func severityTextWhenTheNumberIsUnspecified() {
        let cases: [(String, LogLevel)] = [
            ("trace", .debug), ("DEBUG", .debug), ("Info", .info), ("notice", .info), ("WARN", .warn), ("warning", .warn), ("err", .error),
            ("ERROR", .error), ("fatal", .fatal), ("critical", .fatal), ("emerg", .fatal), ("panic", .fatal), ("", .info), ("verbose", .info),
        ]
        for (text, level) in cases { #expect(OTLPLogs.level(number: 0, text: text) == level, "\(text)") }
        #expect(OTLPLogs.level(number: 25, text: "error") == nil)
    }

    @Test func theJSONEncodingMapsTheSame() async throws {
        let gateway = TestGateway()
        let body = """
            {"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},
             "scopeLogs":[{"scope":{"name":"orders","version":"1.2"},"logRecords":[
              {"timeUnixNano":"1700000000123456789","severityNumber":17,"severityText":"ERROR","body":{"stringValue":"boom"},
               "traceId":"A0A1A2A3A4A5A6A7A8A9AAABACADAEAF","spanId":"0102030405060708",
               "attributes":[{"key":"count","value":{"intValue":"12345678901234"}},{"key":"n","value":{"intValue":7}},
                             {"key":"x","value":{"doubleValue":1.5}}],"unknownField":{"ignored":[1,2]}},
              {"time_unix_nano":1700000000000000000,"severity_number":"SEVERITY_NUMBER_DEBUG","body":{"kvlistValue":{"values":[{"key":"a","value":{"boolValue":false}}]}}}
             ]}]}]}
            """
        let response = try await gateway.test { client in try await client.post("/v1/logs", body, headers: Self.json) }
        #expect(response.status == .ok && response.headers[.contentType] == "application/json", "\(response.text)")
        #expect(response.text == "{}")
        let events = logEvents(gateway)
        try #require(events.count == 2)
        #expect(events[0].level == .error && events[0].message == "boom" && events[0].timestamp == Timestamp(milliseconds: 1_700_000_000_123))
        #expect(events[0].traceId == "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf" && events[0].spanId == "0102030405060708", "hex ids, lowercased")
        #expect(events[0].metadata?["attributes"] == ["count": .number("12345678901234"), "n": 7, "x": .number("1.5")])
        #expect(events[0].metadata?["scope"] == ["name": "orders", "version": "1.2"])
        #expect(events[1].level == .debug && events[1].message == #"{"a":false}"# && events[1].timestamp == Timestamp(milliseconds: 1_700_000_000_000))
    }

    @Test func refusedRecordsAreCountedInPartialSuccessAndTheRestQueued() async throws {
        let gateway = TestGateway()
        var building = Self.logs([
            Self.record { $0.body.value = .stringValue("kept") },
            Self.record { $0.severityNumber = .UNRECOGNIZED(30) },
            Self.record { $0.traceID = Data([1, 2, 3]) },
            Self.record { $0.body.value = .stringValue(String(repeating: "x", count: 300)) },
            Self.record { $0.body.value = .stringValue("nul \u{0}") },
        ])
        building.resourceLogs.append(Self.logs(service: nil, [Self.record { $0.body.value = .stringValue("no service") }]).resourceLogs[0])
        let request = building
        let response = try await TestGateway(
            limits: {
                var limits = EventLimits(); limits.maxMessageBytes = 256; return limits
            }()
        ).test { client in
            try await Self.post(client, "/v1/logs", request)
        }
        _ = gateway
        #expect(response.status == .ok)
        let answer = try OTLPExportLogsServiceResponse(serializedBytes: Array(response.body.readableBytesView))
        #expect(answer.partialSuccess.rejectedLogRecords == 5)
        #expect(
            answer.partialSuccess.errorMessage
                == "5 log records rejected: resourceLogs[0].scopeLogs[0].logRecords[1]: severity_number must be 0 to 24, got 30; "
                + "resourceLogs[0].scopeLogs[0].logRecords[2]: trace_id must be 16 bytes, got 3; "
                + "resourceLogs[0].scopeLogs[0].logRecords[3]: message must be at most 256 bytes, got 300; and 2 more")
    }

    @Test func everyRecordRefusedIsStill200AndQueuesNothing() async throws {
        let gateway = TestGateway()
        let body = #"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"a"}},{"traceId":"0102"}]}]}]}"#
        let response = try await gateway.test { client in try await client.post("/v1/logs", body, headers: Self.json) }
        #expect(response.status == .ok)
        let answer = try OTLPExportLogsServiceResponse(jsonString: response.text)
        #expect(answer.partialSuccess.rejectedLogRecords == 2)
        #expect(answer.partialSuccess.errorMessage.hasSuffix("logRecords[1]: resource has no service.name attribute"))
        #expect(
            answer.partialSuccess.errorMessage.hasPrefix(
                "2 log records rejected: resourceLogs[0].scopeLogs[0].logRecords[0]: resource has no service.name attribute"))
        #expect(gateway.publisher.events.isEmpty)
        let empty = try await gateway.test { client in try await client.post("/v1/logs", "{}", headers: Self.json) }
        #expect(empty.status == .ok && empty.text == "{}", "an empty export is accepted")
    }

    @Test func aBadTraceIDInJSONIsRefusedForItsRecord() async throws {
        let gateway = TestGateway()
        let body =
            #"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"s"}}]},"scopeLogs":[{"logRecords":[{"traceId":"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"},{"spanId":"0102030405060708"}]}]}]}"#
        let response = try await gateway.test { client in try await client.post("/v1/logs", body, headers: Self.json) }
        let answer = try OTLPExportLogsServiceResponse(jsonString: response.text)
        #expect(answer.partialSuccess.rejectedLogRecords == 1)
        #expect(answer.partialSuccess.errorMessage.contains("trace_id must be 32 hexadecimal digits"))
        #expect(logEvents(gateway).map(\.spanId) == ["0102030405060708"])
        // Ids that are not even base64 text fail the JSON decoding itself: the whole body is refused.
        let notText = body.replacingOccurrences(of: "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", with: "not-hex-but-32-characters-long!!")
        let refused = try await gateway.test { client in try await client.post("/v1/logs", notText, headers: Self.json) }
        #expect(refused.status == .badRequest)
    }

    // MARK: Metrics

    @Test func dataPointsBecomeRows() async throws {
        let gateway = TestGateway()
        var histogram = OTLPHistogramDataPoint()
        histogram.count = 4
        histogram.sum = 42.5
        histogram.min = 1
        histogram.max = 30
        histogram.timeUnixNano = 1_700_000_000_000_000_000
        histogram.attributes = [Self.attribute("route", .stringValue("/buy"))]
        var bare = OTLPHistogramDataPoint()
        bare.count = 2
        var exponential = OTLPExponentialHistogramDataPoint()
        exponential.count = 3
        exponential.sum = 9
        var summary = OTLPSummaryDataPoint()
        summary.count = 10
        summary.sum = 55
        summary.quantileValues = [
            .with {
                $0.quantile = 0.5; $0.value = 5
            },
            .with {
                $0.quantile = 0.99; $0.value = 9.9
            },
        ]
        let request = Self.metrics([
            Self.metric(
                "temperature", unit: "Cel",
                .gauge(
                    .with { $0.dataPoints = [Self.point(.asDouble(21.5), [Self.attribute("room", .stringValue("a")), Self.attribute("floor", .intValue(3))])] })
            ),
            Self.metric(
                "orders", unit: "1",
                .sum(
                    .with {
                        $0.dataPoints = [Self.point(.asInt(5))]; $0.isMonotonic = true; $0.aggregationTemporality = .cumulative
                    })),
            Self.metric("latency", unit: "ms", .histogram(.with { $0.dataPoints = [histogram, bare] })),
            Self.metric("size", unit: "By", .exponentialHistogram(.with { $0.dataPoints = [exponential] })),
            Self.metric("rtt", unit: "s", .summary(.with { $0.dataPoints = [summary] })),
            OTLPMetric.with { $0.name = "no-data" },
        ])
        let response = try await gateway.test { client in try await Self.post(client, "/v1/metrics", request) }
        #expect(response.status == .ok)
        #expect(!(try OTLPExportMetricsServiceResponse(serializedBytes: Array(response.body.readableBytesView))).hasPartialSuccess)
        let rows = gateway.publisher.events.compactMap { if case .metric(let metric) = $0.event { metric } else { nil } }
        let seen = rows.map { "\($0.name) \($0.unit) \($0.value) \($0.labelsObject?.jsonText ?? "-")" }
        #expect(
            seen == [
                #"temperature Cel 21.5 {"room":"a","floor":"3"}"#, "orders 1 5.0 -",
                #"latency_count 1 4.0 {"route":"/buy"}"#, #"latency_sum ms 42.5 {"route":"/buy"}"#, #"latency_min ms 1.0 {"route":"/buy"}"#,
                #"latency_max ms 30.0 {"route":"/buy"}"#, "latency_count 1 2.0 -", "size_count 1 3.0 -", "size_sum By 9.0 -", "rtt_count 1 10.0 -",
                "rtt_sum s 55.0 -", #"rtt s 5.0 {"quantile":"0.5"}"#, #"rtt s 9.9 {"quantile":"0.99"}"#,
            ])
        #expect(rows.allSatisfy { $0.service == "checkout" })
        #expect(rows[0].timestamp == Timestamp(milliseconds: 1_700_000_000_000))
    }

    @Test func refusedDataPointsAreCounted() async throws {
        let gateway = TestGateway()
        var flagged = Self.point(.asDouble(1))
        flagged.flags = 1
        let request = Self.metrics([
            Self.metric("ok", .gauge(.with { $0.dataPoints = [Self.point(.asDouble(1)), Self.point(nil), flagged, Self.point(.asDouble(.infinity))] })),
            Self.metric("", .gauge(.with { $0.dataPoints = [Self.point(.asInt(1))] })),
        ])
        let response = try await gateway.test { client in
            try await Self.post(client, "/v1/metrics", request, headers: [.contentType: "application/x-protobuf; charset=binary", .organizationID: "acme"])
        }
        let answer = try OTLPExportMetricsServiceResponse(serializedBytes: Array(response.body.readableBytesView))
        #expect(answer.partialSuccess.rejectedDataPoints == 4)
        #expect(
            answer.partialSuccess.errorMessage
                == "4 data points rejected: resourceMetrics[0].scopeMetrics[0].metrics[0] (ok) dataPoints[1]: has no value (as_double or as_int); "
                + "resourceMetrics[0].scopeMetrics[0].metrics[0] (ok) dataPoints[2]: has no recorded value (flag NO_RECORDED_VALUE); "
                + "resourceMetrics[0].scopeMetrics[0].metrics[0] (ok) dataPoints[3]: value must be a finite number within ±1.8e308; and 1 more")
        #expect(gateway.publisher.events.count == 1)
    }

    // MARK: Refusals

    @Test func unparsableBodiesAre400WithAStatusInTheRequestsEncoding() async throws {
        let gateway = TestGateway()
        try await gateway.test { client in
            let truncated = try await client.execute(
                uri: "/v1/logs", method: .post, headers: Self.protobuf,
                body: ByteBuffer(bytes: (try Self.logs([Self.record { _ in }]).serializedBytes() as [UInt8]).dropLast(3)))
            #expect(truncated.status == .badRequest && truncated.headers[.contentType] == "application/x-protobuf")
            let status = try RPCStatus(serializedBytes: Array(truncated.body.readableBytesView))
            #expect(status.code == 3 && status.message.hasPrefix("Request body is not a valid OTLP ExportLogsServiceRequest in protobuf:"), "\(status.message)")

            let json = try await client.post("/v1/metrics", #"{"resourceMetrics":[{"scopeMetrics":7}]}"#, headers: Self.json)
            #expect(json.status == .badRequest && json.headers[.contentType] == "application/json")
            let jsonStatus = try RPCStatus(jsonString: json.text)
            #expect(jsonStatus.code == 3 && jsonStatus.message.hasPrefix("Request body is not a valid OTLP ExportMetricsServiceRequest in JSON:"))

            // 100 levels of key-value lists: refused before the decoder's stack is at risk.
            var value = OTLPAnyValue.with { $0.value = .stringValue("leaf") }
            for _ in 0..<100 { value = .with { $0.value = .kvlistValue(.with { $0.values = [Self.attribute("k", value.value)] }) } }
            let deep = try await Self.post(client, "/v1/logs", Self.logs([Self.record { $0.body = value }]))
            #expect(deep.status == .badRequest)
        }
        #expect(gateway.publisher.events.isEmpty)
    }

    @Test("media types: the name before any parameter, blanks and case aside")
    func mediaTypeNames() {
        let cases: [(String?, OTLPEncoding?)] = [
            ("application/x-protobuf", .protobuf), ("application/protobuf", .protobuf), ("Application/X-Protobuf; charset=binary", .protobuf),
            (" \tapplication/json ", .json), ("APPLICATION/JSON;charset=utf-8", .json), ("application/json;", .json),
            ("application/jsonx", nil), ("application/jso", nil), ("application/x_protobuf", nil), ("text/plain", nil),
            ("application/json\u{0}", nil), ("applicationNjson", nil), ("", nil), (";application/json", nil), (nil, nil),
        ]
        for (contentType, encoding) in cases {
            #expect(OTLPEncoding(contentType: contentType) == encoding, "\(String(describing: contentType))")
        }
    }

    @Test func mediaTypesAuthenticationAndLimits() async throws {
        var limits = EventLimits()
        limits.maxBatchEvents = 3
        limits.maxBatchBodyBytes = 2_000
        let gateway = TestGateway(apiKey: "s3cret", limits: limits)
        let two = try Self.logs([Self.record { _ in }, Self.record { _ in }]).serializedBytes() as [UInt8]
        try await gateway.test { client in
            let key: HTTPFields = [.apiKey: "s3cret", .contentType: "application/x-protobuf"]
            #expect(try await client.execute(uri: "/v1/logs", method: .post, headers: key, body: ByteBuffer(bytes: two)).status == .ok)

            let text = try await client.execute(
                uri: "/v1/logs", method: .post, headers: [.apiKey: "s3cret", .contentType: "text/plain"], body: ByteBuffer(bytes: two))
            #expect(text.status == .unsupportedMediaType)
            #expect(try RPCStatus(jsonString: text.text).message == "Content-Type must be application/x-protobuf or application/json, got 'text/plain'")
            let none = try await client.execute(uri: "/v1/logs", method: .post, headers: [.apiKey: "s3cret"], body: ByteBuffer(bytes: two))
            #expect(none.status == .unsupportedMediaType && none.text.contains("got none"))

            let anonymous = try await client.execute(
                uri: "/v1/logs", method: .post, headers: [.contentType: "application/x-protobuf"], body: ByteBuffer(bytes: two))
            #expect(anonymous.status == .unauthorized && anonymous.headers[.contentType] == "application/x-protobuf")
            #expect(
                try RPCStatus(serializedBytes: Array(anonymous.body.readableBytesView))
                    == .with {
                        $0.code = 16; $0.message = "Invalid or missing API key"
                    })

            let four = try Self.logs((0..<4).map { _ in Self.record { _ in } }).serializedBytes() as [UInt8]
            let tooMany = try await client.execute(uri: "/v1/logs", method: .post, headers: key, body: ByteBuffer(bytes: four))
            #expect(tooMany.status == .contentTooLarge)
            #expect(
                try RPCStatus(serializedBytes: Array(tooMany.body.readableBytesView)).message
                    == "Request of 4 log records exceeds the limit of 3 per request; send smaller batches")
            let huge = try await client.execute(uri: "/v1/metrics", method: .post, headers: key, body: ByteBuffer(repeating: 0, count: 2_001))
            #expect(huge.status == .contentTooLarge)

            var gzipped = ByteBuffer(bytes: two)
            let compressed = try gzipped.compress(with: .gzip())
            var gzipKey = key
            gzipKey[.contentEncoding] = "gzip"
            let gzipAnswer = try await client.execute(uri: "/v1/logs", method: .post, headers: gzipKey, body: compressed)
            #expect(gzipAnswer.status == .ok)
            #expect(gzipAnswer.headers[IngestService.idempotentReplayed] == "true", "the same decoded export within the retry window")
            let notGzip = try await client.execute(uri: "/v1/logs", method: .post, headers: gzipKey, body: ByteBuffer(bytes: two))
            #expect(notGzip.status == .badRequest)
            #expect(try RPCStatus(serializedBytes: Array(notGzip.body.readableBytesView)).message == "Request body is not valid gzip")

            // zstd, as the OpenTelemetry Collector's exporter may send it.
            var zstdKey = key
            zstdKey[.contentEncoding] = "zstd"
            #expect(try await client.execute(uri: "/v1/logs", method: .post, headers: zstdKey, body: ByteBuffer(bytes: Zstd.compress(two))).status == .ok)
            let notZstd = try await client.execute(uri: "/v1/logs", method: .post, headers: zstdKey, body: ByteBuffer(bytes: two))
            #expect(try RPCStatus(serializedBytes: Array(notZstd.body.readableBytesView)).message == "Request body is not valid zstd")

            let get = try await client.execute(uri: "/v1/logs", method: .get)
            #expect(get.status == .methodNotAllowed && get.headers[.allow] == "POST")
        }
        #expect(gateway.publisher.events.count == 2, "the same two records sent plain, in gzip and in zstd are one export (the retry window)")
    }

    @Test func rateLimitsAndBackpressureAreRetryable() async throws {
        let gateway = TestGateway { $0.rateLimit = RateLimit(eventsPerSecond: 2, eventsBurst: 3) }
        let two = try Self.logs([Self.record { _ in }, Self.record { _ in }]).serializedBytes() as [UInt8]
        // Another export (the same body again would be a retry, answered from the first within the retry window).
        let twoMore = try Self.logs([Self.record { $0.body.stringValue = "c" }, Self.record { $0.body.stringValue = "d" }]).serializedBytes() as [UInt8]
        try await gateway.test { client in
            #expect(try await client.execute(uri: "/v1/logs", method: .post, headers: Self.protobuf, body: ByteBuffer(bytes: two)).status == .ok)
            let limited = try await client.execute(uri: "/v1/logs", method: .post, headers: Self.protobuf, body: ByteBuffer(bytes: twoMore))
            #expect(limited.status == .tooManyRequests && limited.headers[.retryAfter] == "1")
            let status = try RPCStatus(serializedBytes: Array(limited.body.readableBytesView))
            #expect(status.code == 8 && status.message.hasPrefix("Rate limit of organization acme exceeded"))
        }
        let busy = TestGateway(highWater: 10)
        busy.backlog.update(11)
        let unavailable = try await busy.test { client in try await Self.post(client, "/v1/metrics", Self.metrics([]), headers: Self.json) }
        #expect(unavailable.status == .serviceUnavailable && unavailable.headers[.retryAfter] != nil)
        #expect(try RPCStatus(jsonString: String(buffer: unavailable.body)).code == 14)
    }

    @Test func anIdempotentRetryGetsTheFirstProtobufAnswer() async throws {
        let gateway = TestGateway()
        let request = Self.logs([Self.record { _ in }, Self.record { $0.severityNumber = .UNRECOGNIZED(99) }])
        var fields = Self.protobuf
        fields[IngestService.idempotencyKey] = "export-1"
        let headers = fields
        let (first, second) = try await gateway.test { client in
            (try await Self.post(client, "/v1/logs", request, headers: headers), try await Self.post(client, "/v1/logs", request, headers: headers))
        }
        #expect(first.status == .ok && second.status == .ok)
        #expect(second.headers[IngestService.idempotentReplayed] == "true" && first.headers[IngestService.idempotentReplayed] == nil)
        #expect(Array(second.body.readableBytesView) == Array(first.body.readableBytesView))
        #expect(try OTLPExportLogsServiceResponse(serializedBytes: Array(second.body.readableBytesView)).partialSuccess.rejectedLogRecords == 1)
        #expect(gateway.publisher.events.count == 1, "queued once")
    }
}

/// What is checked once per resource or scope, and the metadata's key count.
@Suite("OTLP/HTTP: shared metadata and its limits")
struct OTLPSharedMetadataTests {
    @Test func aResourceOverTheLimitsRefusesItsRecordsOnceEach() async throws {
        var limits = EventLimits()
        limits.maxStringBytes = 32
        let gateway = TestGateway(limits: limits)
        var request = OTLPRouteTests.logs([OTLPRouteTests.record { _ in }, OTLPRouteTests.record { _ in }])
        request.resourceLogs[0].resource.attributes.append(OTLPRouteTests.attribute("host.name", .stringValue(String(repeating: "h", count: 40))))
        request.resourceLogs.append(OTLPRouteTests.logs([OTLPRouteTests.record { $0.body.value = .stringValue("fine") }]).resourceLogs[0])
        let sent = request
        let response = try await gateway.test { client in try await OTLPRouteTests.post(client, "/v1/logs", sent) }
        let answer = try OTLPExportLogsServiceResponse(serializedBytes: Array(response.body.readableBytesView))
        #expect(answer.partialSuccess.rejectedLogRecords == 2)
        #expect(
            answer.partialSuccess.errorMessage
                == "2 log records rejected: resourceLogs[0].scopeLogs[0].logRecords[0]: metadata.resource.host.name must be at most 32 bytes, got 40; "
                + "resourceLogs[0].scopeLogs[0].logRecords[1]: metadata.resource.host.name must be at most 32 bytes, got 40")
        #expect(gateway.publisher.events.count == 1, "the other resource's record is queued")
    }

    @Test func recordAttributesAndTextsMeetTheMetadataRules() async throws {
        var limits = EventLimits()
        limits.maxObjectKeys = 3
        limits.maxObjectDepth = 3
        let gateway = TestGateway(limits: limits)
        let deep = OTLPAnyValue.with {
            $0.value = .kvlistValue(
                .with { $0.values = [OTLPRouteTests.attribute("a", .kvlistValue(.with { $0.values = [OTLPRouteTests.attribute("b", .intValue(1))] }))] })
        }
        let request = OTLPRouteTests.logs(
            [
                OTLPRouteTests.record { $0.attributes = [OTLPRouteTests.attribute("k\u{0}", .boolValue(true))] },
                OTLPRouteTests.record { $0.attributes = [OTLPRouteTests.attribute("nested", deep.value)] },
                OTLPRouteTests.record {
                    $0.attributes = [OTLPRouteTests.attribute("a", .intValue(1))]; $0.severityText = "x"; $0.eventName = "e"
                },
                OTLPRouteTests.record { $0.severityText = "nul\u{0}" },
                OTLPRouteTests.record { $0.attributes = [OTLPRouteTests.attribute("ok", .doubleValue(1.5))] },
            ], scope: "orders")
        let response = try await gateway.test { client in try await OTLPRouteTests.post(client, "/v1/logs", request) }
        let answer = try OTLPExportLogsServiceResponse(serializedBytes: Array(response.body.readableBytesView))
        #expect(answer.partialSuccess.rejectedLogRecords == 4)
        let reasons = answer.partialSuccess.errorMessage
        #expect(reasons.contains("logRecords[0]: metadata.attributes keys must not contain U+0000 (NUL)"), "\(reasons)")
        #expect(reasons.contains("logRecords[1]: metadata must be at most 3 levels deep"), "\(reasons)")
        #expect(reasons.contains("logRecords[2]: metadata must have at most 3 keys, got 5"), "\(reasons)")
        #expect(reasons.hasSuffix("; and 1 more"))
        #expect(gateway.publisher.events.count == 1)
    }
}
