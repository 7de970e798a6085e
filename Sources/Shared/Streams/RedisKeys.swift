/// Every Redis key and name the project uses, derived from `OPERYN_KEY_PREFIX` in this one place.
/// docs/operations.md lists them for operators using `redis-cli`.
///
/// Each kind's stream is split into `partitions` streams, on one server as in a Redis Cluster, an organization's events
/// all going to one (`partition(of:)`): the streams of one partition share a hash tag (`<prefix>:stream:{p3-…}:logs`),
/// so the layout is the same on both. In a cluster (`clustered`) the other keys carry hash tags too, so that what one
/// script or transaction touches shares a slot: an organization's keys are tagged by the organization
/// (`<prefix>:org:{acme}:services`); on one server they are as they always were.
///
/// One partition on one server (`OPERYN_STREAM_PARTITIONS=1`) is the layout before partitions: one stream per kind,
/// `<prefix>:stream:<kind>`. With more, workers on one server also read those streams until they are empty
/// (`previousLayoutPartition`), so an upgrade loses nothing.
///
/// Each partition also has an overflow stream per kind (`<prefix>:stream:{p3-…}:logs:overflow`, in the partition's
/// slot), where the gateways append the events of organizations whose backlog or rate passed the overflow thresholds
/// (`overflowTenants`), so that the partition's other organizations pass them. Streams are numbered: a partition's
/// own `0..<partitions`, the previous layout's `partitions`, the overflow stream of partition `p`
/// `partitions + 1 + p` (`overflowIndex(of:)`); everything that reads, acknowledges or claims by number takes them
/// all alike.
public struct RedisKeys: Sendable, Equatable {
    /// The prefix of every key (default `operyn`).
    public let prefix: String
    /// Whether the keys are a Redis Cluster's (hash-tagged).
    public let clustered: Bool
    /// How many streams each kind is split into.
    public let partitions: Int
    /// Each partition's hash tag.
    private let tags: [String]
    /// Each event stream's kind and partition, by key (the previous layout's included).
    private let locations: [String: Location]

    private struct Location: Equatable {
        var kind: EventKind
        var partition: Int
    }

    /// The default number of partitions in a cluster.
    public static let defaultPartitions = 16

    /// Keys under `prefix`; in a cluster (`clustered`), with `partitions` streams per kind.
    public init(prefix: String = "operyn", clustered: Bool = false, partitions: Int = RedisKeys.defaultPartitions) {
        self.prefix = prefix
        self.clustered = clustered
        self.partitions = max(1, partitions)
        tags = (0..<self.partitions).map { Self.tag(partition: $0, of: max(1, partitions)) }
        var locations: [String: Location] = [:]
        let tagged = clustered || self.partitions > 1
        for kind in EventKind.allCases {
            let unpartitioned = "\(prefix):stream:\(kind.rawValue)"
            for partition in 0..<self.partitions {
                locations[tagged ? "\(prefix):stream:{\(tags[partition])}:\(kind.rawValue)" : unpartitioned] = Location(kind: kind, partition: partition)
            }
            if !clustered && self.partitions > 1 { locations[unpartitioned] = Location(kind: kind, partition: self.partitions) }
            for partition in 0..<self.partitions {
                let key = tagged ? "\(prefix):stream:{\(tags[partition])}:\(kind.rawValue):overflow" : "\(unpartitioned):overflow"
                locations[key] = Location(kind: kind, partition: self.partitions + 1 + partition)
            }
        }
        self.locations = locations
    }

    /// Whether each kind has the one stream of the layout before partitions (one partition on one server).
    public var isUnpartitioned: Bool { !clustered && partitions == 1 }

    /// `<prefix>:stream:{<tag>}:<kind>`: the stream of `partition` the gateway appends events of `kind` to;
    /// `<prefix>:stream:<kind>` with one partition on one server, and for `previousLayoutPartition`.
    /// A number past the previous layout's is an overflow stream (`overflowIndex(of:)`).
    public func stream(_ kind: EventKind, partition: Int = 0) -> String {
        if partition > partitions { return overflowStream(kind, partition: partition - partitions - 1) }
        if isUnpartitioned || partition == previousLayoutPartition { return unpartitionedStream(kind) }
        return "\(prefix):stream:{\(tags[partition])}:\(kind.rawValue)"
    }

    /// `<prefix>:stream:{<tag>}:<kind>:overflow` (`<prefix>:stream:<kind>:overflow` with one partition on one server):
    /// the overflow stream of `partition`, in its slot.
    public func overflowStream(_ kind: EventKind, partition: Int) -> String {
        isUnpartitioned ? "\(unpartitionedStream(kind)):overflow" : "\(prefix):stream:{\(tags[partition])}:\(kind.rawValue):overflow"
    }

