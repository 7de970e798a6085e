import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Shared
import Synchronization

/// Sends ledger traffic to gateways from `connections` concurrent connections: single logs and batches of ten, over
/// several organizations, with an invalid event now and then (a 400 that must store nothing; PostgreSQL poison among
/// them). Every request's
/// markers go into the ledger with the class of its answer; latencies of single events are kept for percentiles.
///
/// With `retryingWithKeys`, each request carries an `Idempotency-Key` and a request whose answer is unknown (5xx,
/// timeout, reset) is sent again, same key and body, to the next gateway, until it gets a 202 or a 4xx (or the load
/// stops): what a well-behaved client does.
///
/// With `otlp`, one request in eight is an OTLP/HTTP JSON export of one log record (`POST /v1/logs`, answered 200)
/// whose body is the marker.
final class LoadGenerator: Sendable {
    let ledger: Ledger
    let ports: [Int]
    let organizations: [String]
    let apiKey: String
    let connections: Int
    let retryingWithKeys: Bool
    let otlp: Bool
    /// Whether those retries carry the key (off only to show what happens without it).
    let sendsKeys: Bool
    private let stopped = Atomic<Bool>(false)
    private let retries = Atomic<Int>(0)
    private let replays = Atomic<Int>(0)
    private let latencies = Mutex<[Int]>([])
    private let statuses = Mutex<[Int: Int]>([:])
    private let slowest = Atomic<Int>(0)

    init(
        ledger: Ledger, ports: [Int], organizations: [String] = LoadGenerator.defaultOrganizations, apiKey: String, connections: Int = 8,
        retryingWithKeys: Bool = false, sendsKeys: Bool = true, otlp: Bool = false
    ) {
        self.retryingWithKeys = retryingWithKeys
        self.otlp = otlp
        self.sendsKeys = sendsKeys
        self.ledger = ledger
        self.ports = ports
        self.organizations = organizations
        self.apiKey = apiKey
        self.connections = connections
    }

    /// Requests sent again after an unknown answer, and answers that were a recorded first answer
    /// (`Idempotent-Replayed`).
    var retryCounts: (retries: Int, replays: Int) { (retries.load(ordering: .relaxed), replays.load(ordering: .relaxed)) }

    /// The organizations traffic is spread over unless told otherwise.
    static let defaultOrganizations = ["org-a", "org-b", "org-c", "org-d"]

    func stop() { stopped.store(true, ordering: .relaxed) }

