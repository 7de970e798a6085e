import HTTPTypes
import Shared

/// One of the four ingestion routes: `POST /events/logs`, `/events/logs/batch`, `/events/metrics`,
/// `/events/deployments`.
struct IngestRoute: Sendable, Hashable {
    /// The kind of event it takes.
    let kind: EventKind
    /// Whether it takes an array of events.
    let isBatch: Bool
    /// Its path, as metrics and logs name it.
    let path: String

    static let logs = IngestRoute(kind: .logs, isBatch: false, path: "/events/logs")
    static let logsBatch = IngestRoute(kind: .logs, isBatch: true, path: "/events/logs/batch")
    static let metrics = IngestRoute(kind: .metrics, isBatch: false, path: "/events/metrics")
    static let deployments = IngestRoute(kind: .deployments, isBatch: false, path: "/events/deployments")
    /// All four.
    static let all = [logs, logsBatch, metrics, deployments]

    /// The route a request is for, or `nil` for anything else (another path, or a method other than POST). Matches
    /// as the router does: the query is ignored and so are empty path segments (`//events/logs/`).
    static func match(_ request: HTTPRequest) -> IngestRoute? {
        guard request.method == .post, let target = request.path else { return nil }
        switch target {
        case "/events/logs": return .logs
        case "/events/logs/batch": return .logsBatch
        case "/events/metrics": return .metrics
        case "/events/deployments": return .deployments
        default: break
        }
        let path = target.prefix { $0 != "?" && $0 != "#" }
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
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
