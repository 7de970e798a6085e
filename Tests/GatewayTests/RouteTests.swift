import CompressNIO
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Shared
import Testing

@testable import Gateway

@Suite("Gateway routes (in-process, in-memory publisher)")
struct RouteTests {
    let organization: HTTPFields = [.organizationID: "org_123456789", .apiKey: "your-api-key"]

    @Test func specExamplesAreAccepted() async throws {
        let gateway = TestGateway(apiKey: "your-api-key")
        try await gateway.test { client in
            let log = try await client.post("/events/logs", specLog, headers: organization)
            #expect(log.status == .accepted)
            let id = try #require(log.json?["id"], "\(log.text)")
            #expect(log.json?["queued"] == .bool(true))
            guard case .string(let idText) = id else { throw GatewayError.badRequest("id") }
            #expect(idText.count == 36 && idText.split(separator: "-").map(\.count) == [8, 4, 4, 4, 12])

            let batch = try await client.post("/events/logs/batch", specBatch, headers: organization)
            #expect(batch.status == .accepted && batch.text == #"{"accepted":2}"#)
            #expect(try await client.post("/events/metrics", specMetric, headers: organization).status == .accepted)
            #expect(try await client.post("/events/deployments", specDeployment, headers: organization).status == .accepted)
        }
        let events = gateway.publisher.events
        #expect(events.count == 5)
        #expect(events.allSatisfy { $0.org == "org_123456789" })
        #expect(events.map(\.event.kind) == [.logs, .logs, .logs, .metrics, .deployments])
        #expect(Set(events.map(\.id)).count == 5)
    }

    @Test func authentication() async throws {
        let gateway = TestGateway(apiKey: "s3cret")
        try await gateway.test { client in
            for headers: HTTPFields in [[:], [.apiKey: "wrong"], [.apiKey: "s3cre"], [.apiKey: "s3cret2"], [.apiKey: ""]] {
                let response = try await client.post("/events/logs", specLog, headers: headers)
                #expect(response.status == .unauthorized)
                #expect(response.text == #"{"statusCode":401,"message":"Invalid or missing API key"}"#)
            }
            #expect(try await client.post("/events/logs", specLog, headers: [.apiKey: "s3cret"]).status == .accepted)
        }
        #expect(gateway.publisher.events.map(\.org) == ["default"])
    }

    @Test func openWithoutAKeyAndOrganizationIdsChecked() async throws {
        let gateway = TestGateway()
        try await gateway.test { client in
            #expect(try await client.post("/events/logs", specLog).status == .accepted)
            for bad in ["a:b", "*", "{}", String(repeating: "x", count: 65), "org 1", "ü"] {
                let response = try await client.post("/events/logs", specLog, headers: [.organizationID: bad])
                #expect(response.status == .badRequest, "\(bad)")
                #expect(response.json?["message"] == .string("Invalid x-organization-id: must match ^[A-Za-z0-9_-]{1,64}$"))
            }
        }
        #expect(gateway.publisher.events.count == 1)
        #expect(gateway.publisher.events.first?.org == "default")
    }

