import Metrics
import Shared

/// The gateway's own metric objects, made once (requests by route and status come from
/// Hummingbird's `MetricsMiddleware`).
struct GatewayMetrics: Sendable {
    /// `operyn_events_accepted_total{kind}`.
    let accepted: [EventKind: Counter]
    /// `operyn_redis_xadd_duration_seconds`: append round trips that succeeded (XADD, MULTI/EXEC or the guarded script; one
    /// per entry of a tick's requests).
    let xaddDuration: Timer
    /// `operyn_redis_errors_total`: appends that failed on Redis (a request's own, or the one entry of a tick's requests).
    let redisErrors: Counter
    /// `operyn_backpressure_rejections_total`: requests refused because the backlog was over the high-water mark.
    let backpressureRejections: Counter
    /// `operyn_rate_limited_total`: requests refused by their organization's rate limit (429, or 413 past the burst).
    let rateLimited: Counter

    /// The metric objects, made by `factory`.
    init(factory: any MetricsFactory) {
        var accepted: [EventKind: Counter] = [:]
        for kind in EventKind.allCases {
            accepted[kind] = Counter(label: "operyn_events_accepted_total", dimensions: [("kind", kind.rawValue)], factory: factory)
        }
        self.accepted = accepted
        xaddDuration = Timer(label: "operyn_redis_xadd_duration_seconds", dimensions: [], factory: factory)
        redisErrors = Counter(label: "operyn_redis_errors_total", dimensions: [], factory: factory)
        backpressureRejections = Counter(label: "operyn_backpressure_rejections_total", dimensions: [], factory: factory)
        rateLimited = Counter(label: "operyn_rate_limited_total", dimensions: [], factory: factory)
    }
}
