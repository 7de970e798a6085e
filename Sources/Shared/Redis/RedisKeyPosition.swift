/// Where a command's first key is in its argument vector: what a cluster client hashes to find the node that serves
/// it. Commands of one key have it second; the others the project sends are listed. A command without a key
/// (`PING`, `SCRIPT LOAD`, `INFO`) may go to any node.
enum RedisKeyPosition {
    /// The first key of `arguments`, or `nil` for a command without one.
    static func firstKey(of arguments: [[UInt8]]) -> [UInt8]? {
        guard arguments.count > 1 else { return nil }
        switch uppercased(arguments[0]) {
        case "PING", "INFO", "SCRIPT", "CLUSTER", "CONFIG", "WAIT", "CLIENT", "DBSIZE", "TIME", "AUTH", "SELECT", "ECHO",
            "FLUSHALL", "FLUSHDB", "COMMAND", "READONLY", "ASKING", "HELLO", "MULTI", "EXEC", "SCAN", "KEYS", "RANDOMKEY":
            return nil
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL":
            guard arguments.count > 3, let count = Int(String(decoding: arguments[2], as: UTF8.self)), count > 0 else { return nil }
            return arguments[3]
        case "XREAD", "XREADGROUP":
            guard let streams = arguments.firstIndex(where: { uppercased($0) == "STREAMS" }), streams + 1 < arguments.count else { return nil }
            return arguments[streams + 1]
        case "XGROUP", "XINFO", "OBJECT", "MEMORY":
            return arguments.count > 2 ? arguments[2] : nil
        default:
            return arguments[1]
        }
    }

    private static func uppercased(_ word: [UInt8]) -> String {
        String(decoding: word.map { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) ? $0 - 32 : $0 }, as: UTF8.self)
    }
}

extension RedisCommand {
    public var routingKey: [UInt8]? { RedisKeyPosition.firstKey(of: arguments) }
}
