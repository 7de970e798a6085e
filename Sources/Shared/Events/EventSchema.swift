/// One stored field of an event kind: its name in the API's JSON and in the tables, its type, whether a request
/// must give it, and which size limit applies.
public struct EventField: Sendable, Equatable {
    /// What a field holds, and so how each store keeps it.
    public enum FieldType: String, Sendable {
        /// A UUID (the event id).
        case uuid
        /// Text.
        case text
        /// A double-precision number.
        case double
        /// An instant, kept to the millisecond.
        case timestamp
        /// A JSON object (`metadata`, `labels`).
        case json
    }

    /// The size limit of a field's values (`EventLimits`).
    public enum Limit: Sendable, Equatable {
        /// None: set by the gateway, or a number.
        case none
        /// `OPERYN_MAX_STRING_BYTES`.
        case string
        /// `OPERYN_MAX_STRING_BYTES`, at most 1 024: a text the stores index (`EventLimits.maxIndexedBytes`).
        case indexed
        /// `OPERYN_MAX_MESSAGE_BYTES`.
        case message
        /// An object: `OPERYN_MAX_OBJECT_KEYS`, `OPERYN_MAX_OBJECT_DEPTH`, and the string limit on its keys and values.
        case object
    }

    /// The name in the API's JSON (`traceId`); `nil` for what the gateway sets (`id`, `org_id`, `received_at`).
    public let json: String?
    /// The column's name (`trace_id`), snake case as the tables have it.
    public let column: String
    public let type: FieldType
    /// Whether a request must give it (or, for a field without a JSON name, the gateway always sets it).
    public let required: Bool
    /// Whether the gateway fills it in when a request leaves it out (`timestamp`: the time of receipt).
    public let defaulted: Bool
    public let limit: Limit

    /// Whether every stored row has a value: `NOT NULL` in the tables.
    public var alwaysStored: Bool { required || defaulted }

    init(_ json: String?, _ column: String, _ type: FieldType, required: Bool = false, defaulted: Bool = false, limit: Limit = .none) {
        self.json = json
        self.column = column
        self.type = type
        self.required = required
        self.defaulted = defaulted
        self.limit = limit
    }
}

extension EventKind {
    /// The fields of this kind's rows, in column order: the one description of each kind that the sinks' columns,
    /// table definitions and record types follow, and that the stream codec, the validator and the OpenAPI schemas
    /// are held to by tests (`EventSchemaTests`). Adding an optional field is one entry here, its validation rule,
    /// and a migration of each store.
    public var fields: [EventField] {
        switch self {
        case .logs: Self.logFields
        case .metrics: Self.metricFields
        case .deployments: Self.deploymentFields
        }
    }

    /// The column names of `fields`, in order.
    public var columns: [String] { fields.map(\.column) }

    /// Every row's first fields: the event id and its organization.
    private static let head = [EventField(nil, "id", .uuid, required: true), EventField(nil, "org_id", .text, required: true)]
    /// Every row's last field: when the gateway accepted the event.
    private static let tail = [EventField(nil, "received_at", .timestamp, required: true)]

    private static let logFields =
        head + [
            EventField("service", "service", .text, required: true, limit: .indexed),
            EventField("level", "level", .text, required: true),
            EventField("message", "message", .text, required: true, limit: .message),
            EventField("timestamp", "timestamp", .timestamp, defaulted: true),
            EventField("traceId", "trace_id", .text, limit: .indexed),
            EventField("spanId", "span_id", .text, limit: .string),
            EventField("metadata", "metadata", .json, limit: .object),
        ] + tail

    private static let metricFields =
        head + [
            EventField("service", "service", .text, required: true, limit: .indexed),
            EventField("name", "name", .text, required: true, limit: .indexed),
            EventField("value", "value", .double, required: true),
            EventField("unit", "unit", .text, required: true, limit: .string),
            EventField("timestamp", "timestamp", .timestamp, defaulted: true),
            EventField("labels", "labels", .json, limit: .object),
        ] + tail

    private static let deploymentFields =
        head + [
            EventField("service", "service", .text, required: true, limit: .indexed),
            EventField("version", "version", .text, required: true, limit: .string),
            EventField("environment", "environment", .text, required: true, limit: .indexed),
            EventField("gitHash", "git_hash", .text, limit: .string),
            EventField("timestamp", "timestamp", .timestamp, defaulted: true),
            EventField("metadata", "metadata", .json, limit: .object),
        ] + tail
}
