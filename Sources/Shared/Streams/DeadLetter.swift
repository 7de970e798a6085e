/// An entry of the dead-letter stream (`RedisKeys.deadLetterStream`): what a worker could never store (an entry that
/// cannot be decoded, or an event the database refused `maxAttempts` times), why, and the entry as it was. Written by
/// the worker, read and replayed by `operyn-admin dlq`: this is the one description of its fields, `dlq_*` first, then
/// the original entry's.
public struct DeadLetter: Sendable {
    /// Its id in the dead-letter stream, once written (read back).
    public var id: String?
    /// The stream the entry was read from.
    public var stream: String
    /// Its id there.
    public var originalID: String
    public var reason: String
    /// How many times it was tried.
    public var attempts: Int
    /// When it was dead-lettered, ISO 8601.
    public var at: String
    /// The worker (consumer) that moved it.
    public var consumer: String
    /// The entry's fields as they were on its stream (a chunk's refused event as a chunk of one).
    public var originalFields: [(name: [UInt8], value: [UInt8])]

    public init(
        stream: String, originalID: String, reason: String, attempts: Int, at: String = Timestamp.now.iso8601, consumer: String,
        originalFields: [(name: [UInt8], value: [UInt8])]
    ) {
        self.stream = stream
        self.originalID = originalID
        self.reason = reason
        self.attempts = attempts
        self.at = at
        self.consumer = consumer
        self.originalFields = originalFields
    }

    /// Read back from the dead-letter stream; fields it lacks read as empty (0 attempts).
    public init(_ entry: StreamEntry) {
        let fields = (entry.fields ?? []).map { (name: Array($0.name), value: Array($0.value)) }
        func value(_ name: String) -> String {
            fields.first { $0.name == Array(name.utf8) }.map { String(decoding: $0.value, as: UTF8.self) } ?? ""
        }
        self.init(
            stream: value(Self.streamField), originalID: value(Self.idField), reason: value(Self.reasonField), attempts: Int(value(Self.attemptsField)) ?? 0,
            at: value(Self.atField), consumer: value(Self.consumerField),
            originalFields: fields.filter { !$0.name.starts(with: Array(Self.fieldPrefix.utf8)) })
        id = entry.id
    }

    static let fieldPrefix = "dlq_"
    static let reasonField = "dlq_reason", streamField = "dlq_stream", idField = "dlq_id", attemptsField = "dlq_attempts", atField = "dlq_at"
    static let consumerField = "dlq_consumer"

    /// The stream entry's fields: the `dlq_*` fields, then the original entry's.
    public var fields: [(name: [UInt8], value: [UInt8])] {
        let own = [
            (Self.reasonField, reason), (Self.streamField, stream), (Self.idField, originalID), (Self.attemptsField, String(attempts)),
            (Self.atField, at), (Self.consumerField, consumer),
        ]
        return own.map { (name: Array($0.0.utf8), value: Array($0.1.utf8)) } + originalFields
    }

    /// The `XADD` that writes it to `deadLetterStream`.
    public func append(to deadLetterStream: String) -> XADD { XADD(deadLetterStream, fields: fields) }

    /// As `operyn-admin dlq list --json` shows it.
    public var json: JSONValue {
        .object([
            ("id", .string(id ?? "")), ("stream", .string(stream)), ("originalId", .string(originalID)), ("reason", .string(reason)),
            ("attempts", .number(String(attempts))), ("at", .string(at)),
            ("fields", .object(originalFields.map { (String(decoding: $0.name, as: UTF8.self), .string(String(decoding: $0.value, as: UTF8.self))) })),
        ])
    }
}
