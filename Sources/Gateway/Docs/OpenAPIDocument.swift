import Shared

/// The OpenAPI 3.1 document of the gateway, with the configured size limits in its schemas.
enum OpenAPIDocument {
    static func json(limits: EventLimits) -> String {
        document(limits: limits).jsonText
    }

    static func document(limits: EventLimits) -> JSONValue {
        [
            "openapi": "3.1.0",
            "info": [
                "title": "Operyn Ingestion API",
                "version": "1.0.0",
                "description":
                    "Accepts logs, metrics and deployment events. The /events endpoints return 202 Accepted on success; the OpenTelemetry endpoints (/v1/logs, /v1/metrics) answer as OTLP/HTTP does, 200 with an export response.",
            ],
            "servers": [["url": "http://localhost:3001"]],
            "paths": paths(limits),
            "components": [
                "securitySchemes": [
                    "apiKey": [
                        "type": "apiKey", "in": "header", "name": "x-api-key",
                        "description": "The server-wide key (required when OPERYN_API_KEY is set) or an organization key (opk_...)",
                    ],
                    "elasticApiKey": [
                        "type": "apiKey", "in": "header", "name": "Authorization",
                        "description": "Elasticsearch routes only: 'ApiKey ' and the base64 of organization:key (an empty organization leaves it to the key)",
                    ],
                    "basic": [
                        "type": "http", "scheme": "basic",
                        "description": "Elasticsearch routes only: the organization as the user (empty: the key's), the key as the password",
                    ],
                ],
                "parameters": [
                    "OrganizationId": [
                        "name": "x-organization-id", "in": "header", "required": false,
                        "description": "Organization ID; omitted means the default organization, limited to 5 services",
                        "schema": ["type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$", "maxLength": 64],
                    ],
                    "IdempotencyKey": [
                        "name": "Idempotency-Key", "in": "header", "required": false,
                        "description":
                            "A key of the client's for this request (per organization): a retry with the same key and body within 24 hours gets the first answer again (same ids) and writes nothing; the same key with another body is 422",
                        "schema": ["type": "string", "pattern": "^[!-~]{1,255}$", "maxLength": 255],
                    ],
                ],
                "schemas": schemas(limits),
                "responses": [
                    "BadRequest": error(
                        "The event failed validation, or the body is not valid JSON",
                        "Invalid log event: level must be one of debug, info, warn, error, fatal, got 'trace'"),
                    "Unauthorized": error("x-api-key is missing or invalid", "Invalid or missing API key"),
                    "Forbidden": error(
                        "The organization key belongs to another organization than x-organization-id", "API key does not belong to organization org_123456789"),
                    "TooManyFailures": error(
                        "This client failed authentication too often, or the organization is over its rate limit (only when one is configured: none is by default); retry after Retry-After seconds",
                        "Rate limit of organization acme exceeded: 100 events per second (burst 200); retry after 1 s", retry: true, rateLimit: true),
                    "IdempotencyConflict": error(
                        "The Idempotency-Key was already used with another request of this organization; nothing was written",
                        "Idempotency-Key was already used with another request of organization default; use a new key for a new request"),
                    "RequestTimeout": error(
                        "The request head or body stalled past the gateway's timeouts; the connection is closed",
                        "Request body timed out: no data for 10000 ms"),
                    "TooLarge": error(
                        "The body is over the size limit, or the request is larger than its organization's rate-limit burst (it would never be admitted: send smaller requests)",
                        "Request body exceeds the limit of \(limits.maxBodyBytes) bytes"),
                    "UnsupportedMediaType": error(
                        "The body is not JSON, or its Content-Encoding is neither gzip nor zstd", "Content-Type must be application/json"),
                    "Unavailable": error(
                        "The event queue is unavailable or over its backlog, or the gateway is at its connection cap; retry after Retry-After seconds",
                        "Event queue is unavailable; retry later",
                        retry: true),
                ],
            ],
        ]
    }

    /// The ingestion routes' operations (`IngestRoute.table`, each format describing its own), then the others.
    private static func paths(_ limits: EventLimits) -> JSONValue {
        var paths: [(key: String, value: JSONValue)] = IngestRoute.table.map { route in
            (route.path, .object(route.methods.map { (key: $0.rawValue.lowercased(), value: route.format.operation(route, limits: limits)) }))
        }
        paths += [
            ("/", ElasticsearchBulkFormat.rootOperations),
            ("/_license", ElasticsearchBulkFormat.probe("Elasticsearch license: an active basic license, for the shippers that check one")),
            ("/_cluster/health", ElasticsearchBulkFormat.probe("Elasticsearch cluster health: green while Redis answers (503 otherwise)", unavailable: true)),
            ("/health/live", ["get": operation("Liveness: the process is up", content: "application/json")]),
            ("/health/ready", ["get": operation("Readiness: Redis answers", content: "application/json", unavailable: true)]),
            ("/metrics", ["get": operation("Prometheus metrics", content: "text/plain")]),
            ("/usage", ["get": usage]),
        ]
        return .object(paths)
    }

