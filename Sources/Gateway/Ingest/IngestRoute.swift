import Foundation
import HTTPTypes
import Shared

/// One ingestion route: a path, its methods and the format of its bodies. `table` holds them all, and drives
/// `IngestHandler`'s matching, the 405 answers' `Allow` (`allowedMethods(for:)`), the request metrics and the OpenAPI
/// paths: a new format is one file and one row here.
struct IngestRoute: Sendable, Hashable {
    /// Its path, as metrics, logs and the OpenAPI document name it; `{name}` stands for any one segment.
    let path: String
    /// The methods it answers.
    let methods: [HTTPRequest.Method]
    /// What its bodies are and how it answers.
    let format: any IngestFormat
    /// The path's segments.
    private let segments: [Substring]

    init(_ path: String, _ format: any IngestFormat, methods: [HTTPRequest.Method] = [.post]) {
        self.path = path
        self.methods = methods
        self.format = format
        segments = path.split(separator: "/")
    }

    /// Whether the path has a `{parameter}`.
    var isTemplate: Bool { path.contains("{") }

    static func == (lhs: IngestRoute, rhs: IngestRoute) -> Bool { lhs.path == rhs.path }

    func hash(into hasher: inout Hasher) { hasher.combine(path) }

    static let logs = IngestRoute("/events/logs", JSONEventFormat(kind: .logs, isBatch: false))
    static let logsBatch = IngestRoute("/events/logs/batch", JSONEventFormat(kind: .logs, isBatch: true))
    static let metrics = IngestRoute("/events/metrics", JSONEventFormat(kind: .metrics, isBatch: false))
    static let deployments = IngestRoute("/events/deployments", JSONEventFormat(kind: .deployments, isBatch: false))
    static let otlpLogs = IngestRoute("/v1/logs", OTLPFormat(kind: .logs))
    static let otlpMetrics = IngestRoute("/v1/metrics", OTLPFormat(kind: .metrics))
    static let bulk = IngestRoute("/_bulk", ElasticsearchBulkFormat(), methods: [.post, .put])
    static let indexBulk = IngestRoute("/{index}/_bulk", ElasticsearchBulkFormat(), methods: [.post, .put])

    /// Every ingestion route.
    static let table = [logs, logsBatch, metrics, deployments, otlpLogs, otlpMetrics, bulk, indexBulk]

    /// The routes without parameters, by path: most requests are matched by one lookup.
    private static let exact = Dictionary(uniqueKeysWithValues: table.filter { !$0.isTemplate }.map { ($0.path, $0) })

    /// A request's route, the path it was asked by and its parameter.
    struct Match {
        let route: IngestRoute
        /// The path without its query or empty segments (`/logs-app/_bulk`).
        let path: String
        /// The value of the path's `{parameter}`, percent-decoded.
        let parameter: String?
    }

    /// The route a request is for, or `nil` for anything else (another path, or a method the route does not answer).
    /// Matches as the router does: the query is ignored and so are empty path segments (`//events/logs/`).
    static func match(_ request: HTTPRequest) -> Match? {
        guard let target = request.path else { return nil }
        if let route = exact[target] {
            return route.methods.contains(request.method) ? Match(route: route, path: route.path, parameter: nil) : nil
        }
        guard let found = find(target), found.route.methods.contains(request.method) else { return nil }
        return found
    }

    /// The methods the route at `path` answers, if one is there.
    static func methods(for path: String) -> [HTTPRequest.Method]? { find(path)?.route.methods }

    private static func find(_ target: String) -> Match? {
        let path = target.prefix { $0 != "?" && $0 != "#" }
        let segments = path.split(separator: "/")
        for route in table where route.segments.count == segments.count {
            var parameter: Substring?
            var matched = true
            for (pattern, segment) in zip(route.segments, segments) {
                if pattern.first == "{" {
                    parameter = segment
                } else if pattern != segment {
                    matched = false
                    break
                }
            }
            if matched {
                let decoded = parameter.map { String($0).removingPercentEncoding ?? String($0) }
                return Match(route: route, path: "/" + segments.joined(separator: "/"), parameter: decoded)
            }
        }
        return nil
    }
}
