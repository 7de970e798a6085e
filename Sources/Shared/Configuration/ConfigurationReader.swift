#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads settings from command-line options and environment variables, options first.
///
/// Every setting has one environment name (`OPERYN_REDIS_URL`) and the option made from it
/// (`--redis-url VALUE` or `--redis-url=VALUE`).
public struct ConfigurationReader: Sendable {
    private let environment: [String: String]
    private let options: [String: String]

    /// A reader over the given environment and arguments (without the program name).
    public init(environment: [String: String], arguments: [String]) throws(ConfigurationError) {
        self.environment = environment
        var options: [String: String] = [:]
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--help" || argument == "-h" {
                options["help"] = ""
                index += 1
                continue
            }
            guard argument.hasPrefix("--") else {
                throw ConfigurationError(message: "unexpected argument '\(argument)'; options look like --redis-url VALUE")
            }
            if let equals = argument.firstIndex(of: "=") {
                options[String(argument[argument.index(argument.startIndex, offsetBy: 2)..<equals])] = String(argument[argument.index(after: equals)...])
            } else {
                guard index + 1 < arguments.count else { throw ConfigurationError(message: "option \(argument) needs a value") }
                options[String(argument.dropFirst(2))] = arguments[index + 1]
                index += 1
            }
            index += 1
        }
        self.options = options
    }

    /// A reader over this process's environment and command line.
    public static func process() throws(ConfigurationError) -> ConfigurationReader {
        var environment: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                environment[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return try ConfigurationReader(environment: environment, arguments: Array(CommandLine.arguments.dropFirst()))
    }

    /// The option name for an environment name: `OPERYN_REDIS_URL` → `redis-url`.
    public static func optionName(_ variable: String) -> String {
        var name = variable
        if name.hasPrefix("OPERYN_") { name.removeFirst("OPERYN_".count) }
        return name.lowercased().replacingOccurrences(of: "_", with: "-")
    }

    /// The `--help` text of an executable: its purpose, then every setting as option and variable.
    public static func help(_ purpose: String, variables: [String]) -> String {
        """
        \(purpose)
        Every setting is an environment variable and the option named after it (OPERYN_REDIS_URL = --redis-url):
        \(variables.map { "  --\(optionName($0))  (\($0))" }.joined(separator: "\n"))
        Defaults, ranges and meanings: docs/configuration.md.
        """
    }

    /// Whether the command line asked for help.
    public var wantsHelp: Bool { options["help"] != nil }

    /// The raw value of a setting, or `nil` when neither the option nor the variable is given.
    public func string(_ variable: String) -> String? {
        options[Self.optionName(variable)] ?? environment[variable]
    }

    /// A text setting with a default.
    public func string(_ variable: String, default value: String) -> String {
        string(variable) ?? value
    }

    /// A whole-number setting with a default, checked against `range`.
    public func integer(_ variable: String, default value: Int, in range: ClosedRange<Int> = 0...Int.max) throws(ConfigurationError) -> Int {
        guard let text = string(variable) else { return value }
        guard let number = Int(text.trimmingCharacters(in: " ")), range.contains(number) else {
            throw ConfigurationError(message: "\(variable) must be a whole number in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
        }
        return number
    }

    /// A yes/no setting with a default: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.
    public func boolean(_ variable: String, default value: Bool) throws(ConfigurationError) -> Bool {
        guard let text = string(variable) else { return value }
        switch text.trimmingCharacters(in: " ").lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw ConfigurationError(message: "\(variable) must be true or false, got '\(text)'")
        }
    }

    /// A secret kept in the file that `variable` names (a Docker or Kubernetes secret), with trailing line breaks
    /// removed; `nil` when the variable is not given. An unreadable or empty file is an error that names the
    /// variable and the path, never the contents.
    public func secretFile(_ variable: String) throws(ConfigurationError) -> String? {
        guard let path = string(variable) else { return nil }
        guard let file = fopen(path, "rb") else {
            throw ConfigurationError(message: "\(variable): cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4_096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            bytes += chunk[0..<count]
            if count < chunk.count { break }
            guard bytes.count <= 65_536 else { throw ConfigurationError(message: "\(variable): \(path) is over 64 KiB, not a secret") }
        }
        guard ferror(file) == 0 else { throw ConfigurationError(message: "\(variable): cannot read \(path): \(String(cString: strerror(errno)))") }
        while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { bytes.removeLast() }
        guard !bytes.isEmpty else { throw ConfigurationError(message: "\(variable): \(path) is empty") }
        guard let secret = String(validating: bytes, as: UTF8.self) else {
            throw ConfigurationError(message: "\(variable): \(path) is not UTF-8 text")
        }
        return secret
    }

    /// Rejects options that no setting reads, so a typo does not pass silently.
    public func checkKnown(_ variables: [String]) throws(ConfigurationError) {
        let known = Set(variables.map(Self.optionName)).union(["help"])
        if let unknown = options.keys.sorted().first(where: { !known.contains($0) }) {
            throw ConfigurationError(message: "unknown option --\(unknown)")
        }
    }
}

/// A setting that could not be understood.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    /// What is wrong, naming the setting.
    public var message: String

    /// Makes an error.
    public init(message: String) { self.message = message }

    public var description: String { message }
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        var text = Substring(self)
        while text.first == set { text.removeFirst() }
        while text.last == set { text.removeLast() }
        return String(text)
    }

    fileprivate func replacingOccurrences(of target: Character, with replacement: Character) -> String {
        String(map { $0 == target ? replacement : $0 })
    }
}
