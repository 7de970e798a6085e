import Foundation
import HTTPTypes
import Shared
import Testing

@testable import Gateway

/// The rate limits' answers, in process on the in-memory publisher (which limits by the same GCRA as the Redis script,
/// tested on its own against Redis).
@Suite("Rate limits: statuses, messages and header fields")
struct RateLimitRouteTests {
    static let log = #"{"service":"api","level":"info","message":"m"}"#
    static let policy = HTTPField.Name("RateLimit-Policy")!
    static let current = HTTPField.Name("RateLimit")!

    static func batch(_ count: Int) -> String { "[" + Array(repeating: log, count: count).joined(separator: ",") + "]" }

    @Test func noLimitByDefaultAndNoFields() async throws {
        let gateway = TestGateway()
        try await gateway.test { client in
            for _ in 0..<50 {
                let response = try await client.post("/events/logs", Self.log)
                #expect(response.status == .accepted && response.headers[Self.policy] == nil && response.headers[Self.current] == nil)
            }
        }
    }

    @Test func overTheEventsLimitIs429WithRetryAfterAndTheFields() async throws {
        let gateway = TestGateway { $0.rateLimit = RateLimit(eventsPerSecond: 2, eventsBurst: 3) }
        try await gateway.test { client in
            let first = try await client.post("/events/logs", Self.log, headers: [.organizationID: "acme"])
            #expect(first.status == .accepted)
            #expect(first.headers[Self.policy] == #""events";q=3;w=2"#)
            #expect(first.headers[Self.current] == #""events";r=2;t=1"#)
            #expect(try await client.post("/events/logs/batch", Self.batch(2), headers: [.organizationID: "acme"]).status == .accepted)
            let refused = try await client.post("/events/logs", Self.log, headers: [.organizationID: "acme"])
            #expect(refused.status == .tooManyRequests)
            #expect(refused.headers[.retryAfter] == "1")
            #expect(refused.headers[Self.policy] == #""events";q=3;w=2"# && refused.headers[Self.current] == #""events";r=0;t=1"#)
            #expect(
                refused.text == #"{"statusCode":429,"message":"Rate limit of organization acme exceeded: 2 events per second (burst 3); retry after 1 s"}"#)
            // Another organization has a budget of its own.
            #expect(try await client.post("/events/logs", Self.log, headers: [.organizationID: "globex"]).status == .accepted)
            // A batch larger than the burst would never pass: 413, not 429.
            let tooLarge = try await client.post("/events/logs/batch", Self.batch(4), headers: [.organizationID: "initech"])
            #expect(tooLarge.status == .contentTooLarge && tooLarge.headers[.retryAfter] == nil)
            #expect(
                tooLarge.text
                    == #"{"statusCode":413,"message":"Batch of 4 events exceeds the burst of 3 events of organization initech's rate limit; send smaller requests"}"#
            )
            gateway.clock.advance(byMilliseconds: 500)
            #expect(try await client.post("/events/logs", Self.log, headers: [.organizationID: "acme"]).status == .accepted, "one interval later")
        }
        #expect(gateway.publisher.events.filter { $0.org == "acme" }.count == 4, "nothing written for the refused requests")
        #expect(gateway.publisher.events.filter { $0.org == "initech" }.isEmpty)
    }

    @Test func overTheBytesLimitIs429AndBothPoliciesAreListed() async throws {
        let gateway = TestGateway { $0.rateLimit = RateLimit(eventsPerSecond: 1_000, bytesPerSecond: 100, bytesBurst: 150) }
        try await gateway.test { client in
            let first = try await client.post("/events/logs", Self.log)
            #expect(first.status == .accepted)
            #expect(first.headers[Self.policy] == #""events";q=1000;w=1, "bytes";q=150;w=2;qu="content-bytes""#)
            #expect(first.headers[Self.current] == #""events";r=999;t=1, "bytes";r=\#(150 - Self.log.utf8.count);t=1"#)
            var refused: GatewayResponse?
            for _ in 0..<5 where refused == nil {
                let response = try await client.post("/events/logs", Self.log)
                if response.status == .tooManyRequests { refused = response }
            }
            let answer = try #require(refused)
            #expect(answer.headers[Self.current] == #""bytes";r=0;t=1"#)
            #expect(answer.text.contains("Rate limit of organization default exceeded: 100 bytes per second (burst 150)") == true)
            let large = try await client.post("/events/logs/batch", Self.batch(4))
            #expect(large.status == .contentTooLarge)
            #expect(large.text.contains("Request of \(Self.batch(4).utf8.count) bytes exceeds the burst of 150 bytes") == true)
        }
    }

    @Test func settingsAreReadFromTheEnvironment() throws {
        let reader = try ConfigurationReader(
            environment: ["OPERYN_RATE_EVENTS_PER_SECOND": "500", "OPERYN_RATE_BYTES_PER_SECOND": "1048576", "OPERYN_RATE_BYTES_BURST": "4194304"],
            arguments: ["--rate-limit-cache-ms", "250"])
        let configuration = try GatewayConfiguration(reader)
        #expect(configuration.rateLimit == RateLimit(eventsPerSecond: 500, eventsBurst: 500, bytesPerSecond: 1_048_576, bytesBurst: 4_194_304))
        #expect(configuration.rateLimitCacheMilliseconds == 250)
        #expect(GatewayConfiguration().rateLimit.isNone, "no limit by default, as the API reference says")
        #expect(throws: ConfigurationError.self) {
            try GatewayConfiguration(ConfigurationReader(environment: ["OPERYN_RATE_EVENTS_PER_SECOND": "-1"], arguments: []))
        }
    }

    @Test func overridesReplaceTheDefaultWholly() {
        let fallback = RateLimit(eventsPerSecond: 10)
        #expect(RateLimit.of(settings: [:], fallback: fallback) == fallback)
        #expect(RateLimit.of(settings: ["service_limit": "3"], fallback: fallback) == fallback)
        #expect(RateLimit.of(settings: ["bytes_per_second": "100"], fallback: fallback) == RateLimit(bytesPerSecond: 100))
        #expect(RateLimit.of(settings: ["events_per_second": "0"], fallback: fallback).isNone, "an explicit 0: unlimited for this one")
        let limit = RateLimit(eventsPerSecond: 5, eventsBurst: 9, bytesPerSecond: 7)
        #expect(RateLimit.of(settings: Dictionary(uniqueKeysWithValues: limit.settingsValues), fallback: .none) == limit)
        #expect(limit.description == "5 events per second (burst 9) and 7 bytes per second (burst 7)")
    }
}

