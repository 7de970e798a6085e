/// The three kinds of event the service takes in; the raw value names the stream and the table.
public enum EventKind: String, Sendable, CaseIterable, Codable {
    case logs
    case metrics
    case deployments

    /// The singular noun used in messages: `log`, `metric`, `deployment`.
    public var noun: String {
        switch self {
        case .logs: "log"
        case .metrics: "metric"
        case .deployments: "deployment"
        }
    }
}

/// A log level, as the spec lists them.
public enum LogLevel: String, Sendable, CaseIterable {
    case debug, info, warn, error, fatal
}

/// `POST /events/logs`: one log line.
public struct LogEvent: Sendable, Equatable {
    /// The originating service, trimmed.
    public var service: String
    /// The level.
    public var level: LogLevel
    /// The message text.
    public var message: String
    /// When it happened (server time when omitted).
    public var timestamp: Timestamp
    /// Distributed trace id.
    public var traceId: String?
    /// Span id within the trace.
    public var spanId: String?
    /// Arbitrary key-value pairs; always a JSON object when present.
    public var metadata: JSONValue?

    /// Makes a log event.
    public init(
        service: String, level: LogLevel, message: String, timestamp: Timestamp, traceId: String? = nil, spanId: String? = nil, metadata: JSONValue? = nil
    ) {
        self.service = service
        self.level = level
        self.message = message
        self.timestamp = timestamp
        self.traceId = traceId
        self.spanId = spanId
        self.metadata = metadata
    }
}

/// `POST /events/metrics`: one metric data point.
public struct MetricEvent: Sendable, Equatable {
    /// The originating service, trimmed.
    public var service: String
    /// The metric name.
    public var name: String
    /// The value; always finite.
    public var value: Double
    /// The unit of measurement.
    public var unit: String
    /// When it was measured (server time when omitted).
    public var timestamp: Timestamp
    /// String dimensions, in the order given.
    public var labels: [(key: String, value: String)]?

    /// Makes a metric event.
    public init(service: String, name: String, value: Double, unit: String, timestamp: Timestamp, labels: [(key: String, value: String)]? = nil) {
        self.service = service
        self.name = name
        self.value = value
        self.unit = unit
        self.timestamp = timestamp
        self.labels = labels
    }

    public static func == (lhs: MetricEvent, rhs: MetricEvent) -> Bool {
        lhs.service == rhs.service && lhs.name == rhs.name && lhs.value == rhs.value && lhs.unit == rhs.unit
            && lhs.timestamp == rhs.timestamp && lhs.labelsObject == rhs.labelsObject
    }

    /// The labels as a JSON object, as stored.
    public var labelsObject: JSONValue? {
        labels.map { .object($0.map { (key: $0.key, value: JSONValue.string($0.value)) }) }
    }
}

/// `POST /events/deployments`: one deployment.
public struct DeploymentEvent: Sendable, Equatable {
    /// The deployed service, trimmed.
    public var service: String
    /// The version or tag.
    public var version: String
    /// The environment (`production`, `staging` ...).
    public var environment: String
    /// The git commit hash.
    public var gitHash: String?
    /// When it happened (server time when omitted).
    public var timestamp: Timestamp
    /// Additional context; always a JSON object when present.
    public var metadata: JSONValue?

    /// Makes a deployment event.
    public init(service: String, version: String, environment: String, gitHash: String? = nil, timestamp: Timestamp, metadata: JSONValue? = nil) {
        self.service = service
        self.version = version
        self.environment = environment
        self.gitHash = gitHash
        self.timestamp = timestamp
        self.metadata = metadata
    }
}

/// Any validated event.
public enum IngestEvent: Sendable, Equatable {
    case log(LogEvent)
    case metric(MetricEvent)
    case deployment(DeploymentEvent)

    /// Which kind it is.
    public var kind: EventKind {
        switch self {
        case .log: .logs
        case .metric: .metrics
        case .deployment: .deployments
        }
    }

    /// The originating service, which the quota counts.
    public var service: String {
        switch self {
        case .log(let event): event.service
        case .metric(let event): event.service
        case .deployment(let event): event.service
        }
    }
}
