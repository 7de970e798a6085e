import Shared
import Testing

@testable import Gateway

/// The OpenAPI document's event schemas against each kind's description (`EventKind.fields`): the same fields, and
/// the same required ones.
@Suite("OpenAPI event schemas follow the description")
struct OpenAPIEventSchemaTests {
    @Test(arguments: [(EventKind.logs, "LogEvent"), (.metrics, "MetricEvent"), (.deployments, "DeploymentEvent")])
    func eachEventSchemaHasTheDescribedFields(kind: EventKind, schema name: String) throws {
        let document = try JSONParser.parse(Array(OpenAPIDocument.json(limits: EventLimits()).utf8))
        let schema = try #require(document["components"]?["schemas"]?[name])
        guard case .object(let properties) = try #require(schema["properties"]) else { throw ExpectationFailedError() }
        #expect(Set(properties.map(\.key)) == Set(kind.fields.compactMap(\.json)))
        #expect(schema["required"] == .array(kind.fields.filter(\.required).compactMap(\.json).map { .string($0) }))
    }
}

private struct ExpectationFailedError: Error {}