/// `Idempotency-Key`, in process on the in-memory publisher (the script itself is tested against Redis).
@Suite("Idempotency keys: retries answered once")
struct IdempotencyRouteTests {
    static let key = HTTPField.Name("Idempotency-Key")!
    static let replayed = HTTPField.Name("Idempotent-Replayed")!

    @Test func aRetryGetsTheFirstAnswerAndWritesNothing() async throws {
        let gateway = TestGateway()
        try await gateway.test { client in
            let first = try await client.post("/events/logs", RateLimitRouteTests.log, headers: [Self.key: "order-1"])
            #expect(first.status == .accepted && first.headers[Self.replayed] == nil)
            let retry = try await client.post("/events/logs", RateLimitRouteTests.log, headers: [Self.key: "order-1"])
            #expect(retry.status == .accepted && retry.text == first.text && retry.headers[Self.replayed] == "true", "the same id again")
            let batch = RateLimitRouteTests.batch(3)
            #expect(try await client.post("/events/logs/batch", batch, headers: [Self.key: "order-2"]).text == #"{"accepted":3}"#)
            #expect(try await client.post("/events/logs/batch", batch, headers: [Self.key: "order-2"]).text == #"{"accepted":3}"#)
            // Scoped per organization: another organization's key of the same name is its own.
            #expect(
                try await client.post("/events/logs", RateLimitRouteTests.log, headers: [Self.key: "order-1", .organizationID: "acme"]).headers[Self.replayed]
                    == nil)
            // The same key with another body: 422, nothing written.
            let other = try await client.post("/events/logs", #"{"service":"api","level":"info","message":"other"}"#, headers: [Self.key: "order-1"])
            #expect(other.status == .unprocessableContent)
            #expect(
                other.text
                    == #"{"statusCode":422,"message":"Idempotency-Key was already used with another request of organization default; use a new key for a new request"}"#
            )
        }
        #expect(gateway.publisher.events.count == 1 + 3 + 1, "each request stored once")
    }

    @Test func keysOutsideTheAllowedFormAre400() async throws {
        let gateway = TestGateway()
        try await gateway.test { client in
            for bad in ["", String(repeating: "k", count: 256), "has space", "tab\there", "ü"] {
                let response = try await client.post("/events/logs", RateLimitRouteTests.log, headers: [Self.key: bad])
                #expect(response.status == .badRequest, "\(bad.prefix(20))")
                #expect(response.text == #"{"statusCode":400,"message":"Invalid Idempotency-Key: must be 1-255 visible ASCII characters"}"#)
            }
            #expect(try await client.post("/events/logs", RateLimitRouteTests.log, headers: [Self.key: String(repeating: "k", count: 255)]).status == .accepted)
            #expect(try await client.post("/events/logs", RateLimitRouteTests.log, headers: [Self.key: "a:b/c=d+e{f}~"]).status == .accepted)
        }
        #expect(gateway.publisher.events.count == 2)
    }
}
