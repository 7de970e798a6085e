import Foundation
import HTTPTypes
import NIOCore
import Shared
import Testing

@testable import Gateway

/// The Elasticsearch bulk API in process: every mapping rule, the per-item answer, every refusal of a request as a
/// whole, authentication by `ApiKey` and `Basic`, and the node's `GET /`.
@Suite("Elasticsearch bulk API (in-process, in-memory publisher)")
struct ElasticsearchBulkRouteTests {
    static let ndjson: HTTPFields = [.contentType: "application/x-ndjson"]

    static func body(_ lines: String...) -> ByteBuffer { ByteBuffer(string: lines.joined(separator: "\n") + "\n") }

    static func logs(_ gateway: TestGateway) -> [LogEvent] {
        gateway.publisher.events.compactMap { if case .log(let log) = $0.event { log } else { nil } }
    }

    static func basic(_ user: String, _ password: String) -> String { "Basic " + Data("\(user):\(password)".utf8).base64EncodedString() }
    static func apiKey(_ id: String, _ key: String) -> String { "ApiKey " + Data("\(id):\(key)".utf8).base64EncodedString() }

    @Test func documentsMapByTheElasticCommonSchema() async throws {
        let gateway = TestGateway()
        let response = try await gateway.test { client in
            try await client.execute(
                uri: "/logs-web/_bulk", method: .post, headers: Self.ndjson,
                body: Self.body(
                    #"{"create":{}}"#,
                    #"{"@timestamp":"2024-05-01T12:00:00.250Z","message":"nested","service":{"name":"checkout","version":"1.2"},"log":{"level":"WARNING","logger":"pay"},"trace":{"id":"4bf92f3577b34da6a3ce929d0e0e4736"},"span":{"id":"00f067aa0ba902b7"},"host":{"name":"h1","ip":["10.0.0.1","10.0.0.2"]}}"#,
                    #"{"index":{"_index":"logs-api","_id":"doc-7"}}"#,
                    #"{"service.name":"dotted","log.level":"err","@timestamp":1714564800000,"message":{"structured":true}}"#,
                    #"{"create":{}}"#,
                    #"{"service":"plain","severity":4}"#,
                    #"{"create":{}}"#,
                    #"{"level":"notice","message":"from the index"}"#,
                    #"{"create":{}}"#,
                    #"{"severity":"debug","level":"error","message":"level wins over severity"}"#,
                ))
        }
        #expect(response.status == .ok && response.headers[.elasticProduct] == "Elasticsearch", "\(response.text)")
        let answer = try #require(response.json)
        #expect(answer["errors"] == .bool(false))
        guard case .array(let items) = answer["items"] else { throw TestFailure("no items: \(response.text)") }
        #expect(items.count == 5)
        #expect(items[0]["create"]?["status"] == .number("201") && items[0]["create"]?["_index"] == .string("logs-web"))
        #expect(items[1]["index"]?["_id"] == .string("doc-7") && items[1]["index"]?["_index"] == .string("logs-api"))
        let ids = gateway.publisher.events.map(\.id)
        #expect(items[0]["create"]?["_id"] == .string(ids[0]), "an item without _id answers the event's id")

        let logs = Self.logs(gateway)
        try #require(logs.count == 5)
        let nested = logs[0]
        #expect(nested.service == "checkout" && nested.level == .warn && nested.message == "nested")
        #expect(nested.timestamp == Timestamp(iso8601: "2024-05-01T12:00:00.250Z"))
        #expect(nested.traceId == "4bf92f3577b34da6a3ce929d0e0e4736" && nested.spanId == "00f067aa0ba902b7")
        #expect(nested.metadata?["service.version"] == .string("1.2") && nested.metadata?["log.logger"] == .string("pay"))
        #expect(nested.metadata?["host.name"] == .string("h1") && nested.metadata?["host.ip"] == .array([.string("10.0.0.1"), .string("10.0.0.2")]))
        #expect(nested.metadata?["log.level"] == .string("WARNING"), "a level that is not one of the five names is kept")
        #expect(nested.metadata?["_index"] == .string("logs-web"), "the index, when it is not the service")

        let dotted = logs[1]
        #expect(dotted.service == "dotted" && dotted.level == .error && dotted.timestamp == Timestamp(milliseconds: 1_714_564_800_000))
        #expect(dotted.message == #"{"structured":true}"# && dotted.metadata?["_id"] == .string("doc-7"))
        #expect(dotted.metadata?["_index"] == .string("logs-api"), "the action's _index wins over the path's")

        #expect(logs[2].service == "plain" && logs[2].level == .warn && logs[2].message == "" && logs[2].metadata?["severity"] == .number("4"))
        #expect(logs[3].service == "logs-web" && logs[3].level == .info && logs[3].metadata?["_index"] == nil, "the index names the service")
        #expect(logs[3].metadata?["level"] == .string("notice"))
        #expect(logs[4].level == .error && logs[4].metadata?["severity"] == .string("debug") && logs[4].metadata?["level"] == nil)
        #expect(Set(gateway.publisher.events.map(\.org)) == ["default"])
        let received = gateway.publisher.events[2].receivedAt
        #expect(logs[2].timestamp == received, "no @timestamp: the time it was received")
    }

