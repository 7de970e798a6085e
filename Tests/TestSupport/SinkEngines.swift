import Foundation
import Shared
import Sinks
import Testing

/// The two storage engines, each behind the same tests.
public enum SinkEngine: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    public var testDescription: String { rawValue }
}

/// A sink on a fresh database of its own, with a way to read rows back as text.
public struct SinkUnderTest: Sendable {
    public let sink: any EventSink
    public let engine: SinkEngine
    public let url: String
    private let rows: @Sendable (String) async throws -> [[String?]]
    private let runner: Task<Void, any Error>?

    /// A sink of `engine` on a fresh database (a SQLite file, or a database of the test command's PostgreSQL), made
    /// from its URL as the worker makes it; PostgreSQL's pool runs until `close()`.
    public static func make(_ engine: SinkEngine) async throws -> SinkUnderTest {
        switch engine {
        case .sqlite:
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("operyn-sink-\(UUID().uuidString)/operyn.sqlite").path
            let url = "sqlite:\(path)"
            return SinkUnderTest(sink: try SinkFactory.make(url: url), engine: engine, url: url, rows: { try sqliteQuery(path: path, $0) }, runner: nil)
        case .postgres:
            let url = try await PostgresTestDatabase.create()
            let sink = try SinkFactory.make(url: url)
            let runner = Task { try await sink.run() }
            return SinkUnderTest(sink: sink, engine: engine, url: url, rows: { try await PostgresTestDatabase.query(url: url, $0) }, runner: runner)
        }
    }

    public func query(_ sql: String) async throws -> [[String?]] { try await rows(sql) }

    public func count(_ table: String) async throws -> Int {
        let rows = try await query("SELECT CAST(COUNT(*) AS TEXT) FROM \(table)")
        return Int((rows.first?.first ?? nil) ?? "0") ?? 0
    }

    /// An ISO 8601 UTC text of a timestamp column, the same in both engines.
    public func iso(_ column: String) -> String {
        engine == .sqlite ? column : #"to_char(\#(column) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#
    }

    /// A text member of a JSON column.
    public func member(_ column: String, _ key: String) -> String {
        engine == .sqlite ? "json_extract(\(column), '$.\(key)')" : "\(column)->>'\(key)'"
    }

    public func close() async {
        await sink.close()
        runner?.cancel()
    }
}
