import Shared
import Testing

@testable import Gateway

/// The OpenAPI document's event schemas against each kind's description (`EventKind.fields`): the same fields, and
/// the same required ones.
@Suite("OpenAPI event schemas follow the description")
struct OpenAPIEventSchemaTests {
    /// OTLP/JSON's 64-bit integers as strings: the schema's pattern takes exactly the numbers the decoder reads
    /// (schemathesis generated a 20-digit string past 2^64 − 1 that the old pattern allowed).
    @Test func sixtyFourBitStringsAreBoundedExactly() throws {
        let unsigned = try Regex("^(" + OpenAPIDocument.digitsAtMost("18446744073709551615") + ")$")
        for fits in ["0", "7", "10", "18446744073709551615", "18446744073709551609", "9999999999999999999", "10000000000000000000", "18446744073709551599"] {
            #expect(fits.wholeMatch(of: unsigned) != nil, "\(fits)")
            #expect(UInt64(fits) != nil)
        }
        for past in [
            "18446744073709551616", "18446744073709551620", "18446744073709552000", "19000000000000000000", "99999999999999999999", "01",
            "100000000000000000000",
        ] {
            #expect(past.wholeMatch(of: unsigned) == nil, "\(past)")
        }
        let signed = try Regex("^(" + OpenAPIDocument.digitsAtMost("9223372036854775807") + ")$")
        #expect("9223372036854775807".wholeMatch(of: signed) != nil && "9223372036854775808".wholeMatch(of: signed) == nil)
        var random = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let value = random.next() >> UInt64.random(in: 0...63)
            #expect(String(value).wholeMatch(of: unsigned) != nil, "\(value)")
        }
    }

    @Test(arguments: [(EventKind.logs, "LogEvent"), (.metrics, "MetricEvent"), (.deployments, "DeploymentEvent")])
    func eachEventSchemaHasTheDescribedFields(kind: EventKind, schema name: String) throws {
        let document = try JSONParser.parse(Array(OpenAPIDocument.json(limits: EventLimits()).utf8))
        let schema = try #require(document["components"]?["schemas"]?[name])
        guard case .object(let properties) = try #require(schema["properties"]) else { throw ExpectationFailedError() }
        #expect(Set(properties.map(\.key)) == Set(kind.fields.compactMap(\.json)))
        #expect(schema["required"] == .array(kind.fields.filter(\.required).compactMap(\.json).map { .string($0) }))
    }

    /// `metadata`'s depth is bounded in the schema where the validator bounds it: containers down to
    /// `OPERYN_MAX_OBJECT_DEPTH`, only scalars below (a recursive schema let fuzzers send what the gateway refuses).
    @Test(arguments: [3, 8])
    func metadataDepthIsTheValidatorsInTheSchema(maxDepth: Int) throws {
        var limits = EventLimits()
        limits.maxObjectDepth = maxDepth
        let schemas = try #require(try JSONParser.parse(Array(OpenAPIDocument.json(limits: limits).utf8))["components"]?["schemas"])
        func allowsContainers(_ depth: Int) throws -> Bool {
            let name = depth == 2 ? "MetadataValue" : "MetadataValue\(depth)"
            guard case .array(let kinds) = try #require(schemas[name]?["anyOf"], "\(name)") else { throw ExpectationFailedError() }
            return kinds.count == 4
        }
        for depth in 2...maxDepth { #expect(try allowsContainers(depth), "containers at depth \(depth)") }
        #expect(try !allowsContainers(maxDepth + 1), "scalars only past the bound")
        #expect(schemas["MetadataValue\(maxDepth + 2)"] == nil)
        // The validator agrees: a metadata of maxDepth levels passes, one more is refused.
        func metadata(levels: Int) -> String { String(repeating: #"{"k":"#, count: levels) + #""leaf""# + String(repeating: "}", count: levels) }
        let validator = EventValidator(limits: limits)
        _ = try validator.event(.logs, body: Array(#"{"service":"s","level":"info","message":"m","metadata":\#(metadata(levels: maxDepth))}"#.utf8))
        #expect(throws: ValidationError.self) {
            try validator.event(.logs, body: Array(#"{"service":"s","level":"info","message":"m","metadata":\#(metadata(levels: maxDepth + 1))}"#.utf8))
        }
    }
}

private struct ExpectationFailedError: Error {}
