import Foundation
import Logging
import PostgresNIO
import Shared
import TestSupport
import Testing

@testable import Sinks
@testable import Worker

/// The two storage engines, each behind the same tests.
enum SinkEngine: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }
}

/// A sink on a fresh database of its own, with a way to read rows back as text.
struct SinkUnderTest: Sendable {
    let sink: any EventSink
    let engine: SinkEngine
    let url: String
    private let rows: @Sendable (String) async throws -> [[String?]]
    private let runner: Task<Void, any Error>?

    static func make(_ engine: SinkEngine) async throws -> SinkUnderTest {
        switch engine {
        case .sqlite:
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("operyn-sink-\(UUID().uuidString)/operyn.sqlite").path
            return SinkUnderTest(sink: SQLiteSink(path: path), engine: engine, url: "sqlite:\(path)", rows: { try sqliteQuery(path: path, $0) }, runner: nil)
        case .postgres:
            let url = try await PostgresTestDatabase.create()
            let sink = try PostgresSink(url: url)
            let runner = Task { try await sink.run() }
            return SinkUnderTest(
                sink: sink, engine: engine, url: url,
                rows: { sql in
                    var rows: [[String?]] = []
                    for try await row in try await sink.client.query(PostgresQuery(unsafeSQL: sql)) {
                        rows.append(row.map { cell in cell.bytes.map { String(buffer: $0) } })
                    }
                    return rows
                }, runner: runner)
        }
    }

    func query(_ sql: String) async throws -> [[String?]] { try await rows(sql) }

    func count(_ table: String) async throws -> Int {
        let rows = try await query("SELECT CAST(COUNT(*) AS TEXT) FROM \(table)")
        return Int((rows.first?.first ?? nil) ?? "0") ?? 0
    }

    /// An ISO 8601 UTC text of a timestamp column, the same in both engines.
    func iso(_ column: String) -> String {
        engine == .sqlite ? column : #"to_char(\#(column) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#
    }

    /// A text member of a JSON column.
    func member(_ column: String, _ key: String) -> String {
        engine == .sqlite ? "json_extract(\(column), '$.\(key)')" : "\(column)->>'\(key)'"
    }

    func close() async {
        await sink.close()
        runner?.cancel()
    }
}
