import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// Answers every error in the spec's shape, logs one line per failed request, and turns a 404 on a
/// known path into a 405 with `Allow`. Nothing internal (Redis text, stack traces) reaches the client.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The methods a known path accepts, for 405 answers; `nil` for an unknown path.
    let allowedMethods: @Sendable (String) -> [HTTPRequest.Method]?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let response = answer(for: error, request: request)
            let metadata: Logger.Metadata = [
                "http.method": "\(request.method)", "http.path": "\(request.uri.path)",
                "http.status": "\(response.status.code)", "error": "\(Self.describe(error))",
            ]
            if response.status.code >= 500 {
                context.logger.error("request.failed", metadata: metadata)
            } else {
                context.logger.info("request.failed", metadata: metadata)
            }
            return response
        }
    }

    private func answer(for error: any Error, request: Request) -> Response {
        switch error {
        case let error as GatewayError:
            return GatewayError.response(status: error.status, message: error.message, headers: error.headers)
        case is NIOTooManyBytesError:
            return GatewayError.response(status: .contentTooLarge, message: "Request body exceeds the limit")
        case let error as HTTPError:
            if error.status == .notFound, let allowed = allowedMethods(request.uri.path), !allowed.contains(request.method) {
                return GatewayError.response(
                    status: .methodNotAllowed,
                    message: "Method \(request.method) is not allowed on \(request.uri.path); use \(allowed.map(\.rawValue).joined(separator: ", "))",
                    headers: [.allow: allowed.map(\.rawValue).joined(separator: ", ")]
                )
            }
            if error.status == .notFound {
                return GatewayError.response(status: .notFound, message: "No route for \(request.method) \(request.uri.path)")
            }
            return GatewayError.response(status: error.status, message: error.body ?? error.status.reasonPhrase, headers: error.headers)
        case let error as any HTTPResponseError:
            return GatewayError.response(status: error.status, message: error.status.reasonPhrase)
        default:
            return GatewayError.response(status: .internalServerError, message: "Internal server error")
        }
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? GatewayError { return error.cause.map { "\(error.message) (\($0))" } ?? error.message }
        return String(describing: type(of: error))
    }
}
