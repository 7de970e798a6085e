import Foundation
import NIOCore
import NIOSSL
import PostgresNIO
import Shared

/// What a PostgreSQL error means for the events that met it, read from the error itself (SQLSTATE class,
/// connection state), with postgres-nio's wrappers (`PostgresTransactionError`) taken off first.
enum PostgresFailure: Error, Equatable {
    /// The database cannot take writes now (connection lost, shutting down, out of connections or disk, a
    /// missing table or privilege an operator must restore): retry the same events later.
    case unavailable(String)
    /// The database refused these rows (a value it cannot store, a constraint): retrying fails the same way.
    case rejected(String)
    /// Neither can be told from the error: whether the database answers a probe decides.
    case unknown(String)

    /// SQLSTATE classes that describe the server's state, not the rows: connection exception, transaction
    /// rollback (serialization failure, deadlock), insufficient resources (disk full, out of memory, too many
    /// connections), object not in prerequisite state (lock not available), operator intervention (admin
    /// shutdown, cannot connect now), system error (I/O).
    static let unavailableClasses: Set<Substring> = ["08", "40", "53", "55", "57", "58"]
    /// SQLSTATE classes about the rows: data exception (NUL, out of range, bad encoding), integrity
    /// constraint, program limit exceeded (an index row too large).
    static let rejectedClasses: Set<Substring> = ["22", "23", "54"]
    /// Class 42 codes that name a missing schema object or privilege: true for every row, fixed by an
    /// operator, so the events wait. The rest of class 42 (a datatype mismatch on a value) is `rejected`.
    static let unavailableSchemaStates: Set<String> = ["42501", "42P01", "42703", "42883", "42704", "3F000", "3D000"]

    /// Classifies `error`.
    init(_ error: any Error) {
        if let transaction = error as? PostgresTransactionError,
            let inner = transaction.closureError ?? transaction.commitError ?? transaction.beginError ?? transaction.rollbackError
        {
            self.init(inner)
            return
        }
        guard let error = error as? PSQLError else {
            self = .unknown("PostgreSQL: \(String(reflecting: error))")
            return
        }
        switch error.code {
        case .server:
            let state = error.serverInfo?[.sqlState] ?? "?????"
            var message = "PostgreSQL \(state): \(error.serverInfo?[.message] ?? "server error")"
            if let detail = error.serverInfo?[.detail] { message += " (\(detail))" }
            let stateClass = state.prefix(2)
            if stateClass == "28" {
                // Invalid authorization (28000: no pg_hba.conf entry, such as a plain client where only TLS is
                // taken) or a wrong password (28P01): the events wait until an operator fixes it.
                self = .unavailable("PostgreSQL refused authentication: \(message)")
            } else if Self.unavailableClasses.contains(stateClass) || Self.unavailableSchemaStates.contains(state) {
                self = .unavailable(message)
            } else if Self.rejectedClasses.contains(stateClass) || stateClass == "42" {
                self = .rejected(message)
            } else {
                self = .unknown(message)
            }
        case .sslUnsupported:
            self = .unavailable("PostgreSQL does not offer TLS, and the URL's sslmode requires it (a server without ssl = on?)")
        case .connectionError, .failedToAddSSLHandler:
            self = .unavailable(Self.connectionMessage(error.underlying))
        case .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed, .unsupportedAuthMechanism,
            .authMechanismRequiresPassword, .saslError:
            self = .unavailable("PostgreSQL unreachable: \(error.code)")
        default:
            self = .unknown("PostgreSQL: \(error.code)")
        }
    }

    /// A connection that could not be made or secured, in words: the TLS reason (wrong CA, expired, name mismatch,
    /// client certificate required, a server that does not speak TLS) or the socket's.
    static func connectionMessage(_ underlying: (any Error)?) -> String {
        guard let underlying else { return "PostgreSQL unreachable" }
        if underlying is NIOSSLError || underlying is NIOSSLExtraError || underlying is BoringSSLError {
            return "PostgreSQL TLS: \(TLSFailure.reason(underlying, serverName: nil))"
        }
        if let io = underlying as? IOError { return "PostgreSQL unreachable: \(String(cString: strerror(io.errnoCode)))" }
        return "PostgreSQL unreachable: \(underlying)"
    }
}
