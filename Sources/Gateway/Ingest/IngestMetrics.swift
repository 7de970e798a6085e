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
        .ok, .accepted, .badRequest, .unauthorized, .forbidden, .requestTimeout, .contentTooLarge, .unsupportedMediaType, .unprocessableContent,
        .tooManyRequests,
        .internalServerError, .serviceUnavailable,
    ]

    private let series: [IngestRoute: [Int: Series]]

    init(factory: any MetricsFactory) {
        var series: [IngestRoute: [Int: Series]] = [:]
        for route in IngestRoute.all {
            var byStatus: [Int: Series] = [:]
            for status in Self.statuses {
                let dimensions = [("http.route", route.path), ("http.request.method", "POST"), ("http.response.status_code", String(status.code))]
                byStatus[status.code] = Series(
                    requests: Counter(label: "hb.requests", dimensions: dimensions, factory: factory),
                    duration: Timer(label: "http.server.request.duration", dimensions: dimensions, factory: factory),
                    errors: status.code >= 400 ? Counter(label: "hb.request.errors", dimensions: dimensions, factory: factory) : nil
                )
            }
            series[route] = byStatus
        }
        self.series = series
    }

    /// Counts one answer of `route` with `status`, `nanoseconds` after its head arrived.
    func record(_ route: IngestRoute, status: HTTPResponse.Status, nanoseconds: Int64) {
        guard let series = series[route]?[status.code] else { return }
        series.requests.increment()
        series.duration.recordNanoseconds(nanoseconds)
        series.errors?.increment()
    }
}
