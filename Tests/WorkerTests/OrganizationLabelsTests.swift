import Prometheus
import Shared
import Testing

@testable import Worker

/// Prometheus series per organization stay bounded however many organizations there are.
@Suite("Bounded per-organization metrics")
struct OrganizationLabelsTests {
    @Test func tensOfThousandsOfOrganizationsMakeABoundedScrape() {
        let registry = PrometheusCollectorRegistry()
        let metrics = WorkerMetrics(factory: PrometheusMetricsFactory(registry: registry), organizations: OrganizationLabels(capacity: 50, threshold: 1_000))
        // Two large organizations among 30 000 small ones.
        for index in 0..<30_000 {
            metrics.stored(kind: .logs, org: "small-\(index)", events: 3)
            if index % 100 == 0 {
                metrics.stored(kind: .logs, org: "big-a", events: 40)
                metrics.stored(kind: .metrics, org: "big-b", events: 40)
                metrics.rejected(kind: .logs, org: "small-\(index)")
            }
        }
        var scrape: [UInt8] = []
        registry.emit(into: &scrape)
        let text = String(decoding: scrape, as: UTF8.self)
        let series = text.split(separator: "\n").filter { !$0.hasPrefix("#") && $0.contains("operyn_worker_events_") }
        #expect(series.count <= 2 * (50 + 1) * EventKind.allCases.count, "\(series.count) series")
        #expect(scrape.count < 50_000, "\(scrape.count) bytes")
        #expect(metrics.organizations.labeledCount == 2, "only the two that reached 1 000 events")
        #expect(text.contains(#"org="big-a""#) && text.contains(#"org="big-b""#) && text.contains(#"org="other""#))
        #expect(!text.contains("small-"))
        // Nothing is lost: every event is counted under one label or another.
        let stored = series.filter { $0.hasPrefix("operyn_worker_events_stored_total") }.compactMap { Double($0.split(separator: " ").last ?? "") }
        #expect(stored.reduce(0, +) == Double(30_000 * 3 + 300 * 40 * 2))
    }

    @Test func labelsAreGivenUpToTheCapacityAndKept() {
        let labels = OrganizationLabels(capacity: 2, threshold: 10)
        #expect(labels.label(for: "a", events: 9) == "other")
        #expect(labels.label(for: "a", events: 1) == "a", "reached the threshold")
        #expect(labels.label(for: "b", events: 50) == "b")
        #expect(labels.label(for: "c", events: 1_000) == "other", "no capacity left")
        #expect(labels.label(for: "a", events: 1) == "a", "kept")
        #expect(OrganizationLabels(capacity: 0, threshold: 1).label(for: "x", events: 5) == "other", "0 turns per-organization series off")
    }
}
