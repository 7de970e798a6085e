import HTTPTypes
import Metrics

/// The request metrics of the ingestion routes, the same series Hummingbird's `MetricsMiddleware` records for the
/// other routes (`hb_requests`, `http_server_request_duration_seconds`, `hb_request_errors` by route, method and
/// status), made once rather than looked up per request.
struct IngestMetrics: Sendable {
    struct Series: Sendable {
        let requests: Counter
        let duration: Timer
        let errors: Counter?
    }

    /// Every status an ingestion route answers.
    static let statuses: [HTTPResponse.Status] = [
        .ok, .accepted, .badRequest, .unauthorized, .notAcceptable, .forbidden, .requestTimeout, .contentTooLarge, .unsupportedMediaType, .unprocessableContent,
        .tooManyRequests,
        .internalServerError, .serviceUnavailable,
    ]

    /// By route, then status, for the route's first method; `others` for the rest (`PUT /_bulk`).
    private let series: [IngestRoute: [Int: Series]]
    private let others: [IngestRoute: [HTTPRequest.Method: [Int: Series]]]

    init(factory: any MetricsFactory) {
        func byStatus(_ route: IngestRoute, _ method: HTTPRequest.Method) -> [Int: Series] {
            var byStatus: [Int: Series] = [:]
            for status in Self.statuses {
                let dimensions = [("http.route", route.path), ("http.request.method", method.rawValue), ("http.response.status_code", String(status.code))]
                byStatus[status.code] = Series(
                    requests: Counter(label: "hb.requests", dimensions: dimensions, factory: factory),
                    duration: Timer(label: "http.server.request.duration", dimensions: dimensions, factory: factory),
                    errors: status.code >= 400 ? Counter(label: "hb.request.errors", dimensions: dimensions, factory: factory) : nil
                )
            }
            return byStatus
        }
        var series: [IngestRoute: [Int: Series]] = [:]
        var others: [IngestRoute: [HTTPRequest.Method: [Int: Series]]] = [:]
        for route in IngestRoute.table {
            series[route] = byStatus(route, route.methods[0])
            for method in route.methods.dropFirst() { others[route, default: [:]][method] = byStatus(route, method) }
        }
        self.series = series
        self.others = others
    }

    /// Counts one answer of `route` to `method` with `status`, `nanoseconds` after its head arrived.
    func record(_ route: IngestRoute, method: HTTPRequest.Method, status: HTTPResponse.Status, nanoseconds: Int64) {
        let series = method == route.methods[0] ? series[route]?[status.code] : others[route]?[method]?[status.code]
        guard let series else { return }
        series.requests.increment()
        series.duration.recordNanoseconds(nanoseconds)
        series.errors?.increment()
    }
}
