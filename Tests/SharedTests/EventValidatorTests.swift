import Shared
import TestSupport
import Testing

@Suite("Event validation")
struct EventValidatorTests {
    let validator = EventValidator()
    let now = Timestamp(milliseconds: 1_700_000_000_123)

    func log(_ json: String) throws -> LogEvent {
        guard case .log(let event) = try validator.event(.logs, body: Array(json.utf8), now: now) else {
            throw ValidationError(kind: .logs, path: "", rule: "not a log")
        }
        return event
    }

    func message(_ kind: EventKind, _ json: String, batch: Bool = false) -> String? {
        do {
            if batch {
                _ = try validator.batch(kind, body: Array(json.utf8), now: now)
            } else {
                _ = try validator.event(kind, body: Array(json.utf8), now: now)
            }
            return nil
        } catch {
            return error.message
        }
    }

    @Test func specLogExampleIsAccepted() throws {
        let event = try log(SpecExamples.body("/events/logs"))
        #expect(event.service == "api-gateway")
        #expect(event.level == .error)
        #expect(event.traceId == "abc-123-def")
        #expect(event.spanId == nil)
        #expect(event.timestamp == now)
        #expect(event.metadata?["team"] == .string("platform"))
    }

    @Test func serviceIsTrimmedAndCasingKept() throws {
        #expect(try log(#"{"service":"  Billing-Service\t","level":"info","message":"m"}"#).service == "Billing-Service")
        #expect(message(.logs, #"{"service":"   ","level":"info","message":"m"}"#) == "Invalid log event: service must not be empty")
    }

    @Test(arguments: LogLevel.allCases) func everyLevelIsAccepted(level: LogLevel) throws {
        #expect(try log(#"{"service":"s","level":"\#(level.rawValue)","message":"m"}"#).level == level)
    }

    @Test func unknownLevelIsRefused() {
        #expect(
            message(.logs, #"{"service":"s","level":"trace","message":"m"}"#)
                == "Invalid log event: level must be one of debug, info, warn, error, fatal, got 'trace'")
        #expect(message(.logs, #"{"service":"s","level":"INFO","message":"m"}"#)?.contains("level must be one of") == true)
    }

    @Test func emptyNamesVersionsAndEnvironmentsAreRefusedEmptyUnitsAndMessagesAreNot() {
        #expect(message(.metrics, #"{"service":"s","name":"","value":1,"unit":"u"}"#) == "Invalid metric event: name must not be empty")
        #expect(message(.deployments, #"{"service":"s","version":"","environment":"p"}"#) == "Invalid deployment event: version must not be empty")
        #expect(message(.deployments, #"{"service":"s","version":"v","environment":""}"#) == "Invalid deployment event: environment must not be empty")
        #expect(message(.metrics, #"{"service":"s","name":"ratio","value":0.5,"unit":""}"#) == nil, "a dimensionless metric")
        #expect(message(.logs, #"{"service":"s","level":"info","message":""}"#) == nil)
        #expect(message(.logs, #"{"service":"s","level":"info","message":"m","metadata":null,"traceId":null}"#) == nil, "null reads as absent")
    }

    @Test func missingAndMistypedFields() {
        #expect(message(.logs, #"{"service":"s","level":"info"}"#) == "Invalid log event: message is required")
        #expect(message(.logs, #"{"level":"info","message":"m"}"#) == "Invalid log event: service is required")
        #expect(message(.logs, #"{"service":"s","level":"info","message":42}"#) == "Invalid log event: message must be a string, got number")
        #expect(message(.logs, #"{"service":"s","level":"info","message":"m","traceId":7}"#) == "Invalid log event: traceId must be a string, got number")
        #expect(message(.logs, #"{"service":"s","level":"info","message":"m","metadata":[1]}"#) == "Invalid log event: metadata must be an object, got array")
        #expect(message(.metrics, #"{"service":"s","name":"n","value":"1.5","unit":"u"}"#) == "Invalid metric event: value must be a number, got string")
        #expect(message(.metrics, #"{"service":"s","name":"n","unit":"u"}"#) == "Invalid metric event: value is required")
        #expect(
            message(.metrics, #"{"service":"s","name":"n","value":1,"unit":"u","labels":{"region":5}}"#)
                == "Invalid metric event: labels.region must be a string, got number")
        #expect(message(.deployments, #"{"service":"s","version":"v1"}"#) == "Invalid deployment event: environment is required")
        #expect(
            message(.deployments, #"{"service":"s","version":"v1","environment":"p","gitHash":false}"#)
                == "Invalid deployment event: gitHash must be a string, got boolean")
    }

