import Shared
import Testing

@Suite("Event ids")
struct EventIDTests {
    @Test func versionSevenTimeOrderedAndUnique() {
        let ids = EventID.make(count: 10_000, milliseconds: 1_700_000_000_123)
        #expect(Set(ids).count == 10_000)
        for id in ids.prefix(100) {
            let parts = id.split(separator: "-")
            #expect(parts.map(\.count) == [8, 4, 4, 4, 12])
            #expect(parts[2].first == "7", "version 7")
            #expect("89ab".contains(parts[3].first!), "RFC 9562 variant")
            #expect(id.hasPrefix("018bcfe5-687b"), "48-bit millisecond timestamp (0x018bcfe5687b) first")
            #expect(id == id.lowercased())
        }
        #expect(EventID.make(milliseconds: 2) > EventID.make(milliseconds: 1))
    }

    @Test func timestampsFormatAndParseBack() throws {
        for milliseconds: Int64 in [0, 1, 999, -1, -86_400_001, 1_700_000_000_123, 253_402_300_799_999] {
            let text = Timestamp(milliseconds: milliseconds).iso8601
            #expect(text.count == 24)
            #expect(Timestamp(iso8601: text)?.milliseconds == milliseconds, "\(text)")
        }
        #expect(Timestamp(milliseconds: 0).iso8601 == "1970-01-01T00:00:00.000Z")
        // Input at the edges of the years events may use is stored in a form the worker reads back.
        for text in ["0001-01-01T00:00+01:00", "9998-12-31T23:59:59.999-23:59"] {
            let stored = try #require(Timestamp(iso8601: text, years: Timestamp.inputYears)).iso8601
            #expect(Timestamp(iso8601: stored) != nil, "\(text) → \(stored)")
        }
        #expect(Timestamp(iso8601: "0000-06-01", years: Timestamp.inputYears) == nil)
        #expect(Timestamp(iso8601: "9999-06-01", years: Timestamp.inputYears) == nil)
    }
}
