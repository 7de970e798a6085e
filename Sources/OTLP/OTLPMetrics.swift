import Shared

/// OTLP data points as `metrics` events, one data point giving one row or more:
///
/// | OTLP | rows (`name`, `unit`, `value`) |
/// |---|---|
/// | gauge, sum (either temporality, monotonic or not) | the metric's name and unit, the point's value (`as_int` as a double) |
/// | histogram, exponential histogram | `<name>_count` (unit `1`), and when present `<name>_sum`, `<name>_min`, `<name>_max` |
/// | summary | `<name>_count`, `<name>_sum`, and per quantile `<name>` with label `quantile` |
///
/// Every row takes the resource's `service.name` as `service`, the point's attributes as `labels` (any value that is
/// not a string as its compact JSON) and its `time_unix_nano` (else receipt) as `timestamp`. A point is refused
/// whole when any of its rows is, when it has no value, or when it is flagged as having no recorded value.
public struct OTLPMetrics: Sendable {
    /// The rules every event meets.
    public var validator: EventValidator

    public init(validator: EventValidator) { self.validator = validator }

    /// The request's data points as events; `now` stands for a point without a time.
    public func events(_ request: OTLPExportMetricsServiceRequest, now: Timestamp) -> OTLPBatch {
        var batch = OTLPBatch(noun: "data points")
        for (r, resourceMetrics) in request.resourceMetrics.enumerated() {
            let service = OTLPValues.serviceName(resourceMetrics.resource.attributes)
            for (s, scopeMetrics) in resourceMetrics.scopeMetrics.enumerated() {
                for (m, metric) in scopeMetrics.metrics.enumerated() {
                    let points = Self.points(metric)
                    for index in 0..<points.count {
                        do {
                            let rows = try rows(points.point(index), metric: metric, service: service.get(), now: now)
                            batch.events.append(contentsOf: rows)
                        } catch {
                            batch.reject("resourceMetrics[\(r)].scopeMetrics[\(s)].metrics[\(m)] (\(metric.name.prefix(64))) dataPoints[\(index)]", error)
                        }
                    }
                }
            }
        }
        return batch
    }

    /// What one data point holds, whatever its kind.
    struct Point {
        var attributes: [OTLPKeyValue]
        var timeUnixNano: UInt64
        var flags: UInt32
        /// Name suffix, unit (`nil`: the metric's), value, extra label.
        var values: [(suffix: String, unit: String?, value: Double?, label: (key: String, value: String)?)]
    }

    /// A metric's data points, read lazily by index.
    struct Points {
        let count: Int
        let point: (Int) -> Point
    }

    static func points(_ metric: OTLPMetric) -> Points {
        switch metric.data {
        case .gauge(let gauge): return Points(count: gauge.dataPoints.count) { number(gauge.dataPoints[$0]) }
        case .sum(let sum): return Points(count: sum.dataPoints.count) { number(sum.dataPoints[$0]) }
        case .histogram(let histogram): return Points(count: histogram.dataPoints.count) { distribution(histogram.dataPoints[$0]) }
        case .exponentialHistogram(let histogram): return Points(count: histogram.dataPoints.count) { distribution(histogram.dataPoints[$0]) }
        case .summary(let summary):
            return Points(count: summary.dataPoints.count) { index in
                let point = summary.dataPoints[index]
                var values: [(suffix: String, unit: String?, value: Double?, label: (key: String, value: String)?)] = [
                    ("_count", "1", Double(point.count), nil), ("_sum", nil, point.sum, nil),
                ]
                for quantile in point.quantileValues {
                    values.append(("", nil, quantile.value, ("quantile", OTLPValues.numberText(quantile.quantile))))
                }
                return Point(attributes: point.attributes, timeUnixNano: point.timeUnixNano, flags: point.flags, values: values)
            }
        case nil: return Points(count: 0) { _ in preconditionFailure("a metric without data has no points") }
        }
    }

    static func number(_ point: OTLPNumberDataPoint) -> Point {
        let value: Double? =
            switch point.value {
            case .asDouble(let number): number
            case .asInt(let number): Double(number)
            case nil: nil
            }
        return Point(attributes: point.attributes, timeUnixNano: point.timeUnixNano, flags: point.flags, values: [("", nil, value, nil)])
    }

    static func distribution(_ point: some OTLPDistributionPoint) -> Point {
        var values: [(suffix: String, unit: String?, value: Double?, label: (key: String, value: String)?)] = [("_count", "1", Double(point.count), nil)]
        if point.hasSum { values.append(("_sum", nil, point.sum, nil)) }
        if point.hasMin { values.append(("_min", nil, point.min, nil)) }
        if point.hasMax { values.append(("_max", nil, point.max, nil)) }
        return Point(attributes: point.attributes, timeUnixNano: point.timeUnixNano, flags: point.flags, values: values)
    }

    /// `DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK`.
    static let noRecordedValue: UInt32 = 1

    private func rows(_ point: Point, metric: OTLPMetric, service: String, now: Timestamp) throws(Rejection) -> [IngestEvent] {
        if point.flags & Self.noRecordedValue != 0 { throw Rejection("has no recorded value (flag NO_RECORDED_VALUE)") }
        let timestamp = OTLPValues.timestamp(unixNano: point.timeUnixNano) ?? now
        let labels = OTLPValues.labels(point.attributes)
        var rows: [IngestEvent] = []
        rows.reserveCapacity(point.values.count)
        for value in point.values {
            guard let number = value.value else { throw Rejection("has no value (as_double or as_int)") }
            var rowLabels = labels
            if let label = value.label { rowLabels.append(label) }
            let event = MetricEvent(
                service: service, name: metric.name + value.suffix, value: number, unit: value.unit ?? metric.unit, timestamp: timestamp,
                labels: rowLabels.isEmpty ? nil : rowLabels)
            do {
                rows.append(try validator.checked(.metric(event), path: ""))
            } catch {
                throw Rejection(error)
            }
        }
        return rows
    }
}

/// What histogram and exponential histogram points have in common: the rows are made from these.
protocol OTLPDistributionPoint {
    var attributes: [OTLPKeyValue] { get }
    var timeUnixNano: UInt64 { get }
    var flags: UInt32 { get }
    var count: UInt64 { get }
    var sum: Double { get }
    var hasSum: Bool { get }
    var min: Double { get }
    var hasMin: Bool { get }
    var max: Double { get }
    var hasMax: Bool { get }
}

extension OTLPHistogramDataPoint: OTLPDistributionPoint {}
extension OTLPExponentialHistogramDataPoint: OTLPDistributionPoint {}