    @Test func nullOptionalFieldsCountAsOmittedAndUnknownFieldsAreIgnored() throws {
        let event = try log(#"{"service":"s","level":"info","message":"m","traceId":null,"metadata":null,"extra":{"x":1}}"#)
        #expect(event.traceId == nil)
        #expect(event.metadata == nil)
        #expect(message(.logs, #"{"service":"s","level":"info","message":null}"#) == "Invalid log event: message is required")
    }

    @Test func timestampsAreNormalizedToUTCMilliseconds() throws {
        let cases = [
            "2024-05-01T12:00:00Z": "2024-05-01T12:00:00.000Z",
            "2024-05-01T12:00:00.123456Z": "2024-05-01T12:00:00.123Z",
            "2024-05-01T14:30:00+02:30": "2024-05-01T12:00:00.000Z",
            "2024-05-01t12:00:00.5z": "2024-05-01T12:00:00.500Z",
            "2024-05-01 12:00:00-0100": "2024-05-01T13:00:00.000Z",
            "2024-05-01T12:00": "2024-05-01T12:00:00.000Z",
            "2024-02-29": "2024-02-29T00:00:00.000Z",
            "1969-12-31T23:59:59.999Z": "1969-12-31T23:59:59.999Z",
        ]
        for (input, normalized) in cases {
            let event = try log(#"{"service":"s","level":"info","message":"m","timestamp":"\#(input)"}"#)
            #expect(event.timestamp.iso8601 == normalized, "\(input)")
        }
        #expect(try log(#"{"service":"s","level":"info","message":"m"}"#).timestamp.iso8601 == "2023-11-14T22:13:20.123Z")
    }

    @Test(arguments: [
        "yesterday", "2024-13-01T00:00:00Z", "2023-02-29", "2024-05-01T24:00:00Z", "2024-05-01T12:00:00+25:00", "1714564800", "2024-05-01T12:00:00Zjunk", "",
    ])
    func invalidTimestampsAreRefused(text: String) {
        #expect(
            message(.logs, #"{"service":"s","level":"info","message":"m","timestamp":"\#(text)"}"#)?.hasPrefix(
                "Invalid log event: timestamp must be an ISO 8601 date-time") == true)
    }

    @Test func metricValues() throws {
        let body =
            #"{"service":"api-gateway","name":"request_latency_p99","value":2.34,"unit":"seconds","labels":{"region":"us-east-1","env":"prod","endpoint":"/api/v1/users"}}"#
        guard case .metric(let metric) = try validator.event(.metrics, body: Array(body.utf8), now: now) else {
            Issue.record("not a metric")
            return
        }
        #expect(metric.value == 2.34)
        #expect(metric.labels?.map(\.key) == ["region", "env", "endpoint"])
        #expect(
            message(.metrics, #"{"service":"s","name":"n","value":1e400,"unit":"u"}"#) == "Invalid metric event: value must be a finite number within ±1.8e308")
        #expect(message(.metrics, #"{"service":"s","name":"n","value":-0,"unit":"u"}"#) == nil)
        #expect(message(.metrics, #"{"service":"s","name":"n","value":12345678901234567890123,"unit":"u"}"#) == nil)
    }

    @Test func limitsAtTheBoundAndOnePast() {
        var limits = EventLimits()
        limits.maxMessageBytes = 10
        limits.maxStringBytes = 5
        limits.maxObjectKeys = 2
        limits.maxObjectDepth = 3
        limits.maxBatchEvents = 2
        let small = EventValidator(limits: limits)
        func check(_ json: String, batch: Bool = false) -> String? {
            do {
                if batch { _ = try small.batch(.logs, body: Array(json.utf8)) } else { _ = try small.event(.logs, body: Array(json.utf8)) }
                return nil
            } catch { return error.message }
        }
        #expect(check(#"{"service":"s","level":"info","message":"0123456789"}"#) == nil)
        #expect(check(#"{"service":"s","level":"info","message":"0123456789X"}"#) == "Invalid log event: message must be at most 10 bytes, got 11")
        #expect(check(#"{"service":"sssss","level":"info","message":"m"}"#) == nil)
        #expect(check(#"{"service":"ssssss","level":"info","message":"m"}"#) == "Invalid log event: service must be at most 5 bytes, got 6")
        #expect(check(#"{"service":"s","level":"info","message":"m","metadata":{"a":1,"b":2}}"#) == nil)
        #expect(
            check(#"{"service":"s","level":"info","message":"m","metadata":{"a":1,"b":2,"c":3}}"#)
                == "Invalid log event: metadata must have at most 2 keys, got 3")
        #expect(check(#"{"service":"s","level":"info","message":"m","metadata":{"a":{"b":{"c":1}}}}"#) == nil)
        #expect(
            check(#"{"service":"s","level":"info","message":"m","metadata":{"a":{"b":{"c":{}}}}}"#)
                == "Invalid log event: metadata must be at most 3 levels deep")
        #expect(
            check(#"{"service":"s","level":"info","message":"m","metadata":{"a":"123456"}}"#) == "Invalid log event: metadata.a must be at most 5 bytes, got 6")
        let one = #"{"service":"s","level":"info","message":"m"}"#
        #expect(check("[\(one),\(one)]", batch: true) == nil)
        #expect(check("[\(one),\(one),\(one)]", batch: true) == "Invalid log event: batch must contain at most 2 events, got 3")
    }

    @Test func batchErrorsNameTheIndex() {
        let good = #"{"service":"billing-service","level":"error","message":"Payment failed for customer 42"}"#
        #expect(message(.logs, "[\(good),\(good)]", batch: true) == nil)
        #expect(
            message(.logs, #"[\#(good),{"service":"s","level":"loud","message":"m"}]"#, batch: true)?.hasPrefix("Invalid log event: [1].level must be one of")
                == true)
        #expect(message(.logs, "[\(good),42]", batch: true) == "Invalid log event: [1] must be a JSON object, got number")
        #expect(message(.logs, "[]", batch: true) == "Invalid log event: batch must contain at least 1 event")
        #expect(message(.logs, good, batch: true) == "Invalid log event: batch body must be a JSON array of events, got object")
    }

    @Test func oddJSONIsAValidationErrorNeverACrash() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let bodies: [(String, String)] = [
            ("", "the body is empty"),
            ("[1,2]", "body must be a JSON object, got array"),
            ("\"text\"", "body must be a JSON object, got string"),
            ("{\"service\":\"s\",", "expected a string key"),
            ("{\"service\":\"s\"", "unexpected end of input in an object"),
            ("{\"a\":1,\"a\":2}", "duplicate key 'a'"),
            ("{\"a\":01}", "expected ',' or '}'"),
            ("{\"a\":\"\\ud800\"}", "lone surrogate"),
            ("{\"a\":\"\u{1}\"}", "control character"),
            ("{\"a\":tru}", "invalid literal"),
            ("{} {}", "unexpected data after the JSON value"),
            (deep, "nesting deeper than 64 levels"),
        ]
        for (body, fragment) in bodies {
            let text = message(.logs, body)
            #expect(text?.hasPrefix("Invalid log event: ") == true, "\(body.prefix(20))")
            #expect(text?.contains(fragment) == true, "\(String(describing: text))")
        }
        let invalidUTF8: [UInt8] = Array(#"{"service":""#.utf8) + [0xFF, 0xFE] + Array(#"","level":"info","message":"m"}"#.utf8)
        #expect(throws: ValidationError.self) { try validator.event(.logs, body: invalidUTF8) }
        let manyKeys = "{" + (0..<40).map { "\"k\($0)\":1" }.joined(separator: ",") + ",\"k7\":2}"
        #expect(message(.logs, manyKeys)?.contains("duplicate key 'k7'") == true)
    }

    @Test func escapesDecode() throws {
        let event = try log(#"{"service":"s","level":"info","message":"a\"b\\c\/d\n\u00e9\ud83d\ude00"}"#)
        #expect(event.message == "a\"b\\c/d\né😀")
    }

    /// What the sinks cannot store is refused here, naming the field: NUL in any string or key.
    @Test func nulIsRefusedInEveryStringAndKey() {
        let nul = #"a\u0000b"#
        let cases: [(EventKind, String, String)] = [
            (.logs, #"{"service":"s","level":"info","message":"\#(nul)"}"#, "message must not contain U+0000 (NUL)"),
            (.logs, #"{"service":"\#(nul)","level":"info","message":"m"}"#, "service must not contain U+0000 (NUL)"),
            (.logs, #"{"service":"s","level":"info","message":"m","traceId":"\#(nul)"}"#, "traceId must not contain U+0000 (NUL)"),
            (.logs, #"{"service":"s","level":"info","message":"m","metadata":{"\#(nul)":"v"}}"#, "metadata keys must not contain U+0000 (NUL)"),
            (.logs, #"{"service":"s","level":"info","message":"m","metadata":{"k":{"deep":["\#(nul)"]}}}"#, "metadata.k.deep[0] must not contain U+0000 (NUL)"),
            (.metrics, #"{"service":"s","name":"n","value":1,"unit":"\#(nul)"}"#, "unit must not contain U+0000 (NUL)"),
            (.metrics, #"{"service":"s","name":"n","value":1,"unit":"u","labels":{"r":"\#(nul)"}}"#, "labels.r must not contain U+0000 (NUL)"),
            (.metrics, #"{"service":"s","name":"n","value":1,"unit":"u","labels":{"\#(nul)":"v"}}"#, "labels keys must not contain U+0000 (NUL)"),
            (.deployments, #"{"service":"s","version":"v","environment":"e","gitHash":"\#(nul)"}"#, "gitHash must not contain U+0000 (NUL)"),
        ]
        for (kind, body, rule) in cases {
            #expect(message(kind, body) == "Invalid \(kind.noun) event: \(rule)", "\(body)")
        }
        #expect(
            message(.logs, #"[{"service":"s","level":"info","message":"m"},{"service":"s","level":"info","message":"\#(nul)"}]"#, batch: true)
                == "Invalid log event: [1].message must not contain U+0000 (NUL)")
        #expect(message(.logs, #"{"service":"s","level":"info","message":"a\u0001b"}"#) == nil, "other escaped control characters are stored")
    }

    /// Numbers in metadata are stored as sent; PostgreSQL's jsonb refuses exponents past its decimal range.
    @Test func metadataNumbersStayWithinAFloatsRange() {
        func body(_ number: String) -> String { #"{"service":"s","level":"info","message":"m","metadata":{"n":\#(number)}}"# }
        for number in ["0", "-0", "0e999999", "0.000E-5000", "1e308", "-1.7976931348623157e308", "2.2250738585072014e-308", "12345678901234567890123"] {
            #expect(message(.logs, body(number)) == nil, "\(number)")
        }
        for number in ["1e400", "-1e309", "1e-400", "1e131072", "1" + String(repeating: "0", count: 1_100)] {
            #expect(
                message(.logs, body(number))?.hasPrefix("Invalid log event: metadata.n must be a number within the range of a 64-bit float") == true,
                "\(number.prefix(20))")
        }
    }

    /// Timestamps whose instant falls in year 0000 (an offset east of UTC on 0001-01-01) cannot be stored by PostgreSQL.
    @Test func timestampsStayWithinWhatBothSinksStore() throws {
        func body(_ timestamp: String) -> String { #"{"service":"s","level":"info","message":"m","timestamp":"\#(timestamp)"}"# }
        #expect(
            message(.logs, body("0001-01-01T00:00:00+01:00"))
                == "Invalid log event: timestamp must be within 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z in UTC, got '0001-01-01T00:00:00+01:00'")
        #expect(try log(body("0001-01-01T00:00:00Z")).timestamp.iso8601 == "0001-01-01T00:00:00.000Z")
        #expect(try log(body("0001-01-01T00:30:00+00:30")).timestamp.iso8601 == "0001-01-01T00:00:00.000Z")
        #expect(try log(body("9998-12-31T23:00:00-18:00")).timestamp.iso8601 == "9999-01-01T17:00:00.000Z")
    }
}
