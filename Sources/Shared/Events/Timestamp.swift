#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An instant in milliseconds since the Unix epoch, read from and written as ISO 8601.
public struct Timestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    public var milliseconds: Int64

    /// An instant from milliseconds since the epoch.
    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    /// The wall-clock time now.
    public static var now: Timestamp {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Timestamp(milliseconds: Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000)
    }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.milliseconds < rhs.milliseconds }

    /// Parses an ISO 8601 / RFC 3339 date-time: `YYYY-MM-DDTHH:MM[:SS[.fraction]]` followed by `Z`, `±HH:MM`,
    /// `±HHMM` or `±HH` (no zone means UTC), or a date alone (`YYYY-MM-DD`, midnight UTC). `T` may be
    /// lowercase or a space. Fractions past milliseconds are truncated. Returns `nil` for anything else.
    /// `years` bounds the year as written: the stored form covers 0000–9999, and event input takes 0001–9998 so that
    /// no zone offset carries an instant out of that range.
    public init?(iso8601 text: String, years: ClosedRange<Int> = 0...9_999) {
        // Read in place: no copy of the text's bytes (every timestamp of every event comes through here).
        var text = text
        guard let milliseconds = text.withUTF8({ Self.milliseconds(iso8601: $0, years: years) }) else { return nil }
        self.milliseconds = milliseconds
    }

    private static func milliseconds(iso8601 bytes: UnsafeBufferPointer<UInt8>, years: ClosedRange<Int>) -> Int64? {
        var scanner = ISO8601Scanner(bytes)
        guard scanner.bytes.count >= 10, scanner.bytes.count <= 64 else { return nil }
        guard let (year, month, day) = scanner.date(), years.contains(year) else { return nil }
        var time = (hour: 0, minute: 0, second: 0, millisecond: 0)
        var offsetMinutes = 0
        if !scanner.atEnd {
            guard let parsed = scanner.time(), let offset = scanner.zone() else { return nil }
            time = parsed
            offsetMinutes = offset
        }
        guard scanner.atEnd else { return nil }
        let days = Self.daysFromCivil(year: year, month: month, day: day)
        let seconds = Int64(days) * 86_400 + Int64(time.hour * 3600 + time.minute * 60 + time.second) - Int64(offsetMinutes * 60)
        let milliseconds = seconds * 1000 + Int64(time.millisecond)
        // An offset may carry year 0000 or 9999 out of the four-digit range the text form has.
        guard milliseconds >= Self.earliest, milliseconds <= Self.latest else { return nil }
        return milliseconds
    }

    /// Reads the parts of an ISO 8601 date-time from its bytes, front to back.
    private struct ISO8601Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        var atEnd: Bool { index == bytes.count }

        /// `count` decimal digits as a number.
        mutating func digits(_ count: Int) -> Int? {
            guard index + count <= bytes.count else { return nil }
            var value = 0
            for _ in 0..<count {
                let byte = bytes[index]
                guard (48...57).contains(byte) else { return nil }
                value = value * 10 + Int(byte - 48)
                index += 1
            }
            return value
        }

        /// Consumes `byte` if it is next.
        mutating func expect(_ byte: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        /// `YYYY-MM-DD`, a day that exists in its month.
        mutating func date() -> (year: Int, month: Int, day: Int)? {
            guard let year = digits(4), expect(UInt8(ascii: "-")), let month = digits(2), expect(UInt8(ascii: "-")), let day = digits(2) else {
                return nil
            }
            guard (1...12).contains(month), day >= 1, day <= Timestamp.daysIn(month: month, year: year) else { return nil }
            return (year, month, day)
        }

        /// `THH:MM[:SS[.fraction]]` (`T`, `t` or a space), fractions past milliseconds truncated.
        mutating func time() -> (hour: Int, minute: Int, second: Int, millisecond: Int)? {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "T") || bytes[index] == UInt8(ascii: "t") || bytes[index] == UInt8(ascii: " ")
            else { return nil }
            index += 1
            guard let hour = digits(2), expect(UInt8(ascii: ":")), let minute = digits(2) else { return nil }
            var second = 0
            var millisecond = 0
            if expect(UInt8(ascii: ":")) {
                guard let s = digits(2) else { return nil }
                second = s
                if expect(UInt8(ascii: ".")) || expect(UInt8(ascii: ",")) {
                    var scale = 100
                    let start = index
                    while index < bytes.count, (48...57).contains(bytes[index]) {
                        millisecond += Int(bytes[index] - 48) * scale
                        scale /= 10
                        index += 1
                    }
                    guard index > start else { return nil }
                }
            }
            guard hour <= 23, minute <= 59, second <= 60 else { return nil }
            return (hour, minute, second, millisecond)
        }

        /// The zone's offset in minutes: none or `Z`/`z` is 0, else `±HH[[:]MM]`.
        mutating func zone() -> Int? {
            if atEnd || expect(UInt8(ascii: "Z")) || expect(UInt8(ascii: "z")) { return 0 }
            let sign: Int
            if expect(UInt8(ascii: "+")) {
                sign = 1
            } else if expect(UInt8(ascii: "-")) {
                sign = -1
            } else {
                return nil
            }
            guard let hours = digits(2) else { return nil }
            var minutes = 0
            if !atEnd {
                _ = expect(UInt8(ascii: ":"))
                guard let m = digits(2) else { return nil }
                minutes = m
            }
            guard hours <= 23, minutes <= 59 else { return nil }
            return sign * (hours * 60 + minutes)
        }
    }

    /// The instants both sinks can store: 0001-01-01T00:00:00Z through 9999-12-31T23:59:59.999Z (PostgreSQL's
    /// `timestamptz` reads no year 0000, and the text form has four digits).
    public static let storable = Timestamp(milliseconds: Int64(daysFromCivil(year: 1, month: 1, day: 1)) * 86_400_000)...Timestamp(milliseconds: latest)

    /// The years an event's `timestamp` may be written with: any zone offset then keeps it within 0000–9999.
    public static let inputYears = 1...9_998

    private static let earliest = Int64(daysFromCivil(year: 0, month: 1, day: 1)) * 86_400_000
    private static let latest = Int64(daysFromCivil(year: 10_000, month: 1, day: 1)) * 86_400_000 - 1

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, in UTC.
    public var iso8601: String {
        // Written in place: this runs once or twice per event on the ingestion path.
        String(unsafeUninitializedCapacity: 24) { buffer in
            write(into: buffer)
            return 24
        }
    }

    /// Appends `iso8601`'s 24 bytes to `output` without making a string.
    public func appendISO8601(to output: inout [UInt8]) {
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: 24))
        output.withUnsafeMutableBufferPointer { buffer in
            write(into: UnsafeMutableBufferPointer(rebasing: buffer[start..<start + 24]))
        }
    }

    private func write(into buffer: UnsafeMutableBufferPointer<UInt8>) {
        let totalSeconds = milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000
        let millisecond = Int(milliseconds - totalSeconds * 1000)
        let days = totalSeconds >= 0 ? totalSeconds / 86_400 : (totalSeconds - 86_399) / 86_400
        let secondOfDay = Int(totalSeconds - days * 86_400)
        let (year, month, day) = Self.civilFromDays(Int(days))
        func put(_ value: Int, width: Int, at offset: Int) {
            var rest = value
            for position in stride(from: offset + width - 1, through: offset, by: -1) {
                buffer[position] = UInt8(48 + rest % 10)
                rest /= 10
            }
        }
        put(year, width: 4, at: 0)
        buffer[4] = 45
        put(month, width: 2, at: 5)
        buffer[7] = 45
        put(day, width: 2, at: 8)
        buffer[10] = 84
        put(secondOfDay / 3600, width: 2, at: 11)
        buffer[13] = 58
        put(secondOfDay / 60 % 60, width: 2, at: 14)
        buffer[16] = 58
        put(secondOfDay % 60, width: 2, at: 17)
        buffer[19] = 46
        put(millisecond, width: 3, at: 20)
        buffer[23] = 90
    }

    public var description: String { iso8601 }

    fileprivate static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    private static func civilFromDays(_ days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
