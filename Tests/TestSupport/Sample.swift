import Foundation
import Shared

/// Events made like the gateway makes them.
public enum Sample {
    static let validator = EventValidator()

    public static func log(service: String = "api", org: String = "default", message: String = "hello", id: String = UUID().uuidString.lowercased())
        -> QueuedEvent
    {
        let body =
            #"{"service":"\#(service)","level":"warn","message":"\#(message)","traceId":"t-1","spanId":"s-1","timestamp":"2024-05-01T12:00:00.5+02:00","metadata":{"region":"eu","n":[1,{"x":true}]}}"#
        return QueuedEvent(id: id, org: org, receivedAt: Timestamp(milliseconds: 1_700_000_000_000), event: try! validator.event(.logs, body: Array(body.utf8)))
    }

    /// Events an earlier gateway accepted that PostgreSQL cannot store: NUL in a text and in a jsonb key, a number
    /// past numeric's exponent range, an instant in year 0000. Each is refused by today's gateway.
    public static func poison() -> [QueuedEvent] {
        let yearZero = Timestamp(milliseconds: Timestamp.storable.lowerBound.milliseconds - 3_600_000)
        let events: [Shared.LogEvent] = [
            Shared.LogEvent(service: "api", level: .info, message: "a\u{0}b", timestamp: .now),
            Shared.LogEvent(service: "api", level: .info, message: "m", timestamp: .now, metadata: .object([("k\u{0}", .string("v"))])),
            Shared.LogEvent(service: "api", level: .info, message: "m", timestamp: .now, metadata: .object([("n", .number("1e131072"))])),
            Shared.LogEvent(service: "api", level: .info, message: "m", timestamp: yearZero),
        ]
        return events.map { QueuedEvent(id: UUID().uuidString.lowercased(), org: "default", receivedAt: .now, event: .log($0)) }
    }

    public static func metric(service: String = "api", org: String = "default") -> QueuedEvent {
        let body = #"{"service":"\#(service)","name":"cpu","value":0.25,"unit":"percent","labels":{"host":"a","zone":"b"}}"#
        return QueuedEvent(id: UUID().uuidString.lowercased(), org: org, receivedAt: .now, event: try! validator.event(.metrics, body: Array(body.utf8)))
    }

    public static func deployment(service: String = "api", org: String = "default") -> QueuedEvent {
        let body = #"{"service":"\#(service)","version":"v2.0.1","environment":"production","gitHash":"a1b2c3d4","metadata":{"deployedBy":"jenkins"}}"#
        return QueuedEvent(id: UUID().uuidString.lowercased(), org: org, receivedAt: .now, event: try! validator.event(.deployments, body: Array(body.utf8)))
    }
}