    /// Runs until `stop()`.
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<connections { group.addTask { await self.connection(index) } }
        }
    }

    /// Answer counts by status (0 for an error without an answer).
    var statusCounts: [Int: Int] { statuses.withLock { $0 } }

    /// The longest wait for any answer (any status) in milliseconds, since the last `resetCounters()`.
    var slowestAnswerMilliseconds: Int { slowest.load(ordering: .relaxed) }

    /// Clears the status counts and the slowest answer, to look at one phase of a test.
    func resetCounters() {
        statuses.withLock { $0.removeAll() }
        slowest.store(0, ordering: .relaxed)
    }

    /// The median and 99th percentile of single-event latencies since the last call, in milliseconds; clears them.
    func takeLatencies() -> (p50: Double, p99: Double) {
        let sorted = latencies.withLock { values in
            defer { values.removeAll() }
            return values.sorted()
        }
        func percentile(_ value: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            let index = min(sorted.count - 1, max(0, Int((Double(sorted.count) * value / 100).rounded(.up)) - 1))
            return Double(sorted[index]) / 1_000
        }
        return (percentile(50), percentile(99))
    }

    /// An event the gateway must refuse: an unknown level, or one of the inputs PostgreSQL cannot store (NUL in a
    /// text or a key, a number past jsonb's range, an instant in year 0000).
    static func invalidEvent(_ marker: String, variant: Int) -> String {
        switch variant % 5 {
        case 0: #"{"service":"ledger-svc","level":"loud","message":"\#(marker)"}"#
        case 1: #"{"service":"ledger-svc","level":"info","message":"\#(marker)\u0000"}"#
        case 2: #"{"service":"ledger-svc","level":"info","message":"\#(marker)","metadata":{"k\u0000":1}}"#
        case 3: #"{"service":"ledger-svc","level":"info","message":"\#(marker)","metadata":{"n":1e131072}}"#
        default: #"{"service":"ledger-svc","level":"info","message":"\#(marker)","timestamp":"0001-01-01T00:00:00+02:00"}"#
        }
    }

    private func connection(_ index: Int) async {
        var portIndex = index % ports.count
        var client: TestClient?
        var request = 0
        while !stopped.load(ordering: .relaxed) {
            if client == nil {
                let fresh = TestClient(host: "127.0.0.1", port: ports[portIndex], configuration: .init(timeout: .seconds(5)))
                fresh.connect()
                client = fresh
            }
            request += 1
            let organization = organizations[(index + request) % organizations.count]
            let isBatch = request % 4 == 0
            let isInvalid = request % 25 == 0
            let count = isBatch ? 10 : 1
            let markers = (0..<count).map { _ in ledger.marker() }
            let events = markers.enumerated().map { offset, marker in
                isInvalid && offset == count - 1
                    ? Self.invalidEvent(marker, variant: request / 25)
                    : #"{"service":"ledger-svc","level":"info","message":"\#(marker)","metadata":{"n":\#(request)}}"#
            }
            let isOTLP = otlp && !isBatch && !isInvalid && request % 8 == 1
            let body =
                isOTLP
                ? #"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"ledger-svc"}}]},"#
                    + #""scopeLogs":[{"logRecords":[{"severityText":"INFO","body":{"stringValue":"\#(markers[0])"}}]}]}]}"#
                : isBatch ? "[" + events.joined(separator: ",") + "]" : events[0]
            let path = isOTLP ? "/v1/logs" : isBatch ? "/events/logs/batch" : "/events/logs"
            let started = NIODeadline.now()
            var status = 0
            var headers: HTTPFields = [
                .contentType: "application/json", HTTPField.Name("x-api-key")!: apiKey, HTTPField.Name("x-organization-id")!: organization,
            ]
            if retryingWithKeys && sendsKeys { headers[HTTPField.Name("Idempotency-Key")!] = UUID().uuidString }
            var attempt = 0
            repeat {
                attempt += 1
                if attempt > 1 {
                    retries.add(1, ordering: .relaxed)
                    try? await Task.sleep(for: .milliseconds(100))
                }
                if client == nil {
                    let fresh = TestClient(host: "127.0.0.1", port: ports[portIndex], configuration: .init(timeout: .seconds(5)))
                    fresh.connect()
                    client = fresh
                }
                status = 0
                do {
                    let response = try await client!.post(path, headers: headers, body: ByteBuffer(string: body))
                    status = Int(response.status.code)
                    if response.headers[HTTPField.Name("Idempotent-Replayed")!] == "true" { replays.add(1, ordering: .relaxed) }
                } catch {
                    try? await client?.shutdown()
                    client = nil
                    portIndex = (portIndex + 1) % ports.count  // that gateway may be gone: the others keep serving
                    try? await Task.sleep(for: .milliseconds(50))
                }
                if retryingWithKeys && status >= 500 && ports.count > 1 {
                    // The retry goes to the next gateway, as a client behind a load balancer would see it.
                    try? await client?.shutdown()
                    client = nil
                    portIndex = (portIndex + 1) % ports.count
                }
            } while retryingWithKeys && (status == 0 || status >= 500) && attempt < 100 && !stopped.load(ordering: .relaxed)
            let outcome: Ledger.Outcome =
                switch status {
                case 202: .accepted
                case 200 where isOTLP: .accepted
                case 400..<500: .refused
                default: .unknown
                }
            ledger.record(markers, organization: organization, outcome)
            statuses.withLock { $0[status, default: 0] += 1 }
            let elapsed = Int((NIODeadline.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1_000_000)
            if status != 0 { _ = slowest.max(elapsed, ordering: .relaxed) }
            if status == 202 && !isBatch {
                let micros = Int((NIODeadline.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1_000)
                latencies.withLock { $0.append(micros) }
            }
            if status == 503 { try? await Task.sleep(for: .milliseconds(20)) }
        }
        try? await client?.shutdown()
    }
}
