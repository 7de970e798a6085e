import Shared

/// `POST /v1/logs` and `/v1/metrics` in the OpenAPI document: OTLP/HTTP's export requests in both encodings, the
/// subset of the OTLP JSON mapping the gateway reads (other fields are allowed and skipped), and its answers.
extension OpenAPIDocument {
    static func otlp(_ summary: String, request: String, response: String, limits: EventLimits) -> JSONValue {
        let binary: JSONValue = ["schema": ["type": "string", "format": "binary"]]
        let error: (String) -> JSONValue = { description in
            [
                "description": .string(description),
                "content": ["application/json": ["schema": ["$ref": "#/components/schemas/OTLPStatus"]], "application/x-protobuf": binary],
            ]
        }
        var retryable = error("Retryable: the organization is over its rate limit (429), or the queue is unavailable or over its backlog (503)")
        if case .object(var members) = retryable {
            members.append(("headers", ["Retry-After": ["description": "Seconds to wait before retrying", "schema": ["type": "integer"]]]))
            retryable = .object(members)
        }
        return [
            "summary": .string(summary),
            "description": .string(
                "OTLP/HTTP, as the OpenTelemetry protocol defines it: an export request in protobuf (application/x-protobuf) or in OTLP's JSON mapping (application/json: hex trace and span ids, enum values as numbers, 64-bit integers as strings or numbers), gzip or zstd allowed. At most \(limits.maxBatchBodyBytes) bytes after decoding and \(limits.maxBatchEvents) records. Records that map to valid events are queued like any event (same stream, quota, rate limit and stores); the others are counted in partialSuccess. Errors are a google.rpc.Status in the request's encoding."
            ),
            "tags": ["opentelemetry"],
            "security": [["apiKey": []], [:]],
            "parameters": [["$ref": "#/components/parameters/OrganizationId"], ["$ref": "#/components/parameters/IdempotencyKey"]],
            "requestBody": [
                "required": true,
                "content": ["application/x-protobuf": binary, "application/json": ["schema": .string("#/components/schemas/\(request)").reference]],
            ],
            "responses": [
                "200": [
                    "description":
                        "Exported: every record queued, or partialSuccess says how many were refused and why (the rest queued). In the request's encoding",
                    "content": ["application/json": ["schema": .string("#/components/schemas/\(response)").reference], "application/x-protobuf": binary],
                ],
                "400": error("The body is not an export request in its encoding, or its gzip or zstd is broken"),
                "401": error("x-api-key is missing or invalid"),
                "403": error("The organization key belongs to another organization than x-organization-id"),
                "413": error("The body, or its record count, is over the limit, or larger than the organization's rate-limit burst"),
                "415": error("Content-Type is neither application/x-protobuf nor application/json, or Content-Encoding is neither gzip nor zstd"),
                "422": error("The Idempotency-Key was already used with another request of this organization"),
                "429": retryable,
                "503": retryable,
            ],
        ]
    }

    /// The JSON mapping's schemas, for the fields the gateway reads: what the decoder takes, for a body that is not
    /// one is 400; what refuses a record on its own (a missing `service.name`, ids of the wrong length, a missing key
    /// being an empty one…) is in `partialSuccess`, not here. The mapping reads `null` in any field as its default, so
    /// every property may be null.
    static var otlpSchemas: [(key: String, value: JSONValue)] {
        otlpFields.map { ($0.key, allowingNull($0.value)) }
    }

    /// `schema` with every property, at any depth, also allowing `null`.
    private static func allowingNull(_ schema: JSONValue) -> JSONValue {
        guard case .object(let members) = schema else { return schema }
        return .object(
            members.map { member in
                switch member.key {
                case "properties":
                    guard case .object(let properties) = member.value else { return member }
                    return (member.key, .object(properties.map { ($0.key, nullable(allowingNull($0.value))) }))
                case "items": return (member.key, allowingNull(member.value))
                default: return member
                }
            })
    }

    /// The members of a oneof: at most one of them in a body (even as null), as `not` of any two together.
    private static func oneOf(_ members: [String]) -> JSONValue {
        var pairs: [JSONValue] = []
        for (index, first) in members.enumerated() {
            for second in members[(index + 1)...] { pairs.append(["required": [.string(first), .string(second)]]) }
        }
        return ["anyOf": .array(pairs)]
    }

