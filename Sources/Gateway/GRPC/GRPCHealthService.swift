import GRPCCore
import NIOCore

/// The standard `grpc.health.v1.Health/Check`, answering as `GET /health/ready` does: `SERVING` while Redis answers,
/// `NOT_SERVING` while it does not. The overall server (`""`) and the two OTLP services are known; any other name is
/// `NOT_FOUND`, as the health protocol asks. `Watch` is not served (`UNIMPLEMENTED`): probes and load balancers ask
/// `Check`.
struct GRPCHealthService: RegistrableRPCService {
    static let check = MethodDescriptor(fullyQualifiedService: "grpc.health.v1.Health", method: "Check")
    static let services: Set<String> = ["", OTLPGRPCService.logs.service.fullyQualifiedService, OTLPGRPCService.metrics.service.fullyQualifiedService]

    /// Whether the gateway is ready (Redis answers).
    let isReady: @Sendable () async -> Bool

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(forMethod: Self.check, deserializer: RawMessage(), serializer: RawMessage()) { request, _ in
            let response: ServerResponse<ByteBuffer>
            do {
                let single = try await ServerRequest(stream: request)
                response = try await check(single.message)
            } catch let error as RPCError {
                response = ServerResponse(error: error)
            } catch {
                response = ServerResponse(error: RPCError(code: .invalidArgument, message: "A health check is one request message"))
            }
            return StreamingServerResponse(single: response)
        }
    }

    private func check(_ message: ByteBuffer) async throws(RPCError) -> ServerResponse<ByteBuffer> {
        let service = try Self.serviceName(of: message)
        guard Self.services.contains(service) else { throw RPCError(code: .notFound, message: "Unknown service '\(service.prefix(100))'") }
        // HealthCheckResponse { ServingStatus status = 1; }: SERVING = 1, NOT_SERVING = 2.
        return ServerResponse(message: ByteBuffer(bytes: [0x08, await isReady() ? 1 : 2]))
    }

    /// `HealthCheckRequest.service` (field 1, a string) of a serialized request; other fields are skipped, as protobuf
    /// readers do.
    static func serviceName(of message: ByteBuffer) throws(RPCError) -> String {
        var message = message
        var service = ""
        let malformed = RPCError(code: .invalidArgument, message: "Malformed HealthCheckRequest")
        while message.readableBytes > 0 {
            guard let tag = readVarint(&message) else { throw malformed }
            switch tag & 7 {
            case 0: guard readVarint(&message) != nil else { throw malformed }
            case 1: guard message.readSlice(length: 8) != nil else { throw malformed }
            case 5: guard message.readSlice(length: 4) != nil else { throw malformed }
            case 2:
                guard let length = readVarint(&message), length <= UInt64(message.readableBytes),
                    let bytes = message.readBytes(length: Int(length))
                else { throw malformed }
                if tag >> 3 == 1 {
                    guard let text = String(validating: bytes, as: UTF8.self) else { throw malformed }
                    service = text
                }
            default: throw malformed
            }
        }
        return service
    }

    private static func readVarint(_ buffer: inout ByteBuffer) -> UInt64? {
        var value: UInt64 = 0
        for shift in stride(from: UInt64(0), to: 64, by: 7) {
            guard let byte = buffer.readInteger(as: UInt8.self) else { return nil }
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
        }
        return nil
    }
}
