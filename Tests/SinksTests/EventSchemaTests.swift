import Foundation
import Shared
import TestSupport
import Testing

@testable import Sinks

/// Each kind's description (`EventKind.fields`) against what follows it or is held to it: both stores' tables, the
/// row visitor, the validator and the stream codec (both formats).
@Suite("One description per event kind")
struct EventSchemaTests {
    /// A request body of each kind that gives every described field.
    static let bodies: [EventKind: String] = [
        .logs: #"{"service":"api","level":"warn","message":"m","timestamp":"2024-05-01T10:00:00.500Z","traceId":"t","spanId":"s","metadata":{"k":"v"}}"#,
        .metrics: #"{"service":"api","name":"cpu","value":0.5,"unit":"percent","timestamp":"2024-05-01T10:00:00.500Z","labels":{"k":"v"}}"#,
        .deployments:
            #"{"service":"api","version":"v1","environment":"prod","gitHash":"abc","timestamp":"2024-05-01T10:00:00.500Z","metadata":{"k":"v"}}"#,
    ]

    /// The members of `kind`'s full body.
    static func members(_ kind: EventKind) throws -> [(key: String, value: JSONValue)] {
        guard case .object(let members) = try JSONParser.parse(Array(try #require(bodies[kind]).utf8)) else { throw TestSetupError("not an object") }
        return members
    }

    /// The event the gateway makes of `kind`'s full body.
    static func full(_ kind: EventKind) throws -> QueuedEvent {
        QueuedEvent(
            id: UUID().uuidString.lowercased(), org: "acme", receivedAt: .now,
            event: try EventValidator().event(kind, body: Array(try #require(bodies[kind]).utf8)))
    }

    /// The row `event` makes, as text.
    static func row(_ event: QueuedEvent) -> [String] {
        var row: [String] = []
        event.forEachColumn { name, value in row.append("\(name)=\(value)") }
        return row
    }

    @Test(arguments: EventKind.allCases) func theSampleGivesEveryDescribedField(kind: EventKind) throws {
        #expect(Set(try Self.members(kind).map(\.key)) == Set(kind.fields.compactMap(\.json)))
    }

    @Test(arguments: EventKind.allCases) func theRowVisitorVisitsTheDescribedColumnsWithTheirTypes(kind: EventKind) throws {
        var visited: [(name: String, value: ColumnValue)] = []
        try Self.full(kind).forEachColumn { name, value in visited.append(("\(name)", value)) }
        #expect(visited.map(\.name) == kind.columns)
        for (field, column) in zip(kind.fields, visited) {
            switch (field.type, column.value) {
            case (.uuid, .text(.some)), (.text, .text(.some)), (.double, .real), (.timestamp, .timestamp), (.json, .json(.some)): break
            default: Issue.record("\(kind).\(field.column) is described as \(field.type) and visited as \(column.value)")
            }
        }
    }

    @Test(arguments: EventKind.allCases) func eachRequiredFieldIsRequiredAndNoOptionalOneIs(kind: EventKind) throws {
        let members = try Self.members(kind)
        for field in kind.fields {
            guard let name = field.json else { continue }
            let without = JSONValue.object(members.filter { $0.key != name })
            do {
                _ = try EventValidator().event(kind, body: Array(without.jsonText.utf8))
                #expect(!field.required, "\(kind) without \(name) was taken")
            } catch {
                #expect(field.required, "\(kind) without the optional \(name) was refused: \(error)")
                #expect("\(error)".contains(name), "the refusal names \(name): \(error)")
            }
        }
    }

    /// Every described field survives the stream entry, in chunks and in the first format: what a gateway
    /// appends, a worker stores.
    @Test(arguments: EventKind.allCases) func everyDescribedFieldSurvivesTheStreamEntry(kind: EventKind) throws {
        let event = try Self.full(kind)
        let chunk = StreamEntryCodec.encodeChunks([event])[0].map { (name: $0.name[...], value: $0.value[...]) }
        let decoded = try StreamEntryCodec.decodeEvents(chunk)
        #expect(decoded.count == 1 && Self.row(decoded[0]) == Self.row(event), "a chunk")
        #expect(Self.row(try StreamEntryCodec.decode(StreamEntryCodec.encode(event))) == Self.row(event), "format 1")
    }

    /// Both stores' tables have exactly the described columns, in order, `NOT NULL` where every row has a value,
    /// with the type each store keeps the field's type as.
    @Test(arguments: SinkEngine.allCases) func theTablesAreTheDescription(engine: SinkEngine) async throws {
        let target = try await SinkUnderTest.make(engine)
        try await target.sink.prepare()
        for kind in EventKind.allCases {
            let columns: [[String?]]
            switch engine {
            case .sqlite:
                columns = try await target.query(
                    #"SELECT name, type, CAST("notnull" AS TEXT), CAST(pk AS TEXT) FROM pragma_table_info('\#(kind.rawValue)')"#)
            case .postgres:
                columns = try await target.query(
                    "SELECT column_name, data_type, CASE is_nullable WHEN 'NO' THEN '1' ELSE '0' END, '0' FROM information_schema.columns"
                        + " WHERE table_name = '\(kind.rawValue)' ORDER BY ordinal_position")
            }
            #expect(columns.map { $0[0] ?? "" } == kind.columns, "\(engine) \(kind)")
            for (field, column) in zip(kind.fields, columns) {
                let expected: String
                switch (engine, field.type) {
                case (.sqlite, .double): expected = "REAL"
                case (.sqlite, _): expected = "TEXT"
                case (.postgres, .timestamp): expected = "timestamp with time zone"
                case (.postgres, _): expected = PostgresSink.type(of: field)
                }
                #expect(column[1] == expected, "\(engine) \(kind).\(field.column): \(column[1] ?? "?")")
                // SQLite's primary key of a WITHOUT ROWID table is NOT NULL through `pk`.
                let notNull = column[2] == "1" || column[3] != "0"
                #expect(notNull == field.alwaysStored, "\(engine) \(kind).\(field.column) NOT NULL")
            }
            #expect(PostgresSink.columns[kind] == kind.columns, "the insert statements' columns come from the description")
        }
    }
}