    static let logExample: JSONValue = [
        "service": "api-gateway", "level": "error", "message": "Upstream timeout connecting to auth-service", "traceId": "abc-123-def",
        "metadata": ["region": "us-east-1", "env": "prod", "team": "platform"],
    ]
    static let metricExample: JSONValue = [
        "service": "api-gateway", "name": "request_latency_p99", "value": .number("2.34"), "unit": "seconds",
        "labels": ["region": "us-east-1", "env": "prod", "endpoint": "/api/v1/users"],
    ]
    static let deploymentExample: JSONValue = [
        "service": "payment-service", "version": "v2.0.1", "environment": "production", "gitHash": "a1b2c3d4",
        "metadata": ["deployedBy": "jenkins", "deployId": "job-123"],
    ]

    /// The event timestamps `Timestamp(iso8601:years:)` reads (`Timestamp.inputYears`), as a JSON Schema pattern, calendar included (30 February,
    /// 29 February of common years, years 0000 and 9999 do not match).
    static let timestampPattern =
        "^(" + year + #"-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)"#
        + #"|([0-9]{2}(0[48]|[2468][048]|[13579][26])|([2468][048]|[13579][26]|0[48])00)-02-29)"#
        + #"([Tt ]([01][0-9]|2[0-3]):[0-5][0-9](:([0-5][0-9]|60)([.,][0-9]{1,9})?)?([Zz]|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?)?$"#
    /// Years 0001–9998.
    private static let year = #"(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"#

    private static func schemas(_ limits: EventLimits) -> JSONValue {
        guard case .object(let members) = eventSchemas(limits) else { return eventSchemas(limits) }
        return .object(members + otlpSchemas + ElasticsearchBulkFormat.schemas)
    }

    private static func eventSchemas(_ limits: EventLimits) -> JSONValue {
        let fields = SchemaFields(limits: limits)
        let schemas: JSONValue = [
            "LogEvent": fields.logEvent,
            "LogEventBatch": [
                "type": "array", "minItems": 1, "maxItems": .number(String(limits.maxBatchEvents)), "items": ["$ref": "#/components/schemas/LogEvent"],
            ],
            "MetricEvent": fields.metricEvent,
            "DeploymentEvent": fields.deploymentEvent,
            "Queued": [
                "type": "object", "required": ["id", "queued"],
                "properties": ["id": ["type": "string", "format": "uuid"], "queued": ["type": "boolean", "const": true]],
            ],
            "BatchAccepted": ["type": "object", "required": ["accepted"], "properties": ["accepted": ["type": "integer", "minimum": 1]]],
            "CountsByKind": [
                "type": "object", "required": ["logs", "metrics", "deployments"],
                "properties": ["logs": ["type": "integer"], "metrics": ["type": "integer"], "deployments": ["type": "integer"]],
            ],
            "Retention": [
                "type": "object", "required": ["days", "source"],
                "properties": [
                    "days": ["type": ["integer", "null"], "minimum": 1], "source": ["type": "string", "enum": ["default", "organization", "kind"]],
                ],
            ],
            "Usage": [
                "type": "object", "required": ["org", "services", "rateLimit", "retention", "overflow", "days"],
                "properties": [
                    "org": ["type": "string"],
                    "services": [
                        "type": "object", "required": ["used", "limit"],
                        "properties": ["used": ["type": "array", "items": ["type": "string"]], "limit": ["type": "integer"]],
                    ],
                    "rateLimit": [
                        "description": "null when the organization has no rate limit; remaining: what is left of each limited measure's burst now",
                        "type": ["object", "null"],
                        "properties": [
                            "eventsPerSecond": ["type": "integer"], "eventsBurst": ["type": "integer"], "bytesPerSecond": ["type": "integer"],
                            "bytesBurst": ["type": "integer"],
                            "remaining": ["type": "object", "properties": ["events": ["type": "integer"], "bytes": ["type": "integer"]]],
                        ],
                    ],
                    "retention": [
                        "description":
                            "How long each kind of the organization's events is kept after it was accepted: days (null: for ever) and where that comes from (default: the workers' OPERYN_RETENTION_DAYS; organization or kind: an override)",
                        "type": "object", "required": ["logs", "metrics", "deployments"],
                        "properties": [
                            "logs": ["$ref": "#/components/schemas/Retention"], "metrics": ["$ref": "#/components/schemas/Retention"],
                            "deployments": ["$ref": "#/components/schemas/Retention"],
                        ],
                    ],
                    "overflow": [
                        "description":
                            "null unless the organization's backlog or rate passed the overflow thresholds, so that its new events are queued apart and the other organizations of its partition pass them: since when, why (backlog or rate), and its backlog (events queued and not yet finished) and rate (events per second) at the last check",
                        "type": ["object", "null"], "required": ["since", "reason", "backlogEvents", "eventsPerSecond"],
                        "properties": [
                            "since": ["type": "string", "format": "date-time"], "reason": ["type": "string", "enum": ["backlog", "rate"]],
                            "backlogEvents": ["type": "integer", "minimum": 0], "eventsPerSecond": ["type": "integer", "minimum": 0],
                        ],
                    ],
                    "days": [
                        "description":
                            "Today first, then each of the 30 days before (UTC), by the day events were accepted. accepted, stored, quotaRejected and deadLettered are counted as workers finish the events (once the queue drains, accepted = stored + quotaRejected + deadLettered); rateLimited as the gateways refuse them",
                        "type": "array", "minItems": 31, "maxItems": 31,
                        "items": [
                            "type": "object", "required": ["date", "accepted", "rateLimited", "quotaRejected", "stored", "deadLettered"],
                            "properties": [
                                "date": ["type": "string", "format": "date"], "accepted": ["$ref": "#/components/schemas/CountsByKind"],
                                "rateLimited": ["$ref": "#/components/schemas/CountsByKind"],
                                "quotaRejected": ["$ref": "#/components/schemas/CountsByKind"],
                                "stored": ["$ref": "#/components/schemas/CountsByKind"],
                                "deadLettered": ["$ref": "#/components/schemas/CountsByKind"],
                            ],
                        ],
                    ],
                ],
            ],
            "Error": [
                "type": "object", "required": ["statusCode", "message"],
                "properties": ["statusCode": ["type": "integer"], "message": ["type": "string"]],
            ],
        ]
        guard case .object(let members) = schemas else { return schemas }
        return .object(members + fields.metadataValues)
    }

