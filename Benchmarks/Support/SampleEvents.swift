import Shared

/// The events the worker benchmarks store: logs (two shapes), metrics and deployments of five services, as the
/// gateway would have validated them. `operyn-redis-bench preload` queues them; `operyn-sink-ceiling` stores the
/// same rows straight into the database.
public enum SampleEvents {
    /// The twenty templates, in the order they are cycled through.
    public static func templates() throws -> [IngestEvent] {
        let validator = EventValidator()
        let bodies: [(EventKind, String)] = (0..<5).flatMap { service in
            [
                (
                    EventKind.logs,
                    #"{"service":"svc-\#(service)","level":"info","message":"request handled in 12 ms","traceId":"abc-123","metadata":{"region":"eu-west-1","env":"prod"}}"#
                ),
                (.logs, #"{"service":"svc-\#(service)","level":"error","message":"upstream timeout connecting to auth-service"}"#),
                (.metrics, #"{"service":"svc-\#(service)","name":"request_latency_p99","value":2.34,"unit":"seconds","labels":{"region":"eu-west-1"}}"#),
                (.deployments, #"{"service":"svc-\#(service)","version":"v2.0.1","environment":"production","gitHash":"a1b2c3d4"}"#),
            ]
        }
        return try bodies.map { try validator.event($0.0, body: Array($0.1.utf8)) }
    }

    /// `count` queued events cycling through the templates from `offset`, each with a new id, organization
    /// `default`, received now.
    public static func queued(_ templates: [IngestEvent], count: Int, offset: Int = 0) -> [QueuedEvent] {
        (0..<count).map { index in
            QueuedEvent(id: EventID.make(), org: "default", receivedAt: .now, event: templates[(offset + index) % templates.count])
        }
    }
}
