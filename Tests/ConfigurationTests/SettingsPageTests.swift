import Foundation
import Shared
import TestSupport
import Testing

@testable import Admin
@testable import Gateway
@testable import Worker

/// Every setting is described once, where the code reads it; docs/configuration.md's table and each program's
/// `--help` come from those descriptions, and this suite fails when they drift.
@Suite("Settings: described once, shown alike in the docs and --help")
struct SettingsPageTests {
    /// The settings each program reads, as it describes them.
    static let programs: [(name: String, settings: [SettingDescription])] = [
        ("gateway", ConfigurationReader.describe { reader throws(ConfigurationError) in _ = try GatewayConfiguration(reader) }),
        ("worker", ConfigurationReader.describe { reader throws(ConfigurationError) in _ = try WorkerConfiguration(reader) }),
        ("admin", AdminEnvironment.settings),
    ]

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let page = root.appendingPathComponent("docs/configuration.md")
    static let begin = "<!-- settings: made from the code's descriptions; `OPERYN_WRITE_SETTINGS=1 swift test --filter SettingsPageTests` rewrites it -->"
    static let end = "<!-- end of settings -->"

    /// The page's table: one row per setting, in the order the gateway, then the worker, then `operyn-admin` read them.
    static func table() -> String {
        var rows: [(setting: SettingDescription, programs: [String])] = []
        for (program, settings) in programs {
            for setting in settings {
                if let index = rows.firstIndex(where: { $0.setting.name == setting.name }) {
                    rows[index].programs.append(program)
                } else {
                    rows.append((setting, [program]))
                }
            }
        }
        func cell(_ text: String) -> String { text.replacingOccurrences(of: "|", with: "\\|") }
        var table = "| variable | read by | default | values | meaning |\n|---|---|---|---|---|\n"
        for (setting, readers) in rows {
            let programs = readers.count == programs.count ? "all" : readers.joined(separator: ", ")
            table += "| `\(setting.name)` | \(programs) | \(cell(setting.defaultValue)) | \(cell(setting.range)) | \(cell(setting.meaning)) |\n"
        }
        return table
    }

    @Test func aSettingReadByTwoProgramsIsDescribedOnce() {
        var seen: [String: (program: String, setting: SettingDescription)] = [:]
        for (program, settings) in Self.programs {
            for setting in settings {
                if let first = seen[setting.name] {
                    #expect(first.setting == setting, "\(setting.name) is described differently by the \(first.program) and the \(program)")
                } else {
                    seen[setting.name] = (program, setting)
                }
            }
        }
        #expect(seen.count > 70)
    }

    @Test func thePageShowsEverySettingAsTheCodeDescribesIt() throws {
        let text = try String(contentsOf: Self.page, encoding: .utf8)
        let start = try #require(text.range(of: Self.begin), "docs/configuration.md has no generated table")
        let stop = try #require(text.range(of: Self.end, range: start.upperBound..<text.endIndex))
        let table = Self.table()
        if ProcessInfo.processInfo.environment["OPERYN_WRITE_SETTINGS"] == "1" {
            try (text[..<start.upperBound] + "\n" + table + text[stop.lowerBound...]).write(to: Self.page, atomically: true, encoding: .utf8)
            return
        }
        let shown = String(text[start.upperBound..<stop.lowerBound]).trimmingCharacters(in: .newlines)
        let expected = table.trimmingCharacters(in: .newlines)
        let missing = expected.split(separator: "\n").filter { !shown.contains($0) }
        let hint = "rewrite it with OPERYN_WRITE_SETTINGS=1 swift test --filter SettingsPageTests"
        #expect(
            shown == expected,
            "docs/configuration.md is not the code's description; rows missing or changed:\n\(missing.joined(separator: "\n"))\n\(hint)")
    }

    /// A name in the code that no program reads through a description (a lookup of its own, or a setting left out
    /// of `--help`) fails here.
    @Test func everyVariableTheCodeNamesIsDescribed() throws {
        let described = Set(Self.programs.flatMap { $0.settings.map(\.name) })
        var named: [String: String] = [:]
        let sources = Self.root.appendingPathComponent("Sources")
        let files = try #require(FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil))
        let pattern = try Regex(#""OPERYN_[A-Z0-9_]+""#)
        for case let file as URL in files where file.pathExtension == "swift" {
            let text = try String(contentsOf: file, encoding: .utf8)
            for match in text.matches(of: pattern) {
                named[String(text[match.range].dropFirst().dropLast()), default: file.lastPathComponent] = file.lastPathComponent
            }
        }
        #expect(named.count > 70)
        for (name, file) in named.sorted(by: { $0.key < $1.key }) {
            #expect(described.contains(name), "\(name) (\(file)) is named in the code but no program describes it")
        }
    }

    /// `--help` of the built programs: every setting with its default.
    @Test(arguments: ["operyn-gateway", "operyn-worker"])
    func helpListsEverySettingWithItsDefault(program: String) async throws {
        let exit = try await ChildProcess.run([ChildProcess.binDirectory() + "/" + program, "--help"], environment: [:])
        #expect(exit.status == 0)
        let settings = try #require(Self.programs.first { "operyn-" + $0.name == program }).settings
        for setting in settings {
            let option = "--\(ConfigurationReader.optionName(setting.name))  (\(setting.name); default: \(setting.defaultValue.filter { $0 != "`" })"
            #expect(exit.output.contains(option), "\(program) --help lacks \(option)")
        }
    }
}