    /// The schemas of event fields under the configured limits. Optional fields may also be null, which the gateway
    /// reads as absent. Lengths are UTF-8 bytes in the gateway, characters in JSON Schema: the descriptions say bytes.
    private struct SchemaFields {
        let limits: EventLimits
        var maxString: JSONValue { .number(String(limits.maxStringBytes)) }

        /// No store keeps U+0000 (PostgreSQL refuses it in text and jsonb), so no string may carry it.
        static let noNUL = "; must not contain U+0000"
        /// A string without U+0000, as a pattern.
        static let noNULPattern: JSONValue = "^[^\\u0000]*$"

        /// A text field; `indexed`: one the stores index, bounded by `EventLimits.maxIndexedBytes`.
        func text(_ description: String, required: Bool = false, indexed: Bool = false) -> JSONValue {
            let bytes = indexed ? limits.maxIndexedBytes : limits.maxStringBytes
            let maxString = JSONValue.number(String(bytes))
            let description = JSONValue.string("\(description); at most \(bytes) UTF-8 bytes\(Self.noNUL)")
            return required
                ? ["type": "string", "description": description, "minLength": 1, "maxLength": maxString, "pattern": Self.noNULPattern]
                : ["type": ["string", "null"], "description": description, "maxLength": maxString, "pattern": Self.noNULPattern]
        }

        var timestamp: JSONValue {
            [
                "type": ["string", "null"], "pattern": .string(timestampPattern),
                "description":
                    "ISO 8601 timestamp (a date alone, or with a time, optional fraction and zone; no zone means UTC), at or after 0001-01-01T00:00:00Z in UTC. Defaults to server time if omitted",
            ]
        }

        func metadata(_ description: String) -> JSONValue {
            [
                "type": ["object", "null"],
                "description": .string(
                    "\(description); at most \(limits.maxObjectDepth) levels deep; numbers within a 64-bit float's range\(Self.noNUL) in keys or strings"),
                "maxProperties": .number(String(limits.maxObjectKeys)), "propertyNames": ["maxLength": maxString, "pattern": Self.noNULPattern],
                "additionalProperties": ["$ref": "#/components/schemas/MetadataValue"],
            ]
        }

