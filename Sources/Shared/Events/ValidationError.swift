/// Why an event was refused: shown to the client as `Invalid <kind> event: <path> <rule>`.
public struct ValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of event that was being read.
    public var kind: EventKind
    /// Where: a field (`level`, `labels.region`, `[3].message`), or empty for the whole body.
    public var path: String
    /// The rule broken, such as `must be a string`.
    public var rule: String

    /// Makes an error.
    public init(kind: EventKind, path: String, rule: String) {
        self.kind = kind
        self.path = path
        self.rule = rule
    }

    /// The message for the response body, as the spec shapes it.
    public var message: String {
        path.isEmpty ? "Invalid \(kind.noun) event: \(rule)" : "Invalid \(kind.noun) event: \(path) \(rule)"
    }

    public var description: String { message }
}
