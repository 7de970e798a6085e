import Shared

/// What an OTLP export request became: the events to queue, and the records (log records or data points) refused,
/// with the first reasons, for the answer's `partial_success`.
public struct OTLPBatch: Sendable {
    /// The events, in the order of the request.
    public var events: [IngestEvent] = []
    /// How many records were refused.
    public private(set) var rejected = 0
    /// The first few reasons, each naming its record.
    private var reasons: [String] = []

    /// How many reasons the answer lists; the rest are counted.
    static let reasonsShown = 3

    /// What records are called in messages: `log records` or `data points`.
    let noun: String

    init(noun: String) { self.noun = noun }

    mutating func reject(_ path: @autoclosure () -> String, _ rejection: Rejection) {
        rejected += 1
        if reasons.count < Self.reasonsShown { reasons.append("\(path()): \(rejection.reason)") }
    }

    /// `partial_success.error_message`: `2 log records rejected: resourceLogs[0]…: reason; …`, or `nil` when none was.
    public var rejectionMessage: String? {
        guard rejected > 0 else { return nil }
        let more = rejected > reasons.count ? "; and \(rejected - reasons.count) more" : ""
        return "\(rejected) \(rejected == 1 ? String(noun.dropLast()) : noun) rejected: " + reasons.joined(separator: "; ") + more
    }
}
