import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Shared
import Testing

@testable import Gateway

@Suite("Organization API keys and failed-authentication limits (in-process)")
struct OrganizationKeyTests {
    @Test func anOrganizationKeyWritesToItsOrganizationOnly() async throws {
        let gateway = TestGateway(apiKey: "server-key")
        let (key, _) = gateway.keys.add(organization: "acme")
        try await gateway.test { (client) async throws in
            #expect(try await client.post("/events/logs", specLog, headers: [.apiKey: key]).status == .accepted)
            #expect(try await client.post("/events/metrics", specMetric, headers: [.apiKey: key, .organizationID: "acme"]).status == .accepted)
            let other = try await client.post("/events/logs", specLog, headers: [.apiKey: key, .organizationID: "globex"])
            #expect(other.status == .forbidden)
            #expect(other.text == #"{"statusCode":403,"message":"API key does not belong to organization globex"}"#)
            let batch = try await client.post("/events/logs/batch", specBatch, headers: [.apiKey: key, .organizationID: "default"])
            #expect(batch.status == .forbidden)
            // The server-wide key still writes anywhere, as the spec says.
            #expect(try await client.post("/events/logs", specLog, headers: [.apiKey: "server-key", .organizationID: "globex"]).status == .accepted)
        }
        #expect(gateway.publisher.events.map(\.org) == ["acme", "acme", "globex"])
    }

    @Test func unknownExpiredAndMalformedKeysAreRefused() async throws {
        let gateway = TestGateway(apiKey: "server-key")
        let (expired, _) = gateway.keys.add(organization: "acme", expiresAt: Timestamp.now.milliseconds - 1)
        let (later, _) = gateway.keys.add(organization: "acme", expiresAt: Timestamp.now.milliseconds + 60_000)
        try await gateway.test { (client) async throws in
            for key in [expired, "opk_" + String(repeating: "0", count: 64), "opk_", later + "x", String(later.dropLast())] {
                let response = try await client.post("/events/logs", specLog, headers: [.apiKey: key])
                #expect(response.status == .unauthorized, "\(key)")
                #expect(response.text == #"{"statusCode":401,"message":"Invalid or missing API key"}"#)
            }
            // Rotation overlap: a key with an expiry in the future still works.
            #expect(try await client.post("/events/logs", specLog, headers: [.apiKey: later]).status == .accepted)
        }
        #expect(gateway.publisher.events.count == 1)
    }

    @Test func aRevokedKeyStopsWithinTheCacheTime() async throws {
        let gateway = TestGateway(apiKey: "server-key") { $0.apiKeyCacheMilliseconds = 2_000 }
        let (key, _) = gateway.keys.add(organization: "acme")
        try await gateway.test { (client) async throws in
            let started = NIODeadline.now()
            for _ in 0..<5 { #expect(try await client.post("/events/logs", specLog, headers: [.apiKey: key]).status == .accepted) }
            gateway.keys.remove(key)
            let stillCached = try await client.post("/events/logs", specLog, headers: [.apiKey: key]).status
            if started + .milliseconds(Int64(1_500)) > NIODeadline.now() {  // skip on a machine too loaded to tell
                #expect(gateway.keys.lookups.load(ordering: .relaxed) == 1, "lookups are cached")
                #expect(stillCached == .accepted, "a revoked key may work until its cache entry lapses")
            }
            try await Task.sleep(for: .milliseconds(2_100))
            #expect(try await client.post("/events/logs", specLog, headers: [.apiKey: key]).status == .unauthorized)
        }
    }

    @Test func keyLookupFailureIsA503NotA401() async throws {
        let gateway = TestGateway(apiKey: "server-key") { $0.apiKeyCacheMilliseconds = 0 }
        let (key, _) = gateway.keys.add(organization: "acme")
        gateway.keys.failing.store(true, ordering: .relaxed)
        try await gateway.test { (client) async throws in
            let response = try await client.post("/events/logs", specLog, headers: [.apiKey: key])
            #expect(response.status == .serviceUnavailable)
            #expect(response.headers[.retryAfter] == "1")
            #expect(response.json?["message"] == .string("Authentication is unavailable; retry later"))
            // The server-wide key needs no lookup.
            #expect(try await client.post("/events/logs", specLog, headers: [.apiKey: "server-key"]).status == .accepted)
        }
    }

    @Test func openGatewayIgnoresUnknownKeysButHonoursOrganizationKeys() async throws {
        let gateway = TestGateway()
        let (key, _) = gateway.keys.add(organization: "acme")
        try await gateway.test { (client) async throws in
            #expect(try await client.post("/events/logs", specLog, headers: [.apiKey: "your-api-key"]).status == .accepted)
            #expect(try await client.post("/events/logs", specLog, headers: [.apiKey: key]).status == .accepted)
            #expect(try await client.post("/events/logs", specLog, headers: [.apiKey: key, .organizationID: "globex"]).status == .forbidden)
        }
        #expect(gateway.publisher.events.map(\.org) == ["default", "acme"])
    }

    @Test func requiredKeysWithoutAServerKey() async throws {
        let gateway = TestGateway { $0.requireAPIKey = true }
        let (key, _) = gateway.keys.add(organization: "acme")
        try await gateway.test { (client) async throws in
            #expect(try await client.post("/events/logs", specLog).status == .unauthorized)
            #expect(try await client.post("/events/logs", specLog, headers: [.apiKey: "your-api-key"]).status == .unauthorized)
            #expect(try await client.post("/events/logs", specLog, headers: [.apiKey: key]).status == .accepted)
        }
    }

    @Test func repeatedFailuresFromOneClientGet429WithoutSlowingOthers() async throws {
        let gateway = TestGateway(apiKey: "server-key") {
            $0.authFailureLimit = 3
            $0.authFailureWindowSeconds = 30
            $0.trustForwardedFor = true
        }
        try await gateway.test { (client) async throws in
            let attacker: HTTPFields = [.forwardedFor: "203.0.113.7, 10.0.0.1", .apiKey: "guess"]
            for _ in 0..<3 { #expect(try await client.post("/events/logs", specLog, headers: attacker).status == .unauthorized) }
            let blocked = try await client.post("/events/logs", specLog, headers: attacker)
            #expect(blocked.status == .tooManyRequests)
            #expect(blocked.headers[.retryAfter].flatMap { Int($0) }.map { (1...30).contains($0) } == true)
            #expect(blocked.json?["statusCode"] == .number("429"))
            // Even the right key from the blocked client waits for the window: no oracle for guesses.
            var rightKey = attacker
            rightKey[.apiKey] = "server-key"
            #expect(try await client.post("/events/logs", specLog, headers: rightKey).status == .tooManyRequests)
            // Another client is unaffected.
            let other: HTTPFields = [.forwardedFor: "198.51.100.2", .apiKey: "server-key"]
            #expect(try await client.post("/events/logs", specLog, headers: other).status == .accepted)
        }
    }

    @Test func limiterWindowsEndAndTheTableStaysBounded() async throws {
        let limiter = AuthFailureLimiter(limit: 2, windowMilliseconds: 100, capacity: 10)
        limiter.recordFailure(client: "a")
        #expect(limiter.retryAfter(client: "a") == nil)
        limiter.recordFailure(client: "a")
        #expect(limiter.retryAfter(client: "a") == 1)
        try await Task.sleep(for: .milliseconds(150))
        #expect(limiter.retryAfter(client: "a") == nil)
        for index in 0..<1_000 { limiter.recordFailure(client: "c\(index)") }
        limiter.recordFailure(client: "c999")
        #expect(limiter.retryAfter(client: "c999") == 1)
    }
}
