import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// How the executables write logs: one JSON object per line (default), or swift-log's plain text for local runs.
public enum LogFormat: String, Sendable {
    case json
    case text

    /// Sets up swift-log once, with `settings`.
    public static func bootstrap(_ settings: LogSettings) {
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler =
                settings.format == .json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = settings.level
            return handler
        }
    }
}

/// How a process logs: `OPERYN_LOG_FORMAT` and `OPERYN_LOG_LEVEL`.
public struct LogSettings: Sendable {
    public var format = LogFormat.json
    public var level = Logger.Level.info

    /// The defaults: JSON lines at `info`.
    public init() {}

    /// Reads both settings.
    public init(_ reader: ConfigurationReader) throws(ConfigurationError) {
        let formatText = reader.string(
            "OPERYN_LOG_FORMAT", default: format.rawValue, values: "json or text", about: "log lines on stderr: one JSON object each, or plain text")
        guard let format = LogFormat(rawValue: formatText) else {
            throw ConfigurationError(message: "OPERYN_LOG_FORMAT must be json or text, got '\(formatText)'")
        }
        let levels = "trace, debug, info, notice, warning, error, critical"
        let levelText = reader.string("OPERYN_LOG_LEVEL", default: level.rawValue, values: levels, about: "the least severe level logged")
        guard let level = Logger.Level(rawValue: levelText) else {
            throw ConfigurationError(message: "OPERYN_LOG_LEVEL must be one of \(levels), got '\(levelText)'")
        }
        self.format = format
        self.level = level
    }
}

/// Writes each log record as one line of JSON on standard error:
/// `{"time":"…","level":"info","logger":"operyn.gateway","message":"gateway.ready","redis.url":"…"}`.
public struct JSONLogHandler: LogHandler {
    /// The logger's label.
    public let label: String
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]

    /// A handler for the logger named `label`.
    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: Logging.LogEvent) {
        var line: [UInt8] = []
        line.reserveCapacity(256)
        line.append(contentsOf: #"{"time":"#.utf8)
        JSONValue.encodeString(Timestamp.now.iso8601, into: &line)
        line.append(contentsOf: #","level":"#.utf8)
        JSONValue.encodeString(event.level.rawValue, into: &line)
        line.append(contentsOf: #","logger":"#.utf8)
        JSONValue.encodeString(label, into: &line)
        line.append(contentsOf: #","message":"#.utf8)
        JSONValue.encodeString(event.message.description, into: &line)
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        for key in merged.keys.sorted() {
            line.append(UInt8(ascii: ","))
            JSONValue.encodeString(key, into: &line)
            line.append(UInt8(ascii: ":"))
            JSONValue.encodeString(merged[key]!.description, into: &line)
        }
        line.append(contentsOf: "}\n".utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}
