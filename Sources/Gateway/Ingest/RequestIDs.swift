import Synchronization

/// Request ids for log lines: a random prefix per process and a counter.
enum RequestIDs {
    private static let prefix = hex(UInt64.random(in: 0...UInt64.max))
    private static let counter = Atomic<UInt64>(0)

    /// A new id: 32 hex digits, unique within the process and unlikely to repeat across processes.
    static func next() -> String { prefix + hex(counter.wrappingAdd(1, ordering: .relaxed).newValue) }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