        /// Any JSON value inside `metadata`: strings without U+0000, numbers, booleans, null, arrays and objects of them.
        /// The name of the schema of a value at `depth` inside `metadata` (the object itself at 1).
        static func metadataValueName(_ depth: Int) -> String { depth == 2 ? "MetadataValue" : "MetadataValue\(depth)" }

        /// Any JSON value at `depth` inside `metadata`: strings without U+0000, numbers, booleans, null, and, while
        /// `depth` is within `OPERYN_MAX_OBJECT_DEPTH`, arrays and objects of the next depth's values. One schema per
        /// depth, since a recursive schema cannot bound how deep it goes.
        func metadataValue(depth: Int) -> JSONValue {
            var kinds: [JSONValue] = [["type": "string", "maxLength": maxString, "pattern": Self.noNULPattern], ["type": ["number", "boolean", "null"]]]
            if depth <= limits.maxObjectDepth {
                let next: JSONValue = ["$ref": .string("#/components/schemas/\(Self.metadataValueName(depth + 1))")]
                kinds += [
                    ["type": "array", "items": next],
                    [
                        "type": "object", "maxProperties": .number(String(limits.maxObjectKeys)),
                        "propertyNames": ["maxLength": maxString, "pattern": Self.noNULPattern], "additionalProperties": next,
                    ],
                ]
            }
            return ["anyOf": .array(kinds)]
        }

        /// The schemas of every depth inside `metadata`, by name.
        var metadataValues: [(key: String, value: JSONValue)] {
            (2...(limits.maxObjectDepth + 1)).map { (Self.metadataValueName($0), metadataValue(depth: $0)) }
        }

        /// The JSON names a request of `kind` must give, from its description (`EventKind.fields`).
        static func required(_ kind: EventKind) -> JSONValue {
            .array(kind.fields.filter(\.required).compactMap(\.json).map { .string($0) })
        }

        func service(_ description: String) -> JSONValue {
            [
                "type": "string", "description": .string("\(description); whitespace is trimmed, so it must not be blank\(Self.noNUL)"), "minLength": 1,
                "maxLength": .number(String(limits.maxIndexedBytes)), "pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$",
            ]
        }

        var logEvent: JSONValue {
            [
                "type": "object", "required": Self.required(.logs),
                "properties": [
                    "service": service("Name of the originating service"),
                    "level": ["type": "string", "enum": .array(LogLevel.allCases.map { .string($0.rawValue) })],
                    "message": [
                        "type": "string", "description": .string("The log message content\(Self.noNUL)"), "maxLength": .number(String(limits.maxMessageBytes)),
                        "pattern": Self.noNULPattern,
                    ],
                    "timestamp": timestamp,
                    "traceId": text("Distributed trace ID for correlation", indexed: true),
                    "spanId": text("Span ID within the trace"),
                    "metadata": metadata("Arbitrary key-value pairs (region, env, team, etc.)"),
                ],
            ]
        }

        var metricEvent: JSONValue {
            [
                "type": "object", "required": Self.required(.metrics),
                "properties": [
                    "service": service("Name of the originating service"),
                    "name": text("Metric name (e.g. http_5xx_rate, cpu_utilization)", required: true, indexed: true),
                    "value": ["type": "number", "description": "Numeric value of the metric (finite)"],
                    "unit": [
                        "type": "string",
                        "description": .string("Unit of measurement (e.g. percent, seconds, count; may be empty for a dimensionless value)\(Self.noNUL)"),
                        "maxLength": maxString, "pattern": Self.noNULPattern,
                    ],
                    "timestamp": timestamp,
                    "labels": [
                        "type": ["object", "null"], "description": .string("String key-value pairs for dimensions (region, instance, etc.)\(Self.noNUL)"),
                        "maxProperties": .number(String(limits.maxObjectKeys)), "propertyNames": ["maxLength": maxString, "pattern": Self.noNULPattern],
                        "additionalProperties": ["type": "string", "maxLength": maxString, "pattern": Self.noNULPattern],
                    ],
                ],
            ]
        }

        var deploymentEvent: JSONValue {
            [
                "type": "object", "required": Self.required(.deployments),
                "properties": [
                    "service": service("Name of the service being deployed"),
                    "version": text("Version or tag being deployed (e.g. v1.2.3)", required: true),
                    "environment": text("Environment (e.g. production, staging)", required: true, indexed: true),
                    "gitHash": text("Git commit hash"),
                    "timestamp": timestamp,
                    "metadata": metadata("Additional deployment context"),
                ],
            ]
        }
    }

