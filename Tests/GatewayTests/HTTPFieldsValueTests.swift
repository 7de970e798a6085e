import HTTPTypes
import Testing

@testable import Gateway

@Suite("A header's value read as HTTPTypes reads it")
struct HTTPFieldsValueTests {
    @Test func aFieldSentOnceAbsentOrRepeatedReadsAsTheSubscript() {
        var fields = HTTPFields()
        fields.append(HTTPField(name: .contentType, value: "application/json"))
        fields.append(HTTPField(name: .apiKey, value: "first"))
        fields.append(HTTPField(name: .accept, value: "*/*"))
        fields.append(HTTPField(name: .apiKey, value: "second"))
        fields.append(HTTPField(name: .cookie, value: "a=1"))
        fields.append(HTTPField(name: .cookie, value: "b=2"))
        fields.append(HTTPField(name: HTTPField.Name("X-Organization-ID")!, value: "acme"))
        let names: [HTTPField.Name] = [.contentType, .apiKey, .accept, .cookie, .organizationID, .contentLength, .authorization]
        for name in names { #expect(fields.value(of: name) == fields[name], "\(name)") }
        #expect(fields.value(of: .apiKey) == "first, second")
        #expect(fields.value(of: .cookie) == "a=1; b=2")
        #expect(fields.value(of: .organizationID) == "acme")
        #expect(fields.value(of: .contentLength) == nil)
        #expect(HTTPFields().value(of: .apiKey) == nil)
    }
}