    @Test func refusedDocumentsAreAnsweredPerItemAndTheOthersQueued() async throws {
        let gateway = TestGateway()
        let big = String(repeating: "x", count: 300_000)
        let response = try await gateway.test { client in
            try await client.execute(
                uri: "/_bulk", method: .put, headers: Self.ndjson,
                body: Self.body(
                    #"{"index":{"_index":"app"}}"#, #"{"message":"good 1"}"#,
                    #"{"index":{"_index":"app"}}"#, #"["not","an","object"]"#,
                    #"{"index":{"_index":"app"}}"#, #"{"message": broken"#,
                    #"{"index":{}}"#, #"{"message":"no service and no index"}"#,
                    #"{"index":{"_index":"app"}}"#, #"{"message":"\#(big)"}"#,
                    #"{"index":{"_index":"app"}}"#, #"{"@timestamp":"yesterday"}"#,
                    #"{"index":{"_index":"app"}}"#, #"{"severity":12}"#,
                    #"{"index":{"_index":"Bad Index"}}"#, #"{"message":"x"}"#,
                    #"{"delete":{"_index":"app","_id":"1"}}"#,
                    #"{"update":{"_index":"app","_id":"1"}}"#, #"{"doc":{}}"#,
                    #"{"create":{"_index":"app"}}"#, #"{"a":{"b":1},"a.b":2}"#,
                    #"{"create":{"_index":"app"}}"#, #"{"trace":{"id":7}}"#,
                    #"{"create":{"_index":"app"}}"#, "",
                    #"{"create":{"_index":"app"}}"#, #"{"message":"good 2"}"#,
                ))
        }
        #expect(response.status == .ok, "\(response.text.prefix(300))")
        let answer = try #require(response.json)
        #expect(answer["errors"] == .bool(true))
        guard case .array(let items) = answer["items"] else { throw TestFailure("no items") }
        let statuses = items.map { item -> String in
            guard case .object(let members) = item, let only = members.first, case .number(let status)? = only.value["status"] else { return "?" }
            return status
        }
        #expect(statuses == ["201", "400", "400", "400", "400", "400", "400", "400", "400", "400", "400", "400", "400", "201"])
        func reason(_ index: Int) -> String {
            guard case .object(let members) = items[index], case .string(let text)? = members.first?.value["error"]?["reason"] else { return "" }
            return text
        }
        func type(_ index: Int) -> String {
            guard case .object(let members) = items[index], case .string(let text)? = members.first?.value["error"]?["type"] else { return "" }
            return text
        }
        #expect(reason(1) == "failed to parse: the document must be a JSON object, got array" && type(1) == "document_parsing_exception")
        #expect(reason(2).hasPrefix("failed to parse: malformed JSON at byte"))
        #expect(reason(3) == "the document has no service.name or service, and the request no index, to name its service")
        #expect(reason(4) == "message exceeds the limit of 262144 bytes" || reason(4).hasPrefix("message"), "\(reason(4))")
        #expect(reason(5) == "@timestamp must be an ISO 8601 date-time or epoch milliseconds, got 'yesterday'")
        #expect(reason(6) == "severity must be a level name or a syslog severity 0 to 7, got 12")
        #expect(type(7) == "invalid_index_name_exception" && reason(7).hasPrefix("Invalid index name [Bad Index]"))
        #expect(reason(8).hasPrefix("the delete action is not supported") && reason(9).hasPrefix("the update action is not supported"))
        #expect(reason(10) == "field [a.b] appears twice once nested objects are flattened")
        #expect(reason(11) == "trace.id must be a string, got number")
        #expect(reason(12).hasPrefix("failed to parse: malformed JSON at byte 0"))
        #expect(Self.logs(gateway).map(\.message) == ["good 1", "good 2"])
    }

