import Shared

/// Plain-text tables: a header row and columns padded to their widest cell.
enum Table {
    /// The table of `rows` under `headers`, or `empty` when there are no rows.
    static func render(_ headers: [String], _ rows: [[String]], empty: String = "(none)") -> String {
        guard !rows.isEmpty else { return headers.joined(separator: "  ") + "\n" + empty }
        var widths = headers.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            var text = ""
            for (index, cell) in cells.enumerated() {
                let isLast = index == cells.count - 1
                text += isLast ? cell : cell + String(repeating: " ", count: widths[index] - cell.count + 2)
            }
            return text
        }
        return ([line(headers)] + rows.map(line)).joined(separator: "\n")
    }

    /// `milliseconds` since 1970 as ISO 8601, or `-` for none.
    static func time(_ milliseconds: Int64?) -> String {
        milliseconds.map { Timestamp(milliseconds: $0).iso8601 } ?? "-"
    }
}