    static func ingest(_ summary: String, _ schema: String, _ accepted: String, example: JSONValue, maxBody: Int) -> JSONValue {
        [
            "summary": .string(summary),
            "tags": ["events"],
            "security": [["apiKey": []], [:]],
            "parameters": [["$ref": "#/components/parameters/OrganizationId"], ["$ref": "#/components/parameters/IdempotencyKey"]],
            "requestBody": [
                "required": true,
                "description": .string("At most \(maxBody) bytes (after decoding, with Content-Encoding: gzip or zstd)"),
                "content": ["application/json": ["schema": .string("#/components/schemas/\(schema)").reference, "example": example]],
            ],
            "responses": [
                "202": [
                    "description": "Accepted: queued for storage",
                    "headers": acceptedHeaders,
                    "content": ["application/json": ["schema": .string("#/components/schemas/\(accepted)").reference]],
                ],
                "400": ["$ref": "#/components/responses/BadRequest"],
                "401": ["$ref": "#/components/responses/Unauthorized"],
                "403": ["$ref": "#/components/responses/Forbidden"],
                "408": ["$ref": "#/components/responses/RequestTimeout"],
                "413": ["$ref": "#/components/responses/TooLarge"],
                "415": ["$ref": "#/components/responses/UnsupportedMediaType"],
                "422": ["$ref": "#/components/responses/IdempotencyConflict"],
                "429": ["$ref": "#/components/responses/TooManyFailures"],
                "503": ["$ref": "#/components/responses/Unavailable"],
            ],
        ]
    }

    /// `GET /usage`, authenticated as the ingestion routes.
    private static var usage: JSONValue {
        [
            "summary": "The organization's usage: today and the 30 days before, its services against its quota, its rate limit",
            "tags": ["usage"],
            "security": [["apiKey": []], [:]],
            "parameters": [["$ref": "#/components/parameters/OrganizationId"]],
            "responses": [
                "200": ["description": "OK", "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Usage"]]]],
                "400": ["$ref": "#/components/responses/BadRequest"],
                "401": ["$ref": "#/components/responses/Unauthorized"],
                "403": ["$ref": "#/components/responses/Forbidden"],
                "429": ["$ref": "#/components/responses/TooManyFailures"],
                "503": ["$ref": "#/components/responses/Unavailable"],
            ],
        ]
    }

    static func operation(_ summary: String, content: String, unavailable: Bool = false) -> JSONValue {
        var responses: [(key: String, value: JSONValue)] = [("200", ["description": "OK", "content": [content: ["schema": [:]]]])]
        if unavailable { responses.append(("503", ["$ref": "#/components/responses/Unavailable"])) }
        return ["summary": .string(summary), "tags": ["operations"], "security": [], "responses": .object(responses)]
    }

    /// The IETF rate-limit fields, sent when the organization has a rate limit.
    /// The fields of a 202: the rate-limit fields, and the mark of a replayed answer.
    private static var acceptedHeaders: JSONValue {
        guard case .object(var fields) = rateLimitHeaders else { return rateLimitHeaders }
        fields.append(
            (
                "Idempotent-Replayed",
                [
                    "description": "true when this is the recorded answer to an earlier request with the same Idempotency-Key (nothing was written again)",
                    "schema": ["type": "string", "enum": ["true"]],
                ]
            ))
        return .object(fields)
    }

    private static let rateLimitHeaders: JSONValue = [
        "RateLimit-Policy": [
            "description":
                "When the organization has a rate limit: its policies, \"events\" and \"bytes\", with q (the burst) and w (seconds for a full burst to come back)",
            "schema": ["type": "string"], "example": #""events";q=200;w=2"#,
        ],
        "RateLimit": [
            "description": "When the organization has a rate limit: r (what is left of each policy's burst) and t (seconds until it is full again)",
            "schema": ["type": "string"], "example": #""events";r=150;t=1"#,
        ],
    ]

    private static func error(_ description: String, _ example: String, retry: Bool = false, rateLimit: Bool = false) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [
            ("description", .string(description)),
            ("content", ["application/json": ["schema": ["$ref": "#/components/schemas/Error"], "example": ["message": .string(example)]]]),
        ]
        if retry {
            var headers: [(key: String, value: JSONValue)] = [
                ("Retry-After", ["description": "Seconds to wait before retrying", "schema": ["type": "integer"]])
            ]
            if rateLimit, case .object(let fields) = rateLimitHeaders { headers += fields }
            members.append(("headers", .object(headers)))
        }
        return .object(members)
    }
}

extension JSONValue {
    /// `{"$ref": <this string>}`.
    fileprivate var reference: JSONValue { ["$ref": self] }
}