    /// A regular expression for the decimal numbers from 0 to `maximum` (digits only, no leading zero): the 64-bit
    /// integers OTLP/JSON sends as strings, so a schema-valid string is one the decoder reads.
    static func digitsAtMost(_ maximum: String) -> String {
        let digits = Array(maximum)
        var alternatives = ["0", "[1-9][0-9]{0,\(digits.count - 2)}"]
        for (index, digit) in digits.enumerated() {
            let value = Int(String(digit))!
            let lowest = index == 0 ? 1 : 0
            guard value > lowest else { continue }
            let rest = digits.count - index - 1
            let range = value - 1 == lowest ? "\(lowest)" : "[\(lowest)-\(value - 1)]"
            alternatives.append(String(digits[..<index]) + range + (rest > 0 ? "[0-9]{\(rest)}" : ""))
        }
        alternatives.append(maximum)
        return alternatives.joined(separator: "|")
    }

    private static func nullable(_ schema: JSONValue) -> JSONValue {
        ["anyOf": [schema, ["type": "null"]]]
    }

    private static var otlpFields: [(key: String, value: JSONValue)] {
        let reference: (String) -> JSONValue = { ["$ref": .string("#/components/schemas/\($0)")] }
        let array: (JSONValue) -> JSONValue = { ["type": "array", "items": $0] }
        let unsigned64: JSONValue = [
            "description": "Nanoseconds since the Unix epoch (0: unknown), as a number or a string of digits",
            "anyOf": [
                ["type": "integer", "minimum": 0, "maximum": .number("18446744073709551615")],
                ["type": "string", "pattern": .string("^(\(digitsAtMost("18446744073709551615")))$")],
            ],
        ]
        let signed64: JSONValue = [
            "anyOf": [
                ["type": "integer", "minimum": .number("-9223372036854775808"), "maximum": .number("9223372036854775807")],
                ["type": "string", "pattern": .string("^(-?(\(digitsAtMost("9223372036854775807")))|-9223372036854775808)$")],
            ]
        ]
        let attributes = array(reference("OTLPKeyValue"))
        let resource: JSONValue = ["type": "object", "properties": ["attributes": attributes]]
        let scope: JSONValue = ["type": "object", "properties": ["name": ["type": "string"], "version": ["type": "string"], "attributes": attributes]]
        let numberPoint: JSONValue = [
            "type": "object", "not": oneOf(["asDouble", "asInt"]),
            "properties": [
                "attributes": attributes, "startTimeUnixNano": unsigned64, "timeUnixNano": unsigned64, "asDouble": ["type": "number"], "asInt": signed64,
                "flags": ["type": "integer", "minimum": 0, "maximum": 4_294_967_295],
            ],
        ]
        let distributionPoint: JSONValue = [
            "type": "object",
            "properties": [
                "attributes": attributes, "startTimeUnixNano": unsigned64, "timeUnixNano": unsigned64, "count": unsigned64, "sum": ["type": "number"],
                "min": ["type": "number"], "max": ["type": "number"], "flags": ["type": "integer", "minimum": 0, "maximum": 4_294_967_295],
            ],
        ]
        let temporality: JSONValue = ["type": "integer", "enum": [0, 1, 2], "description": "0 unspecified, 1 delta, 2 cumulative"]
        return [
            (
                "OTLPAnyValue",
                [
                    "type": "object", "description": "One of the kinds, or none (an empty value)",
                    "not": oneOf(["stringValue", "boolValue", "intValue", "doubleValue", "arrayValue", "kvlistValue", "bytesValue"]),
                    "properties": [
                        "stringValue": ["type": "string"], "boolValue": ["type": "boolean"], "intValue": signed64, "doubleValue": ["type": "number"],
                        "arrayValue": ["type": "object", "properties": ["values": array(reference("OTLPAnyValue"))]],
                        "kvlistValue": ["type": "object", "properties": ["values": attributes]],
                        "bytesValue": [
                            "type": "string", "contentEncoding": "base64", "pattern": "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
                        ],
                    ],
                ]
            ),
            ("OTLPKeyValue", ["type": "object", "properties": ["key": ["type": "string"], "value": reference("OTLPAnyValue")]]),
            (
                "OTLPLogRecord",
                [
                    "type": "object",
                    "properties": [
                        "timeUnixNano": unsigned64, "observedTimeUnixNano": unsigned64,
                        "severityNumber": [
                            "type": "integer", "minimum": 0, "maximum": 24,
                            "description": "1-4 TRACE, 5-8 DEBUG, 9-12 INFO, 13-16 WARN, 17-20 ERROR, 21-24 FATAL",
                        ],
                        "severityText": ["type": "string"], "body": reference("OTLPAnyValue"), "attributes": attributes,
                        "flags": ["type": "integer", "minimum": 0, "maximum": 4_294_967_295],
                        "traceId": [
                            "type": "string", "pattern": "^([0-9a-fA-F]{4})*$",
                            "description": "16 bytes in hexadecimal (another length refuses the record)",
                        ],
                        "spanId": [
                            "type": "string", "pattern": "^([0-9a-fA-F]{4})*$", "description": "8 bytes in hexadecimal (another length refuses the record)",
                        ],
                        "eventName": ["type": "string"],
                    ],
                ]
            ),
            (
                "OTLPLogsRequest",
                [
                    "type": "object", "description": "ExportLogsServiceRequest in OTLP's JSON mapping",
                    "properties": [
                        "resourceLogs": array([
                            "type": "object",
                            "properties": [
                                "resource": resource,
                                "scopeLogs": array(["type": "object", "properties": ["scope": scope, "logRecords": array(reference("OTLPLogRecord"))]]),
                            ],
                        ])
                    ],
                ]
            ),
            (
                "OTLPMetric",
                [
                    "type": "object", "description": "name, description, unit and one kind of data",
                    "not": oneOf(["gauge", "sum", "histogram", "exponentialHistogram", "summary"]),
                    "properties": [
                        "name": ["type": "string"], "description": ["type": "string"], "unit": ["type": "string"],
                        "gauge": ["type": "object", "properties": ["dataPoints": array(numberPoint)]],
                        "sum": [
                            "type": "object",
                            "properties": ["dataPoints": array(numberPoint), "aggregationTemporality": temporality, "isMonotonic": ["type": "boolean"]],
                        ],
                        "histogram": ["type": "object", "properties": ["dataPoints": array(distributionPoint), "aggregationTemporality": temporality]],
                        "exponentialHistogram": [
                            "type": "object", "properties": ["dataPoints": array(distributionPoint), "aggregationTemporality": temporality],
                        ],
                        "summary": [
                            "type": "object",
                            "properties": [
                                "dataPoints": array([
                                    "type": "object",
                                    "properties": [
                                        "attributes": attributes, "startTimeUnixNano": unsigned64, "timeUnixNano": unsigned64, "count": unsigned64,
                                        "sum": ["type": "number"],
                                        "quantileValues": array([
                                            "type": "object", "properties": ["quantile": ["type": "number"], "value": ["type": "number"]],
                                        ]),
                                    ],
                                ])
                            ],
                        ],
                    ],
                ]
            ),
            (
                "OTLPMetricsRequest",
                [
                    "type": "object", "description": "ExportMetricsServiceRequest in OTLP's JSON mapping",
                    "properties": [
                        "resourceMetrics": array([
                            "type": "object",
                            "properties": [
                                "resource": resource,
                                "scopeMetrics": array(["type": "object", "properties": ["scope": scope, "metrics": array(reference("OTLPMetric"))]]),
                            ],
                        ])
                    ],
                ]
            ),
            (
                "OTLPLogsResponse",
                [
                    "type": "object",
                    "properties": [
                        "partialSuccess": [
                            "type": "object",
                            "properties": ["rejectedLogRecords": signed64, "errorMessage": ["type": "string"]],
                        ]
                    ],
                ]
            ),
            (
                "OTLPMetricsResponse",
                [
                    "type": "object",
                    "properties": [
                        "partialSuccess": [
                            "type": "object",
                            "properties": ["rejectedDataPoints": signed64, "errorMessage": ["type": "string"]],
                        ]
                    ],
                ]
            ),
            (
                "OTLPStatus",
                [
                    "type": "object", "description": "google.rpc.Status: the gRPC code nearest the HTTP status, and the message",
                    "properties": ["code": ["type": "integer"], "message": ["type": "string"]],
                ]
            ),
        ]
    }
}

extension JSONValue {
    /// `{"$ref": <this string>}`.
    fileprivate var reference: JSONValue { ["$ref": self] }
}