    @Test(arguments: [
        (#"{"index":{}}"# + "\n", "Malformed bulk request: the index action on line 1 has no document line"),
        (#"{"explode":{}}"# + "\n{}\n", "Malformed action/metadata line [1], expected one of [create, delete, index, update] but found [explode]"),
        ("{\"index\":{}}\n{\"message\":\"a\"}\nnot json\n", "Malformed action/metadata line [3], it is not JSON"),
        ("[1]\n", "Malformed action/metadata line [1], expected an object with one action of [create, delete, index, update], got array"),
        (#"{"index":"app"}"# + "\n{}\n", "Malformed action/metadata line [1], the index action's metadata must be an object, got string"),
        (#"{"index":{"_index":5}}"# + "\n{}\n", "Malformed action/metadata line [1], _index must be a string, got number"),
        ("\n \n", "Malformed bulk request: no requests added; the body holds no action line"),
    ])
    func malformedRequestsAreRefusedWhole(body: String, message: String) async throws {
        let gateway = TestGateway()
        let response = try await gateway.test { client in
            try await client.execute(uri: "/app/_bulk", method: .post, headers: Self.ndjson, body: ByteBuffer(string: body))
        }
        #expect(response.status == .badRequest && response.headers[.elasticProduct] == "Elasticsearch")
        guard case .string(let reason)? = response.json?["error"]?["reason"] else { throw TestFailure("no reason: \(response.text)") }
        #expect(reason.hasPrefix(message), "\(reason)")
        #expect(response.json?["status"] == .number("400") && response.json?["error"]?["root_cause"] != nil)
        #expect(gateway.publisher.events.isEmpty)
    }

    @Test func limitsMediaTypesAndPathsAnswerAsElasticsearch() async throws {
        var limits = EventLimits()
        limits.maxBatchEvents = 2
        limits.maxBatchBodyBytes = 1 << 20
        let gateway = TestGateway(limits: limits)
        try await gateway.test { client in
            let three = Self.body(#"{"create":{}}"#, #"{"service":"a"}"#, #"{"create":{}}"#, #"{"service":"a"}"#, #"{"create":{}}"#, #"{"service":"a"}"#)
            let tooMany = try await client.execute(uri: "/_bulk", method: .post, headers: Self.ndjson, body: three)
            #expect(tooMany.status == .contentTooLarge && tooMany.json?["error"]?["type"] == .string("content_too_long_exception"))
            let line = ByteBuffer(string: #"{"create":{"_index":"a"}}"# + "\n" + #"{"message":""# + String(repeating: "y", count: 2 << 20) + "\"}\n")
            let huge = try await client.execute(uri: "/_bulk", method: .post, headers: Self.ndjson, body: line)
            #expect(huge.status == .contentTooLarge && huge.json?["error"]?["reason"] == .string("Request body exceeds the limit of 1048576 bytes"))
            let text = try await client.execute(uri: "/_bulk", method: .post, headers: [.contentType: "text/plain"], body: Self.body("{}"))
            #expect(text.status == .notAcceptable && text.json?["error"]?["reason"] == .string("Content-Type header [text/plain] is not supported"))
            let versioned: HTTPFields = [.contentType: "application/vnd.elasticsearch+x-ndjson; compatible-with=8"]
            let accepted = try await client.execute(uri: "/_bulk", method: .post, headers: versioned, body: Self.body(#"{"create":{}}"#, #"{"service":"v"}"#))
            #expect(accepted.status == .ok && accepted.json?["errors"] == .bool(false))
            let badIndex = try await client.execute(uri: "/_x/_bulk", method: .post, headers: Self.ndjson, body: Self.body(#"{"create":{}}"#, "{}"))
            #expect(
                badIndex.status == .badRequest && badIndex.json?["error"]?["reason"] == .string("Invalid index name [_x], must not start with '_', '-', or '+'")
            )
            let get = try await client.execute(uri: "/_bulk", method: .get)
            #expect(get.status == .methodNotAllowed && get.headers[.allow] == "POST, PUT")
            let indexGet = try await client.execute(uri: "/app/_bulk", method: .get)
            #expect(indexGet.status == .methodNotAllowed && indexGet.headers[.allow] == "POST, PUT")
        }
        #expect(Self.logs(gateway).map(\.service) == ["v"])
    }

    @Test func authenticatesByApiKeyBasicOrXApiKey() async throws {
        let gateway = TestGateway(apiKey: "server-secret") { $0.organizationKeys = true }
        let (orgKey, _) = gateway.keys.add(organization: "acme")
        let one = Self.body(#"{"create":{"_index":"app"}}"#, #"{"message":"m"}"#)
        try await gateway.test { client in
            let none = try await client.execute(uri: "/_bulk", method: .post, headers: Self.ndjson, body: one)
            #expect(none.status == .unauthorized && none.json?["error"]?["type"] == .string("security_exception"))
            #expect(none.headers[.wwwAuthenticate]?.contains("Basic") == true && none.headers[.elasticProduct] == "Elasticsearch")
            for (authorization, expected) in [
                (Self.basic("initech", "server-secret"), HTTPResponse.Status.ok), (Self.apiKey("globex", "server-secret"), .ok),
                (Self.apiKey("", orgKey), .ok), (Self.basic("acme", orgKey), .ok), (Self.basic("other", orgKey), .forbidden),
                (Self.basic("acme", "wrong"), .unauthorized), ("Bearer abc", .unauthorized), ("Basic !!!", .unauthorized),
                (Self.basic("bad org!", "server-secret"), .badRequest),
            ] {
                var headers = Self.ndjson
                headers[.authorization] = authorization
                let response = try await client.execute(uri: "/_bulk", method: .post, headers: headers, body: one)
                #expect(response.status == expected, "\(authorization): \(response.text)")
            }
            var both = Self.ndjson
            both[.authorization] = Self.basic("initech", "server-secret")
            both[.organizationID] = "globex"
            let conflicting = try await client.execute(uri: "/_bulk", method: .post, headers: both, body: one)
            #expect(conflicting.status == .badRequest)
            #expect(conflicting.json?["error"]?["reason"] == .string("x-organization-id names organization globex but the Authorization user names initech"))
            let bad = try await client.execute(uri: "/_bulk", method: .post, headers: [.authorization: Self.basic("bad org!", "server-secret")], body: one)
            #expect(bad.json?["error"]?["reason"] == .string("Invalid organization in the Authorization user: must match ^[A-Za-z0-9_-]{1,64}$"))
            let header = try await client.execute(uri: "/_bulk", method: .post, headers: [.apiKey: "server-secret", .organizationID: "hooli"], body: one)
            #expect(header.status == .ok)
        }
        #expect(gateway.publisher.events.map(\.org) == ["initech", "globex", "acme", "acme", "hooli"])
    }

    @Test func theNodeAnswersAsElasticsearch8() async throws {
        let gateway = TestGateway(apiKey: "server-secret")
        try await gateway.test { client in
            let node = try await client.execute(uri: "/", method: .get, headers: [.authorization: Self.basic("acme", "server-secret")])
            #expect(node.status == .ok && node.headers[.elasticProduct] == "Elasticsearch")
            #expect(node.json?["version"]?["number"] == .string("8.11.0") && node.json?["tagline"] == .string("You Know, for Search"))
            let ping = try await client.execute(uri: "/", method: .head, headers: [.apiKey: "server-secret"])
            #expect(ping.status == .ok && ping.body.readableBytes == 0)
            let refused = try await client.execute(uri: "/", method: .get)
            #expect(refused.status == .unauthorized && refused.json?["error"]?["type"] == .string("security_exception"))
            let license = try await client.execute(uri: "/_license", method: .get, headers: [.apiKey: "server-secret"])
            #expect(license.json?["license"]?["status"] == .string("active") && license.headers[.elasticProduct] == "Elasticsearch")
            let health = try await client.execute(uri: "/_cluster/health", method: .get, headers: [.apiKey: "server-secret"])
            #expect(health.status == .ok && health.json?["status"] == .string("green"))
            gateway.publisher.setFailing(true)
            let red = try await client.execute(uri: "/_cluster/health", method: .get, headers: [.apiKey: "server-secret"])
            #expect(red.status == .serviceUnavailable && red.json?["error"]?["reason"] == .string("Redis is not reachable"))
            #expect(try await client.execute(uri: "/_license", method: .get).status == .unauthorized)
        }
    }

    @Test func rateLimitsAndQueueTroubleAnswerAsElasticsearch() async throws {
        let limited = TestGateway { $0.rateLimit = RateLimit(eventsPerSecond: 1, eventsBurst: 2) }
        let two = Self.body(#"{"create":{"_index":"app"}}"#, "{}", #"{"create":{"_index":"app"}}"#, "{}")
        try await limited.test { client in
            #expect(try await client.execute(uri: "/_bulk", method: .post, headers: Self.ndjson, body: two).status == .ok)
            let refused = try await client.execute(uri: "/_bulk", method: .post, headers: Self.ndjson, body: two)
            #expect(refused.status == .tooManyRequests && refused.headers[.retryAfter] != nil)
            #expect(refused.json?["error"]?["type"] == .string("es_rejected_execution_exception") && refused.json?["status"] == .number("429"))
        }
        let failing = TestGateway()
        failing.publisher.setFailing(true)
        try await failing.test { client in
            let unavailable = try await client.execute(uri: "/_bulk", method: .post, headers: Self.ndjson, body: two)
            #expect(unavailable.status == .serviceUnavailable && unavailable.headers[.retryAfter] == "1")
            #expect(unavailable.json?["error"]?["reason"] == .string("Event queue is unavailable; retry later"))
        }
    }

    @Test func aRetriedMixedRequestIsAnsweredAgainAndQueuedOnce() async throws {
        let gateway = TestGateway()
        let mixed = Self.body(#"{"create":{"_index":"app"}}"#, #"{"message":"kept"}"#, #"{"create":{"_index":"app"}}"#, "[]")
        var fields = Self.ndjson
        fields[IngestService.idempotencyKey] = "bulk-retry-1"
        let headers = fields
        let (first, second) = try await gateway.test { client in
            (
                try await client.execute(uri: "/_bulk", method: .post, headers: headers, body: mixed),
                try await client.execute(uri: "/_bulk", method: .post, headers: headers, body: mixed)
            )
        }
        #expect(first.status == .ok && second.status == .ok && second.headers[IngestService.idempotentReplayed] == "true")
        #expect(first.json?["items"] == second.json?["items"], "the same ids and refusals")
        #expect(second.headers[.elasticProduct] == "Elasticsearch")
        #expect(Self.logs(gateway).map(\.message) == ["kept"])
    }

    @Test func zstdBulkBodies() async throws {
        let gateway = TestGateway()
        let plain = Self.body(#"{"create":{"_index":"app"}}"#, #"{"message":"compressed"}"#)
        let compressed = ByteBuffer(bytes: Zstd.compress(Array(plain.readableBytesView)))
        let headers: HTTPFields = [.contentType: "application/x-ndjson", .contentEncoding: "zstd"]
        let response = try await gateway.test { client in
            try await client.execute(uri: "/_bulk", method: .post, headers: headers, body: compressed)
        }
        #expect(response.status == .ok && Self.logs(gateway).map(\.message) == ["compressed"])
    }
}
