import HTTPTypes
import Shared

/// One of the ingestion routes: the API's `POST /events/logs`, `/events/logs/batch`, `/events/metrics`,
/// `/events/deployments`, and OTLP/HTTP's `POST /v1/logs` and `/v1/metrics`.
struct IngestRoute: Sendable, Hashable {
    /// The kind of event it takes.
    let kind: EventKind
    /// Whether it takes many events at once (the batch limits apply).
    let isBatch: Bool
    /// Its path, as metrics and logs name it.
    let path: String
    /// Whether it speaks OTLP/HTTP: protobuf or JSON export requests, answered 200 with an export response, errors as
    /// `google.rpc.Status`.
    var isOTLP = false

    static let logs = IngestRoute(kind: .logs, isBatch: false, path: "/events/logs")
    static let logsBatch = IngestRoute(kind: .logs, isBatch: true, path: "/events/logs/batch")
    static let metrics = IngestRoute(kind: .metrics, isBatch: false, path: "/events/metrics")
    static let deployments = IngestRoute(kind: .deployments, isBatch: false, path: "/events/deployments")
    static let otlpLogs = IngestRoute(kind: .logs, isBatch: true, path: "/v1/logs", isOTLP: true)
    static let otlpMetrics = IngestRoute(kind: .metrics, isBatch: true, path: "/v1/metrics", isOTLP: true)
    /// All six.
    static let all = [logs, logsBatch, metrics, deployments, otlpLogs, otlpMetrics]

    /// The route a request is for, or `nil` for anything else (another path, or a method other than POST). Matches
    /// as the router does: the query is ignored and so are empty path segments (`//events/logs/`).
    static func match(_ request: HTTPRequest) -> IngestRoute? {
        guard request.method == .post, let target = request.path else { return nil }
        switch target {
        case "/events/logs": return .logs
        case "/events/logs/batch": return .logsBatch
        case "/events/metrics": return .metrics
        case "/events/deployments": return .deployments
        case "/v1/logs": return .otlpLogs
        case "/v1/metrics": return .otlpMetrics
        default: break
        }
        let path = target.prefix { $0 != "?" && $0 != "#" }
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        if segments.count == 2, segments[0] == "v1" {
            switch segments[1] {
            case "logs": return .otlpLogs
            case "metrics": return .otlpMetrics
            default: return nil
            }
        }
        guard segments.count >= 2, segments.count <= 3, segments[0] == "events" else { return nil }
        switch (segments[1], segments.count == 3 ? segments[2] : nil) {
        case ("logs", nil): return .logs
        case ("logs", "batch"): return .logsBatch
        case ("metrics", nil): return .metrics
        case ("deployments", nil): return .deployments
        default: return nil
        }
    }
}
