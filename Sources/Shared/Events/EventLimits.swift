/// Size bounds on what clients send; each is a setting (see the README).
public struct EventLimits: Sendable, Equatable {
    /// Largest body of a single-event request, in bytes (`OPERYN_MAX_BODY_BYTES`, 1 MiB).
    public var maxBodyBytes: Int = 1 << 20
    /// Largest body of a batch request, in bytes (`OPERYN_MAX_BATCH_BODY_BYTES`, 10 MiB).
    public var maxBatchBodyBytes: Int = 10 << 20
    /// Most events in one batch (`OPERYN_MAX_BATCH_EVENTS`, 10 000).
    public var maxBatchEvents: Int = 10_000
    /// Longest `message`, in UTF-8 bytes (`OPERYN_MAX_MESSAGE_BYTES`, 256 KiB).
    public var maxMessageBytes: Int = 256 << 10
    /// Longest other string, keys and values inside `metadata` and `labels` included, in UTF-8 bytes (`OPERYN_MAX_STRING_BYTES`, 1 KiB).
    public var maxStringBytes: Int = 1 << 10
    /// The most bytes a text that a store indexes may have (`service`, a metric's `name`, a deployment's
    /// `environment`, a log's `traceId`), whatever `maxStringBytes` says: so no accepted event makes an index row
    /// larger than PostgreSQL's btree takes (2 704 bytes; the widest index holds the organization id, two such texts
    /// and a timestamp).
    public static let indexedBytesCeiling = 1 << 10
    /// Longest indexed text, in UTF-8 bytes: `maxStringBytes`, at most `indexedBytesCeiling`.
    public var maxIndexedBytes: Int { min(maxStringBytes, Self.indexedBytesCeiling) }
    /// Most keys in `labels` and in any object inside `metadata` (`OPERYN_MAX_OBJECT_KEYS`, 128).
    public var maxObjectKeys: Int = 128
    /// Deepest nesting of `metadata`, the object itself being level 1 (`OPERYN_MAX_OBJECT_DEPTH`, 8).
    public var maxObjectDepth: Int = 8

    /// The defaults.
    public init() {}

    /// Reads every limit, keeping the default for those not set.
    public init(_ reader: ConfigurationReader) throws(ConfigurationError) {
        let defaults = EventLimits()
        maxBodyBytes = try reader.integer(
            "OPERYN_MAX_BODY_BYTES", default: defaults.maxBodyBytes, in: 1...(1 << 30), about: "largest single-event body, after decompression")
        maxBatchBodyBytes = try reader.integer(
            "OPERYN_MAX_BATCH_BODY_BYTES", default: defaults.maxBatchBodyBytes, in: 1...(1 << 30),
            about: "largest batch, OTLP or bulk body, after decompression")
        maxBatchEvents = try reader.integer("OPERYN_MAX_BATCH_EVENTS", default: defaults.maxBatchEvents, in: 1...1_000_000, about: "most events in a batch")
        maxMessageBytes = try reader.integer(
            "OPERYN_MAX_MESSAGE_BYTES", default: defaults.maxMessageBytes, in: 1...(1 << 30), about: "longest log `message`")
        maxStringBytes = try reader.integer(
            "OPERYN_MAX_STRING_BYTES", default: defaults.maxStringBytes, in: 1...(1 << 30),
            about: "longest other string, keys and values in `metadata`/`labels` included; the texts the stores index (`service`, a metric's "
                + "`name`, a deployment's `environment`, a log's `traceId`) stay within 1 KiB even when this is higher")
        maxObjectKeys = try reader.integer("OPERYN_MAX_OBJECT_KEYS", default: defaults.maxObjectKeys, in: 1...100_000, about: "most keys per object")
        maxObjectDepth = try reader.integer(
            "OPERYN_MAX_OBJECT_DEPTH", default: defaults.maxObjectDepth, in: 1...JSONParser.maxNesting - 2, about: "deepest nesting of `metadata`")
    }
}
