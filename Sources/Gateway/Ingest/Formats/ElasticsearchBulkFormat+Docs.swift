import Shared

/// The bulk routes and `GET|HEAD /` in the OpenAPI document.
extension ElasticsearchBulkFormat {
    func operation(_ route: IngestRoute, limits: EventLimits) -> JSONValue {
        let error: (String, Bool) -> JSONValue = { description, retry in
            [
                "description": .string(description),
                "headers": retry
                    ? ["Retry-After": ["description": "Seconds to wait before retrying", "schema": ["type": "integer"]], "X-Elastic-Product": Self.product]
                    : Self.productHeader,
                "content": ["application/json": ["schema": ["$ref": "#/components/schemas/ElasticsearchError"]]],
            ]
        }
        let retryable = error("Retryable: the organization is over its rate limit (429), or the queue is unavailable or over its backlog (503)", true)
        var parameters: [JSONValue] = [["$ref": "#/components/parameters/OrganizationId"], ["$ref": "#/components/parameters/IdempotencyKey"]]
        if route.isTemplate {
            parameters.insert(
                [
                    "name": "index", "in": "path", "required": true,
                    "description":
                        "The index: the service of documents without service.name or service, and the default of action lines without _index. Lowercase, at most 255 bytes, not starting with _, - or +, without \\ / * ? \" < > | , # : or spaces",
                    "schema": ["type": "string", "pattern": "^[^A-Z_+\\-\\\\/*?\"<>|,#: ][^A-Z\\\\/*?\"<>|,#: ]{0,254}$"],
                ], at: 0)
        }
        let ndjson: JSONValue = [
            "schema": ["type": "string"],
            "example": .string(
                #"{"create":{"_index":"logs-checkout"}}"# + "\n"
                    + #"{"@timestamp":"2024-05-01T12:00:00Z","message":"Payment captured","log":{"level":"info"},"service":{"name":"checkout"}}"# + "\n"),
        ]
        return [
            "summary": .string(route.isTemplate ? "Elasticsearch bulk API, into an index" : "Elasticsearch bulk API"),
            "description": .string(
                "The write subset of Elasticsearch's bulk API, for the shippers that speak it (rsyslog, syslog-ng, Filebeat, Logstash, Fluent Bit, Vector): NDJSON, an index or create action line and then its document, each document a log event by the Elastic Common Schema (service.name, else service, else the index; log.level, level or severity; message; @timestamp; trace.id, span.id; every other field flattened into metadata). At most \(limits.maxBatchBodyBytes) bytes after decoding (gzip or zstd) and \(limits.maxBatchEvents) items. Answered as Elasticsearch 8: one status per item, 201 or 400 with its error, errors true when any was refused; the accepted items are queued before the answer. Authentication: x-api-key, or Authorization ApiKey (base64 of organization:key) or Basic (organization as the user, the key as the password)."
            ),
            "tags": ["elasticsearch"],
            "security": [["apiKey": []], ["elasticApiKey": []], ["basic": []], [:]],
            "parameters": .array(parameters),
            "requestBody": [
                "required": true,
                "content": [
                    "application/x-ndjson": ndjson, "application/json": ndjson, "application/vnd.elasticsearch+x-ndjson": ndjson,
                ],
            ],
            "responses": [
                "200": [
                    "description": "Every item's status, in order: 201 queued, or 400 with the reason its document was refused",
                    "headers": Self.productHeader,
                    "content": ["application/json": ["schema": ["$ref": "#/components/schemas/BulkResponse"]]],
                ],
                "400": error("Not a bulk request: an unknown action, an action without its document line, a line that is not JSON, an invalid index", false),
                "401": error("The key is missing or invalid, or Authorization is neither ApiKey nor Basic", false),
                "403": error("The organization key belongs to another organization than the one the request names", false),
                "406": error("Content-Type is not NDJSON or JSON", false),
                "413": error("The body, or its item count, is over the limit, or larger than the organization's rate-limit burst", false),
                "415": error("Content-Encoding is neither gzip nor zstd", false),
                "422": error("The Idempotency-Key was already used with another request of this organization", false),
                "429": retryable,
                "503": retryable,
            ],
        ]
    }

    private static let product: JSONValue = ["description": "Elasticsearch, which clients check", "schema": ["type": "string", "const": "Elasticsearch"]]
    private static let productHeader: JSONValue = ["X-Elastic-Product": product]

    /// `GET /` and `HEAD /`: the node as Elasticsearch 8 describes itself.
    static var rootOperations: JSONValue {
        let get: JSONValue = [
            "summary": "Elasticsearch node information, for the clients and shippers that check it before they send",
            "tags": ["elasticsearch"],
            "security": [["apiKey": []], ["elasticApiKey": []], ["basic": []], [:]],
            "responses": [
                "200": [
                    "description": "The node, as an Elasticsearch 8 node answers", "headers": productHeader,
                    "content": ["application/json": ["schema": ["$ref": "#/components/schemas/ElasticsearchNode"]]],
                ],
                "401": [
                    "description": "The key is missing or invalid", "headers": productHeader,
                    "content": ["application/json": ["schema": ["$ref": "#/components/schemas/ElasticsearchError"]]],
                ],
            ],
        ]
        let head: JSONValue = [
            "summary": "Elasticsearch ping", "tags": ["elasticsearch"],
            "security": [["apiKey": []], ["elasticApiKey": []], ["basic": []], [:]],
            "responses": ["200": ["description": "The node is up", "headers": productHeader], "401": ["description": "The key is missing or invalid"]],
        ]
        return ["get": get, "head": head]
    }

    /// A `GET` that shippers ask before they send (`/_license`, `/_cluster/health`).
    static func probe(_ summary: String, unavailable: Bool = false) -> JSONValue {
        var responses: [(key: String, value: JSONValue)] = [
            (
                "200",
                ["description": "As Elasticsearch 8 answers it", "headers": productHeader, "content": ["application/json": ["schema": ["type": "object"]]]]
            ),
            (
                "401",
                [
                    "description": "The key is missing or invalid", "headers": productHeader,
                    "content": ["application/json": ["schema": ["$ref": "#/components/schemas/ElasticsearchError"]]],
                ]
            ),
        ]
        if unavailable {
            responses.append(
                (
                    "503",
                    [
                        "description": "Redis is not reachable", "headers": productHeader,
                        "content": ["application/json": ["schema": ["$ref": "#/components/schemas/ElasticsearchError"]]],
                    ]
                ))
        }
        return [
            "get": [
                "summary": .string(summary), "tags": ["elasticsearch"], "security": [["apiKey": []], ["elasticApiKey": []], ["basic": []], [:]],
                "responses": .object(responses),
            ]
        ]
    }

    /// The schemas of the bulk answers and errors, and the security schemes of `Authorization`.
    static let schemas: [(key: String, value: JSONValue)] = [
        (
            "BulkResponse",
            [
                "type": "object", "required": ["took", "errors", "items"],
                "properties": [
                    "took": ["type": "integer"], "errors": ["type": "boolean"],
                    "items": [
                        "type": "array",
                        "items": [
                            "type": "object", "minProperties": 1, "maxProperties": 1,
                            "additionalProperties": [
                                "type": "object", "required": ["_index", "_id", "status"],
                                "properties": [
                                    "_index": ["type": "string"], "_id": ["type": ["string", "null"]], "status": ["type": "integer", "enum": [201, 400]],
                                    "result": ["type": "string"],
                                    "error": [
                                        "type": "object", "required": ["type", "reason"],
                                        "properties": ["type": ["type": "string"], "reason": ["type": "string"]],
                                    ],
                                ],
                            ],
                        ],
                    ],
                ],
            ]
        ),
        (
            "ElasticsearchError",
            [
                "type": "object", "required": ["error", "status"],
                "properties": [
                    "error": [
                        "type": "object", "required": ["type", "reason"],
                        "properties": ["root_cause": ["type": "array"], "type": ["type": "string"], "reason": ["type": "string"]],
                    ],
                    "status": ["type": "integer"],
                ],
            ]
        ),
        (
            "ElasticsearchNode",
            [
                "type": "object", "required": ["name", "cluster_name", "version", "tagline"],
                "properties": [
                    "name": ["type": "string"], "cluster_name": ["type": "string"], "cluster_uuid": ["type": "string"],
                    "version": ["type": "object", "required": ["number"], "properties": ["number": ["type": "string"]]],
                    "tagline": ["type": "string"],
                ],
            ]
        ),
    ]
}