    /// The number of `partition`'s overflow streams.
    public func overflowIndex(of partition: Int) -> Int { partitions + 1 + partition }

    /// Whether the stream number `index` is an overflow stream's.
    public func isOverflow(_ index: Int) -> Bool { index > partitions }

    /// The partition whose events a stream of number `index` holds: its own, or the one it is the overflow of; `nil`
    /// for the previous layout's, which holds every partition's.
    public func basePartition(ofStream index: Int) -> Int? {
        index < partitions ? index : index > partitions ? index - partitions - 1 : nil
    }

    /// `<prefix>:stream:<kind>`: the stream of each kind before partitions.
    public func unpartitionedStream(_ kind: EventKind) -> String { "\(prefix):stream:\(kind.rawValue)" }

    /// On one server with partitions: the partition number (one past the last) that stands for the streams of the
    /// layout before partitions, which workers read until they are empty; `nil` in a cluster or with one partition.
    public var previousLayoutPartition: Int? { clustered || partitions == 1 ? nil : partitions }

    /// The numbers of every partition's stream and overflow stream.
    public var streamIndices: [Int] { Array(0..<partitions) + (0..<partitions).map(overflowIndex(of:)) }

    /// Every stream of `kind`: each partition's, then each overflow stream.
    public func streams(_ kind: EventKind) -> [String] { streamIndices.map { stream(kind, partition: $0) } }

    /// Every event stream: each kind's, of every partition, and the overflow streams.
    public var allStreams: [String] { EventKind.allCases.flatMap { streams($0) } }

    /// The kind and partition of an event stream's key, if it is one (the previous layout's as
    /// `previousLayoutPartition`).
    public func locate(stream key: String) -> (kind: EventKind, partition: Int)? {
        locations[key].map { ($0.kind, $0.partition) }
    }

    /// The partition an organization's events go to: fixed for a given organization and partition count, so its
    /// events stay in order. It is the partition whose tags' slots lie where the organization's own tag falls, so
    /// its events and its keys are mostly on the same master.
    public func partition(of organization: String) -> Int {
        partitions == 1 ? 0 : RedisHashSlot.of(Array(organization.utf8)) * partitions / RedisHashSlot.count
    }

    /// The hash tag of `partition` of `count`: `p<partition>-<n>` with the smallest `n` whose slot lies in the
    /// partition's share of the slots (slot × count / 16384 = partition), so the partitions spread evenly over
    /// masters that each serve a range of slots, as `redis-cli --cluster create` and `rebalance` arrange them.
    static func tag(partition: Int, of count: Int) -> String {
        var n = 0
        while true {
            let tag = "p\(partition)-\(n)"
            if RedisHashSlot.of(Array(tag.utf8)) * count / RedisHashSlot.count == partition { return tag }
            n += 1
        }
    }

    /// `<prefix>:flow:{<tag>}` (`<prefix>:flow` with one partition on one server): how many events of each
    /// organization of `partition` were appended (`in:<org>`, counted by the gateways) and finished (`out:<org>`,
    /// stored, rejected or dead-lettered, counted as the workers acknowledge them); the difference is the
    /// organization's backlog, which the overflow thresholds weigh. In the partition's slot.
    public func flow(partition: Int) -> String { isUnpartitioned ? "\(prefix):flow" : "\(prefix):flow:{\(tags[partition])}" }

    /// `<prefix>:overflow`: the organizations whose new events go to their partition's overflow stream (hash;
    /// organization → `OverflowTenant`), kept by the worker holding `overflowLease`.
    public var overflowTenants: String { "\(prefix):overflow" }

    /// `<prefix>:overflow:lease`: which worker decides the overflow now (hash; field `holder`; with an expiry).
    public var overflowLease: String { "\(prefix):overflow:lease" }

    /// `<prefix>-workers`: the consumer group every worker reads through.
    public var consumerGroup: String { "\(prefix)-workers" }

    /// `<prefix>:stream:deadletter`: entries that failed processing too often, with their reason.
    public var deadLetterStream: String { "\(prefix):stream:deadletter" }

    /// `<prefix>:stream:rejected`: events refused by the service quota, with their reason (capped).
    public var rejectedStream: String { "\(prefix):stream:rejected" }

