/// An error from the PostgreSQL client: what failed, and what to do about it.
///
/// Modelled on postgres-nio's `PSQLError`: a small ``Code`` to switch on, a human message, and for
/// server errors the SQLSTATE. Messages never contain a password or a full URL.
public struct PostgresError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Base: String, Hashable, Sendable {
            case invalidURL
            case connectFailed
            case tlsFailed
            case timeout
            case connectionClosed
            case queryFailed
            case unexpectedResult
            case clientShutDown
        }

        let base: Base
        private init(_ base: Base) { self.base = base }

        /// The URL could not be parsed or names something unsupported.
        public static let invalidURL = Code(.invalidURL)
        /// The connection could not be established: refused, unreachable, or the server rejected
        /// the login (wrong password, unknown database). The message has the server's reason.
        public static let connectFailed = Code(.connectFailed)
        /// TLS to the server failed: its certificate is not trusted or not valid for the host, it
        /// requires a client certificate, or the key file is refused. The message says which, and
        /// what to change; the connection was not made and the next call tries again.
        public static let tlsFailed = Code(.tlsFailed)
        /// The server did not answer within `connectTimeout` (connecting) or `queryTimeout`
        /// (a query, which was then cancelled); the connection was dropped.
        public static let timeout = Code(.timeout)
        /// The connection broke during a query (server stopped, restarted, or the backend was
        /// terminated); it was dropped and the next call reconnects.
        public static let connectionClosed = Code(.connectionClosed)
        /// The server rejected the statement (syntax error, constraint violation...): see
        /// ``PostgresError/sqlState``. The connection is still good.
        public static let queryFailed = Code(.queryFailed)
        /// The server's answer was not what the call expects (e.g. `SELECT 1` did not return 1).
        public static let unexpectedResult = Code(.unexpectedResult)
        /// The client was shut down.
        public static let clientShutDown = Code(.clientShutDown)

        /// The code's name, e.g. `timeout`.
        public var description: String { base.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// What failed and what to do, in words; never contains a password or a full URL.
    public var message: String
    /// The five-character SQLSTATE when the server reported the error (e.g. `23505`
    /// unique_violation, `42601` syntax_error, `57P01` admin_shutdown).
    public var sqlState: String?
    /// The server's DETAIL field, if any. Kept out of ``description`` because it can quote row
    /// values (e.g. the duplicate key).
    public var detail: String?

    /// Creates an error.
    public init(_ code: Code, _ message: String, sqlState: String? = nil, detail: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
    }

    /// `code: message`, plus the SQLSTATE when there is one; never includes ``detail``.
    public var description: String {
        if let sqlState { return "\(code): \(message) (SQLSTATE \(sqlState))" }
        return "\(code): \(message)"
    }

    /// Whether the connection was dropped (and the next call reconnects).
    public var droppedConnection: Bool {
        switch code.base {
        case .connectFailed, .tlsFailed, .timeout, .connectionClosed: true
        default: false
        }
    }
}
