import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads settings from command-line options and environment variables, options first.
///
/// Every setting has one environment name (`OPERYN_REDIS_URL`) and the option made from it
/// (`--redis-url VALUE` or `--redis-url=VALUE`). Each read states the setting's default, range and meaning: the
/// one description of a setting, which `--help` and docs/configuration.md show (`describe(_:)`).
public struct ConfigurationReader: Sendable {
    private let environment: [String: String]
    private let options: [String: String]
    private let descriptions: SettingDescriptions?

    /// A reader over the given environment and arguments (without the program name).
    public init(environment: [String: String], arguments: [String]) throws(ConfigurationError) {
        self.environment = environment
        descriptions = nil
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

    /// A reader with nothing set that writes down what is read.
    private init(describingInto descriptions: SettingDescriptions) {
        environment = [:]
        options = [:]
        self.descriptions = descriptions
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

    /// The settings `read` reads, as it describes them, in the order it reads them: `read` runs with nothing set,
    /// so each setting shows its default.
    public static func describe(_ read: (ConfigurationReader) throws(ConfigurationError) -> Void) -> [SettingDescription] {
        let descriptions = SettingDescriptions()
        do {
            try read(ConfigurationReader(describingInto: descriptions))
        } catch {
            preconditionFailure("the defaults are not valid settings: \(error.message)")
        }
        return descriptions.list
    }

    /// The option name for an environment name: `OPERYN_REDIS_URL` → `redis-url`.
    public static func optionName(_ variable: String) -> String {
        var name = variable
        if name.hasPrefix("OPERYN_") { name.removeFirst("OPERYN_".count) }
        return name.lowercased().replacingOccurrences(of: "_", with: "-")
    }

    /// The `--help` text of an executable: its purpose, then every setting with its default, range and meaning.
    public static func help(_ purpose: String, settings: [SettingDescription]) -> String {
        var text = """
            \(purpose)
            Every setting is an environment variable and the option named after it (OPERYN_REDIS_URL = --redis-url VALUE);
            options win. More on each: docs/configuration.md.

            """
        for setting in settings {
            var facts = ["default: \(setting.defaultValue.filter { $0 != "`" })"]
            if !setting.range.isEmpty { facts.append(setting.range.filter { $0 != "`" }) }
            text += "\n  --\(optionName(setting.name))  (\(setting.name); \(facts.joined(separator: "; ")))\n      \(setting.plainMeaning)"
        }
        return text
    }

    /// Whether the command line asked for help.
    public var wantsHelp: Bool { options["help"] != nil }

    /// The raw value of a setting, or `nil` when neither the option nor the variable is given. Not a description:
    /// read the setting with one of the describing methods too.
    public func value(of variable: String) -> String? {
        options[Self.optionName(variable)] ?? environment[variable]
    }

    /// A text setting that may be unset; `unset` says what that means (`unset: plain HTTP`).
    public func string(_ variable: String, unset: String = "unset", values: String = "", about meaning: String) -> String? {
        descriptions?.add(SettingDescription(name: variable, defaultValue: unset, range: values, meaning: meaning))
        return value(of: variable)
    }

    /// A text setting with a default (shown as `shown` when given: a default that depends on the machine).
    public func string(_ variable: String, default value: String, shown: String? = nil, values: String = "", about meaning: String) -> String {
        descriptions?.add(SettingDescription(name: variable, defaultValue: shown ?? "`\(value)`", range: values, meaning: meaning))
        return self.value(of: variable) ?? value
    }

    /// A whole-number setting with a default, checked against `range`.
    public func integer(
        _ variable: String, default value: Int, in range: ClosedRange<Int> = 0...Int.max, shown: String? = nil, about meaning: String
    ) throws(ConfigurationError) -> Int {
        descriptions?.add(SettingDescription(name: variable, defaultValue: shown ?? "`\(value)`", range: Self.text(range), meaning: meaning))
        return try number(variable, in: range) ?? value
    }

    /// A whole-number setting that may be unset, checked against `range` when set.
    public func integer(
        _ variable: String, unset: String, in range: ClosedRange<Int>, about meaning: String
    ) throws(ConfigurationError) -> Int? {
        descriptions?.add(SettingDescription(name: variable, defaultValue: unset, range: Self.text(range), meaning: meaning))
        return try number(variable, in: range)
    }

    private func number(_ variable: String, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int? {
        guard let text = value(of: variable) else { return nil }
        guard let number = Int(text.trimmingCharacters(in: " ")), range.contains(number) else {
            throw ConfigurationError(message: "\(variable) must be a whole number in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
        }
        return number
    }

    /// A yes/no setting with a default: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.
    public func boolean(_ variable: String, default value: Bool, about meaning: String) throws(ConfigurationError) -> Bool {
        descriptions?.add(SettingDescription(name: variable, defaultValue: "`\(value)`", range: "true or false", meaning: meaning))
        guard let text = self.value(of: variable) else { return value }
        switch text.trimmingCharacters(in: " ").lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw ConfigurationError(message: "\(variable) must be true or false, got '\(text)'")
        }
    }

    /// A secret kept in the file that `variable` names (a Docker or Kubernetes secret), with trailing line breaks
    /// removed; `nil` when the variable is not given. An unreadable or empty file is an error that names the
    /// variable and the path, never the contents.
    public func secretFile(_ variable: String, about meaning: String) throws(ConfigurationError) -> String? {
        descriptions?.add(SettingDescription(name: variable, defaultValue: "unset", range: "a file", meaning: meaning))
        guard let path = value(of: variable) else { return nil }
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
    public func checkKnown(_ settings: [SettingDescription]) throws(ConfigurationError) {
        let known = Set(settings.map { Self.optionName($0.name) }).union(["help"])
        if let unknown = options.keys.sorted().first(where: { !known.contains($0) }) {
            throw ConfigurationError(message: "unknown option --\(unknown)")
        }
    }

    /// `1-600000`, `0 or more`.
    private static func text(_ range: ClosedRange<Int>) -> String {
        range.upperBound == Int.max ? "\(range.lowerBound) or more" : "\(range.lowerBound)-\(range.upperBound)"
    }
}

/// One setting as the code reads it: its name, default, range and one line of meaning (Markdown: code in
/// backticks, links to the docs' pages).
public struct SettingDescription: Sendable, Equatable {
    /// The environment variable.
    public var name: String
    /// The default as shown: `` `2000` ``, `unset`, `unset: plain HTTP`.
    public var defaultValue: String
    /// The values it takes (`1-600000`, `true or false`), or empty.
    public var range: String
    /// What it does.
    public var meaning: String

    /// The meaning without Markdown, for a terminal: links become their text, backticks go.
    public var plainMeaning: String {
        var text = ""
        var rest = Substring(meaning)
        while let open = rest.firstIndex(of: "[") {
            text += rest[..<open]
            // A link is `[text](target)`; any other bracket (`redis://[user@]host`) stays.
            if let close = rest[open...].firstIndex(of: "]"), rest[rest.index(after: close)...].hasPrefix("("),
                let end = rest[close...].firstIndex(of: ")")
            {
                text += rest[rest.index(after: open)..<close]
                rest = rest[rest.index(after: end)...]
            } else {
                text.append("[")
                rest = rest[rest.index(after: open)...]
            }
        }
        return (text + rest).filter { $0 != "`" }
    }
}

/// What a describing reader has read, in order, each setting once.
private final class SettingDescriptions: Sendable {
    private let descriptions = Mutex<[SettingDescription]>([])

    func add(_ description: SettingDescription) {
        descriptions.withLock { list in
            if !list.contains(where: { $0.name == description.name }) { list.append(description) }
        }
    }

    var list: [SettingDescription] { descriptions.withLock { $0 } }
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
