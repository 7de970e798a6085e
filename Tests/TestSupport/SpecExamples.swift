import Foundation

/// The runnable curl examples of the API reference, copied verbatim into `Tests/Fixtures/spec-curl-examples.sh`:
/// the route tests post their bodies, the end-to-end tests run them as written.
public enum SpecExamples {
    /// Each curl command, as the spec writes it.
    public static let commands: [String] = {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/spec-curl-examples.sh")
        let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
        return text.components(separatedBy: "\n\n").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { $0.hasPrefix("curl ") }
    }()

    /// The `-d '...'` body of the example posting to `path` (such as `/events/logs`).
    public static func body(_ path: String) -> String {
        guard let command = commands.first(where: { $0.contains("localhost:3001\(path) ") }),
            let start = command.range(of: "-d '")
        else { return "" }
        return String(command[start.upperBound...].dropLast())
    }
}
