// operyn-ceiling: the gateway's HTTP stack (Hummingbird, same server configuration) answering every
// ingestion POST with a fixed 202 and no work at all. scripts/bench-gateway.sh measures the gateway
// against it: the ratio is the cost of authentication, validation and the XADD.
import Hummingbird

let port = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 3999
let router = Router()
let accepted = #"{"id":"f47ac10b-58cc-4372-a567-0e02b2c3d479","queued":true}"#
for path in ["/events/logs", "/events/logs/batch", "/events/metrics", "/events/deployments"] {
    router.post(RouterPath(path)) { _, _ in
        Response(status: .accepted, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: accepted)))
    }
}
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "operyn-ceiling"))
try await app.runService()
