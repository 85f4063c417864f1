/// An error from the Redis client: what failed, and what to do about it.
///
/// Modelled on postgres-nio's `PSQLError`: a small ``Code`` to switch on plus a human message.
/// Messages never contain a password or a full URL.
public struct RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Base: String, Hashable, Sendable {
            case invalidURL
            case connectFailed
            case authenticationFailed
            case timeout
            case connectionLost
            case commandFailed
            case unexpectedReply
            case clientShutDown
            case tlsFailed
        }

        let base: Base
        private init(_ base: Base) { self.base = base }

        /// The URL could not be parsed or names something unsupported.
        public static let invalidURL = Code(.invalidURL)
        /// The TCP connection could not be established (refused, unreachable, or not within
        /// `connectTimeout`), or `SELECT` of the configured database failed.
        public static let connectFailed = Code(.connectFailed)
        /// Redis refused `AUTH`.
        public static let authenticationFailed = Code(.authenticationFailed)
        /// Redis did not answer within `commandTimeout`; the connection was dropped.
        public static let timeout = Code(.timeout)
        /// The connection failed mid-command (closed by the server, reset); it was dropped.
        public static let connectionLost = Code(.connectionLost)
        /// Redis answered with an error reply; the connection is still good.
        public static let commandFailed = Code(.commandFailed)
        /// Redis answered with a reply of a type the command does not produce.
        public static let unexpectedReply = Code(.unexpectedReply)
        /// The client was shut down.
        public static let clientShutDown = Code(.clientShutDown)
        /// The TLS connection (`rediss://`) could not be set up: the server's certificate is not
        /// trusted, not valid for the host or expired, the server requires or refused the client
        /// certificate, the port does not speak TLS, or the certificate files could not be loaded.
        /// The message says which; nothing was connected.
        public static let tlsFailed = Code(.tlsFailed)

        /// The code's name, e.g. `timeout`.
        public var description: String { base.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// What failed and what to do, in words; never contains a password or a full URL.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// `code: message`, e.g. `commandFailed: ...`.
    public var description: String { "\(code): \(message)" }

    /// Whether the connection was dropped (and the next command reconnects).
    public var droppedConnection: Bool {
        switch code.base {
        case .connectFailed, .authenticationFailed, .timeout, .connectionLost, .tlsFailed: true
        default: false
        }
    }
}
