/// An entry of the rejected stream (`RedisKeys.rejectedStream`, capped): an event a worker did not store because its
/// organization's service quota was full. Written by the worker when the event's entry is finished; the one
/// description of its fields.
public struct Rejection: Sendable, Equatable {
    /// Why: `service_quota_exceeded`.
    public var reason: String
    /// The event's id, organization, service and kind, and when it was accepted (ISO 8601).
    public var eventID: String
    public var org: String
    public var service: String
    public var kind: EventKind
    public var receivedAt: String
    /// The stream entry it came in, and that entry's id.
    public var sourceStream: String
    public var sourceID: String
    /// The limit that applied when the organization has no override of its own (`ServiceLimit`).
    public var defaultLimit: Int

    /// The reason of an event over its organization's service quota.
    public static let quotaReason = "service_quota_exceeded"

    public init(
        reason: String = Rejection.quotaReason, eventID: String, org: String, service: String, kind: EventKind, receivedAt: String,
        sourceStream: String, sourceID: String, defaultLimit: Int
    ) {
        self.reason = reason
        self.eventID = eventID
        self.org = org
        self.service = service
        self.kind = kind
        self.receivedAt = receivedAt
        self.sourceStream = sourceStream
        self.sourceID = sourceID
        self.defaultLimit = defaultLimit
    }

    /// Read back from the rejected stream; `nil` for an entry that is not one.
    public init?(_ entry: StreamEntry) {
        guard let fields = entry.fields else { return nil }
        var values: [String: String] = [:]
        for field in fields { values[String(decoding: field.name, as: UTF8.self)] = String(decoding: field.value, as: UTF8.self) }
        guard let reason = values["reason"], let eventID = values["id"], let org = values["org"], let service = values["service"],
            let kind = values["kind"].flatMap(EventKind.init(rawValue:)), let receivedAt = values["received_at"],
            let sourceStream = values["source_stream"], let sourceID = values["source_id"], let defaultLimit = values["default_limit"].flatMap({ Int($0) })
        else { return nil }
        self.init(
            reason: reason, eventID: eventID, org: org, service: service, kind: kind, receivedAt: receivedAt, sourceStream: sourceStream,
            sourceID: sourceID, defaultLimit: defaultLimit)
    }

    /// The stream entry's fields.
    public var fields: [(name: [UInt8], value: [UInt8])] {
        [
            ("reason", reason), ("id", eventID), ("org", org), ("service", service), ("kind", kind.rawValue), ("received_at", receivedAt),
            ("source_stream", sourceStream), ("source_id", sourceID), ("default_limit", String(defaultLimit)),
        ].map { (Array($0.0.utf8), Array($0.1.utf8)) }
    }

    /// The `XADD` that writes it to `rejectedStream`, trimmed to about `maxLength` entries.
    public func append(to rejectedStream: String, maxLength: Int) -> XADD {
        XADD(rejectedStream, approximateMaxLength: maxLength, fields: fields)
    }
}