    @Test func invalidEventsGet400WithTheSpecShape() async throws {
        let gateway = TestGateway()
        try await gateway.test { client in
            let cases: [(String, String, String)] = [
                (
                    "/events/logs", #"{"service":"s","level":"loud","message":"m"}"#,
                    "Invalid log event: level must be one of debug, info, warn, error, fatal, got 'loud'"
                ),
                ("/events/logs", #"{"service":"s","level":"info"}"#, "Invalid log event: message is required"),
                ("/events/metrics", #"{"service":"s","name":"n","value":"x","unit":"u"}"#, "Invalid metric event: value must be a number, got string"),
                ("/events/deployments", #"{"service":"s"}"#, "Invalid deployment event: version is required"),
                ("/events/logs", #"{"service":"#, "Invalid log event: malformed JSON at byte 11: unexpected end of input"),
                ("/events/logs/batch", "[]", "Invalid log event: batch must contain at least 1 event"),
                (
                    "/events/logs/batch", #"[{"service":"s","level":"info","message":"m"},{"service":"s","level":"info"}]"#,
                    "Invalid log event: [1].message is required"
                ),
            ]
            for (path, body, message) in cases {
                let response = try await client.post(path, body)
                #expect(response.status == .badRequest)
                #expect(response.json == .object([("statusCode", .number("400")), ("message", .string(message))]), "\(response.text)")
                #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
            }
        }
        #expect(gateway.publisher.events.isEmpty)
    }

    @Test func bodySizeTypeAndEncoding() async throws {
        var limits = EventLimits()
        limits.maxBodyBytes = 1_000
        limits.maxBatchBodyBytes = 2_000
        let gateway = TestGateway(limits: limits)
        try await gateway.test { client in
            let big = #"{"service":"s","level":"info","message":"\#(String(repeating: "x", count: 1_000))"}"#
            let tooLarge = try await client.post("/events/logs", big)
            #expect(tooLarge.status == .contentTooLarge)
            #expect(tooLarge.json?["message"] == .string("Request body exceeds the limit of 1000 bytes"))
            #expect(try await client.post("/events/logs/batch", "[\(big)]").status == .accepted, "the batch limit is its own")

            let text = try await client.post("/events/logs", specLog, headers: [.contentType: "text/plain"])
            #expect(text.status == .unsupportedMediaType && text.json?["statusCode"] == .number("415"))
            #expect(try await client.post("/events/logs", specLog, headers: [.contentType: "application/json; charset=utf-8"]).status == .accepted)
            #expect(try await client.post("/events/logs", specLog, headers: [.contentEncoding: "br"]).status == .unsupportedMediaType)

            var plain = ByteBuffer(string: specLog)
            let gzipped = try plain.compress(with: .gzip())
            let compressed = try await client.execute(
                uri: "/events/logs", method: .post, headers: [.contentType: "application/json", .contentEncoding: "gzip"], body: gzipped)
            #expect(compressed.status == .accepted, "\(compressed.text)")

            var bomb = ByteBuffer(string: String(repeating: " ", count: 100_000) + specLog)
            let bombCompressed = try bomb.compress(with: .gzip())
            #expect(bombCompressed.readableBytes < 1_000)
            let exploded = try await client.execute(
                uri: "/events/logs", method: .post, headers: [.contentType: "application/json", .contentEncoding: "gzip"], body: bombCompressed)
            #expect(exploded.status == .contentTooLarge && exploded.json?["message"] == .string("Request body (decompressed) exceeds the limit of 1000 bytes"))

            let garbage = try await client.execute(
                uri: "/events/logs", method: .post, headers: [.contentType: "application/json", .contentEncoding: "gzip"], body: ByteBuffer(string: "not gzip"))
            #expect(garbage.status == .badRequest)

            // zstd: the same event, a bomb past the limit, a frame cut short, and bytes that are not zstd.
            let zstd: HTTPFields = [.contentType: "application/json", .contentEncoding: "zstd"]
            let packed = try await client.execute(
                uri: "/events/logs", method: .post, headers: zstd, body: ByteBuffer(bytes: Zstd.compress(Array(specLog.utf8))))
            #expect(packed.status == .accepted, "\(packed.text)")
            let zstdBomb = Zstd.compress(Array((String(repeating: " ", count: 10_000_000) + specLog).utf8), level: 19)
            #expect(zstdBomb.count < 1_000)
            let zstdExploded = try await client.execute(uri: "/events/logs", method: .post, headers: zstd, body: ByteBuffer(bytes: zstdBomb))
            #expect(
                zstdExploded.status == .contentTooLarge
                    && zstdExploded.json?["message"] == .string("Request body (decompressed) exceeds the limit of 1000 bytes"))
            let cut = Zstd.compress(Array(specLog.utf8)).dropLast(4)
            let truncated = try await client.execute(uri: "/events/logs", method: .post, headers: zstd, body: ByteBuffer(bytes: cut))
            #expect(truncated.status == .badRequest && truncated.json?["message"] == .string("Request body is not valid zstd"), "\(truncated.text)")
            let notZstd = try await client.execute(uri: "/events/logs", method: .post, headers: zstd, body: ByteBuffer(string: "not zstd"))
            #expect(notZstd.status == .badRequest && notZstd.json?["message"] == .string("Request body is not valid zstd"))
        }
        #expect(gateway.publisher.events.count == 4, "three JSON events and one zstd")
    }

    @Test func unknownPathsAndWrongMethods() async throws {
        try await TestGateway().test { client in
            let missing = try await client.execute(uri: "/events/traces", method: .post)
            #expect(missing.status == .notFound && missing.json?["statusCode"] == .number("404"))
            let wrongMethod = try await client.execute(uri: "/events/logs", method: .get)
            #expect(wrongMethod.status == .methodNotAllowed && wrongMethod.headers[.allow] == "POST")
            #expect(wrongMethod.json?["statusCode"] == .number("405"))
            #expect(try await client.execute(uri: "/health/live", method: .delete).status == .methodNotAllowed)
        }
    }

    @Test func queueTroubleIs503WithRetryAfter() async throws {
        let gateway = TestGateway()
        gateway.publisher.setFailing(true)
        try await gateway.test { client in
            for (path, body) in [("/events/logs", specLog), ("/events/logs/batch", specBatch), ("/events/metrics", specMetric)] {
                let response = try await client.post(path, body)
                #expect(response.status == .serviceUnavailable && response.headers[.retryAfter] == "1")
                #expect(response.json?["message"] == .string("Event queue is unavailable; retry later"))
            }
            let ready = try await client.execute(uri: "/health/ready", method: .get)
            #expect(ready.status == .serviceUnavailable)
            #expect(try await client.execute(uri: "/health/live", method: .get).status == .ok)
            gateway.publisher.setFailing(false)
            #expect(try await client.execute(uri: "/health/ready", method: .get).status == .ok)
            #expect(try await client.post("/events/logs", specLog).status == .accepted)
        }
    }

    @Test func backlogOverHighWaterIs503() async throws {
        let gateway = TestGateway(highWater: 100)
        gateway.backlog.update(101)
        try await gateway.test { client in
            let refused = try await client.post("/events/logs", specLog)
            #expect(refused.status == .serviceUnavailable && refused.headers[.retryAfter] != nil)
            #expect(refused.json?["message"] == .string("Ingestion backlog is over its high-water mark; retry later"))
            gateway.backlog.update(100)
            #expect(try await client.post("/events/logs", specLog).status == .accepted)
        }
        #expect(gateway.publisher.events.count == 1)
    }

    @Test func openAPIDocumentListsEveryRoute() async throws {
        try await TestGateway().test { client in
            let response = try await client.execute(uri: "/openapi.json", method: .get)
            #expect(response.status == .ok)
            let document = try #require(response.json)
            #expect(document["openapi"] == .string("3.1.0"))
            guard case .object(let paths) = try #require(document["paths"]) else { throw GatewayError.badRequest("paths") }
            let documented = Set(paths.map(\.key))
            let served = Set(knownPaths).subtracting(["/openapi.json", "/api", "/reference"])
            #expect(documented == served)
            #expect(document["components"]?["schemas"]?["LogEvent"]?["properties"]?["message"]?["maxLength"] == .number("262144"))
            #expect(document["components"]?["schemas"]?["LogEventBatch"]?["maxItems"] == .number("10000"))
            for page in ["/api", "/reference"] {
                let html = try await client.execute(uri: page, method: .get)
                #expect(html.status == .ok && html.text.contains("https://assets.example.test/npm/"))
            }
        }
    }

    @Test func metricsAreExposed() async throws {
        let gateway = TestGateway()
        try await gateway.test { client in
            _ = try await client.post("/events/logs/batch", specBatch)
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            #expect(metrics.status == .ok)
            #expect(metrics.text.contains(#"operyn_events_accepted_total{kind="logs"} 2"#), "\(metrics.text)")
        }
    }
}

@Suite("The OpenAPI timestamp pattern")
struct TimestampPatternTests {
    /// The pattern in the document and the gateway's parser agree, so schema-based fuzzers find no disagreement.
    @Test(arguments: [
        "2024-05-01", "2024-05-01T12:00", "2024-05-01T12:00:00Z", "2024-05-01t12:00:00.123456789+02:00", "2024-05-01 12:00:00,5-0330",
        "2024-02-29T00:00:00Z", "2000-02-29", "0400-02-29", "0000-02-29", "0000-01-01T07:41:42,149848539+18", "0001-01-01T00:00+01:00",
        "9998-12-31T23:59:59-23:59", "9999-12-31", "1900-02-28", "2023-12-31T23:59:60Z", "2024-05-01T12:00:00+05",
        "1900-02-29", "2023-02-29", "2024-02-30", "2024-04-31", "2024-13-01", "2024-00-10", "2024-05-01T24:00", "2024-05-01T12:60",
        "2024-05-01T12:00:00+24:00", "2024-5-1", "20240501", "2024-05-01T", "2024-05-01T12", "yesterday", "", "2024-05-01T12:00:00.Z",
    ])
    func patternMatchesWhatTheParserAccepts(text: String) throws {
        let regex = try NSRegularExpression(pattern: OpenAPIDocument.timestampPattern)
        let matches = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
        #expect(matches == (Timestamp(iso8601: text, years: Timestamp.inputYears) != nil), "\(text)")
    }
}
