import Foundation
import Shared

/// What the stores hold and how long they keep it, as the workers last published it (`StorageReport`), for
/// `status` (the default retention) and `orgs show` (the organization's).
struct StorageSummary {
    var published: StorageReport.Published
    /// The retention to show: the default's, or one organization's with its overrides.
    var policy: RetentionPolicy
    var organization: String?

    static func read(redis: RedisClient, keys: RedisKeys, organization: String? = nil) async throws(RedisError) -> StorageSummary {
        let published = try await StorageReport.read(redis: redis, keys: keys)
        var policy = RetentionPolicy(defaultDays: published.defaultDays)
        if let organization {
            policy = try await RetentionPolicy.read(redis: redis, keys: keys, organization: organization, defaultDays: published.defaultDays)
        }
        return StorageSummary(published: published, policy: policy, organization: organization)
    }

    func days(_ kind: EventKind) -> Int? { policy.days(organization: organization ?? "", kind: kind) }

    var json: JSONValue {
        .object(
            [
                ("published", published.at.map { .string($0) } ?? .null),
                ("defaultRetentionDays", published.defaultDays.map { .number(String($0)) } ?? .null),
            ]
                + EventKind.allCases.map { kind in
                    let report = published.reports[kind]
                    return (
                        kind.rawValue,
                        .object([
                            ("retentionDays", days(kind).map { .number(String($0)) } ?? .null),
                            ("retentionSource", .string(policy.source(organization: organization ?? "", kind: kind))),
                            ("oldestDay", report?.oldestDay.map { .string($0) } ?? .null),
                            ("partitions", report.map { .number(String($0.partitions)) } ?? .null),
                            ("bytes", report.map { .number(String($0.bytes)) } ?? .null),
                        ])
                    )
                })
    }

    var table: String {
        let rows = EventKind.allCases.map { kind in
            let report = published.reports[kind]
            let source = policy.source(organization: organization ?? "", kind: kind)
            let retention = days(kind).map { "\($0) days" } ?? "for ever"
            return [
                kind.rawValue, source == "default" ? retention : "\(retention) (set)", report?.oldestDay ?? "-",
                report.map { String($0.partitions) } ?? "-", report.map { Self.size($0.bytes) } ?? "-",
            ]
        }
        let heading =
            published.published
            ? "storage, as a worker read it at \(published.at ?? "?") (default retention: \(published.defaultDays.map { "\($0) days" } ?? "for ever")):"
            : "storage: no worker has published a report yet (workers publish one every OPERYN_RETENTION_INTERVAL_SECONDS):"
        return heading + "\n" + Table.render(["KIND", "RETENTION", "OLDEST DAY", "PARTITIONS", "SIZE"], rows)
    }

    /// Bytes in binary units.
    static func size(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1_024 && unit < units.count - 1 {
            value /= 1_024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }
}