    /// `<prefix>:attempts`: how often processing each pending entry has failed (hash; field `<kind>:<entry id>`, in a
    /// cluster `<kind>:<partition>:<entry id>`).
    public var attempts: String { "\(prefix):attempts" }

    /// An organization's part of its keys: the id, in a cluster as a hash tag.
    private func org(_ org: String) -> String { clustered ? "{\(org)}" : org }

    /// `<prefix>:org:<org>:services`: the set of services an organization has used.
    public func services(org: String) -> String { "\(prefix):org:\(self.org(org)):services" }

    /// `<prefix>:org:<org>:settings`: per-organization settings (hash; fields `service_limit`, the rate limit's, `retention_days` and `retention_days:<kind>`).
    public func settings(org: String) -> String { "\(prefix):org:\(self.org(org)):settings" }

    /// `<prefix>:org:<org>:counts`: per-organization counters (hash; `stored:<kind>`, `rejected:<reason>`).
    public func counts(org: String) -> String { "\(prefix):org:\(self.org(org)):counts" }

    /// `<prefix>:org:<org>:rate`, in a cluster `<prefix>:rate:{<partition tag>}:<org>`: the organization's rate-limit
    /// budget (hash; `events`, `bytes`: GCRA timestamps), in the slot of the streams its events go to, so that one
    /// script admits and appends.
    public func rateState(org: String) -> String {
        clustered ? "\(prefix):rate:{\(tags[partition(of: org)])}:\(org)" : "\(prefix):org:\(org):rate"
    }

    /// `<prefix>:org:<org>:idem:<key>`, in a cluster `<prefix>:idem:{<partition tag>}:<org>:<key>`: the record of an
    /// `Idempotency-Key` (hash; `digest` of the request, `answer`: its 202 body), in the slot of the organization's
    /// streams, so that one script checks, appends and records.
    public func idempotency(org: String, key: String) -> String {
        clustered ? "\(prefix):idem:{\(tags[partition(of: org)])}:\(org):\(key)" : "\(prefix):org:\(org):idem:\(key)"
    }

    /// `<prefix>:org:<org>:usage:<YYYY-MM-DD>`, in a cluster `<prefix>:usage:{<partition tag>}:<org>:<YYYY-MM-DD>`: an
    /// organization's usage on one UTC day (hash; `<measure>:<kind>`, `Usage`), in the slot of its streams so that the
    /// append script counts what it refuses.
    public func usage(org: String, day: String) -> String {
        clustered ? "\(prefix):usage:{\(tags[partition(of: org)])}:\(org):\(day)" : "\(prefix):org:\(org):usage:\(day)"
    }

    /// `<prefix>:backlog:shape`: the mean events per entry of each stream's newest entries (hash; stream key →
    /// number), which the workers sample and publish so that gateways estimate their backlog in events without the
    /// right to read entries.
    public var backlogShape: String { "\(prefix):backlog:shape" }

    /// `<prefix>:retention:orgs`: the organizations with a retention override (set), so that workers read the
    /// overrides without scanning every organization.
    public var retentionOrganizations: String { "\(prefix):retention:orgs" }

    /// `<prefix>:retention:lease`: which worker runs retention now (hash; field `holder`: its consumer name; with an
    /// expiry), so one worker at a time does.
    public var retentionLease: String { "\(prefix):retention:lease" }

    /// `<prefix>:storage`: what the stores hold, as the retention run last read it (hash; `retention_days`, `at`,
    /// `<kind>:oldest_day`, `<kind>:partitions`, `<kind>:bytes`; `StorageReport`).
    public var storage: String { "\(prefix):storage" }

    /// `<prefix>:org:<org>:keys`: an organization's API keys (hash; key id → SHA-256 of the key, hex).
    public func apiKeys(org: String) -> String { "\(prefix):org:\(self.org(org)):keys" }

    /// `<prefix>:apikey:<sha256>`: one API key's record (hash; `id`, `org`, `created_at`, optional `expires_at`), found by
    /// the SHA-256 of the key; the key itself is never stored.
    public func apiKey(sha256 digest: String) -> String { "\(prefix):apikey:\(digest)" }
}

/// Organization ids: `^[A-Za-z0-9_-]{1,64}$`; omitted means `default`.
public enum OrganizationID {
    /// The organization of requests without `x-organization-id`.
    public static let `default` = "default"

    /// Whether `text` is a valid organization id, checked before any key is built from it.
    public static func isValid(_ text: some StringProtocol) -> Bool {
        let bytes = text.utf8
        guard (1...64).contains(bytes.count) else { return false }
        return bytes.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
                true
            default: false
            }
        }
    }
}
