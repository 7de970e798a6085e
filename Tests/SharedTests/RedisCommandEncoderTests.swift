import Shared
import TestSupport
import Testing

@Suite("RESP encoding")
struct RedisCommandEncoderTests {
    @Test func matchesHiredisForEveryShapeOfArgument() {
        var generator = SystemRandomNumberGenerator()
        var cases: [[[UInt8]]] = [
            [[UInt8]("PING")],
            [[UInt8]("SET"), [], [0, 13, 10, 0]],
            [[UInt8]("XADD")] + (0..<25).map { [UInt8](repeating: UInt8($0), count: $0 * 37) },
        ]
        for _ in 0..<200 {
            cases.append(
                (0..<Int.random(in: 1...12, using: &generator)).map { _ in
                    (0..<Int.random(in: 0...3000, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                })
        }
        for arguments in cases {
            var encoded: [UInt8] = []
            RedisCommandEncoder.append(arguments, to: &encoded)
            #expect(encoded == RedisCommandEncoder.hiredisEncoding(arguments))
        }
    }
}
