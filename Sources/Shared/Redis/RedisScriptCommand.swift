import Crypto

/// A command that runs a Lua script: `EVALSHA <digest> <numkeys> <keys…> <arguments…>`, with a response type of
/// its own. The client sends it once more carrying the script's source (`EVAL`) when the server does not know the
/// digest yet (`NOSCRIPT`: restarted empty, or in a cluster a master that has not run it): the one fallback every
/// script shares (`RedisClient.send`).
public protocol RedisScriptCommand: RedisCommand {
    /// The script it runs.
    static var script: RedisScript { get }
    /// The argument vector; its first two are `EVALSHA` and the digest (`invocation`), which `carryingSource`
    /// replaces.
    var arguments: [[UInt8]] { get set }
}

extension RedisScriptCommand {
    /// The arguments of a run of the script with `keys` and `arguments`.
    public static func invocation(keys: [String], arguments: [[UInt8]]) -> [[UInt8]] {
        [Array("EVALSHA".utf8), Array(script.sha1.utf8), Array(String(keys.count).utf8)] + keys.map { Array($0.utf8) } + arguments
    }

    /// The same command sending the script's source (`EVAL`), which runs it and makes the server keep it.
    public var carryingSource: Self {
        var command = self
        command.arguments[0] = Array("EVAL".utf8)
        command.arguments[1] = Array(Self.script.source.utf8)
        return command
    }
}

/// A Lua script, sent by its digest (`EVALSHA`) and, once per server, by its source.
public struct RedisScript: Sendable, Hashable {
    /// The Lua source.
    public let source: String
    /// The SHA-1 of the source, hex: the name `EVALSHA` knows it by.
    public let sha1: String

    /// A script from its source.
    public init(_ source: String) {
        self.source = source
        sha1 = Insecure.SHA1.hash(data: Array(source.utf8)).map { byte in
            let hex = Array("0123456789abcdef".utf8)
            return String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]], as: UTF8.self)
        }.joined()
    }
}
