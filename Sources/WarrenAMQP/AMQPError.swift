/// An error from the AMQP client: what failed, and a hint at what to do about it.
///
/// Modelled on `PSQLError`: a small ``Code`` to switch on plus a human message. Messages never
/// contain a password or a full URL.
public struct AMQPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Base: String, Hashable, Sendable {
            case invalidURL
            case connectFailed
            case authenticationFailed
            case handshakeFailed
            case connectionClosedByBroker
            case channelClosedByBroker
            case heartbeatTimeout
            case socketError
            case rpcTimeout
            case protocolError
            case publishNacked
            case consumerCancelledByBroker
            case connectionClosed
            case tlsFailed
        }

        let base: Base
        private init(_ base: Base) { self.base = base }

        /// The URL could not be parsed or names something unsupported.
        public static let invalidURL = Code(.invalidURL)
        /// The TCP connection could not be established.
        public static let connectFailed = Code(.connectFailed)
        /// The broker refused the credentials.
        public static let authenticationFailed = Code(.authenticationFailed)
        /// The AMQP handshake (protocol header, tune, open) did not complete.
        public static let handshakeFailed = Code(.handshakeFailed)
        /// The broker closed the connection (`connection.close`).
        public static let connectionClosedByBroker = Code(.connectionClosedByBroker)
        /// The broker closed the channel (`channel.close`), for instance after a failed declare.
        public static let channelClosedByBroker = Code(.channelClosedByBroker)
        /// Nothing arrived from the broker within the heartbeat timeout: it is hung or unreachable.
        public static let heartbeatTimeout = Code(.heartbeatTimeout)
        /// The socket failed: the broker went away.
        public static let socketError = Code(.socketError)
        /// A synchronous request got no reply in time.
        public static let rpcTimeout = Code(.rpcTimeout)
        /// The broker sent something this client did not expect.
        public static let protocolError = Code(.protocolError)
        /// The broker refused a published message (`basic.nack` under publisher confirms).
        public static let publishNacked = Code(.publishNacked)
        /// The broker cancelled a consumer (its queue was deleted, or a quorum queue lost its leader).
        public static let consumerCancelledByBroker = Code(.consumerCancelledByBroker)
        /// The operation needs an open connection, and this one is closed.
        public static let connectionClosed = Code(.connectionClosed)

        /// The TLS handshake failed or a certificate was refused (the message says which and why).
        public static let tlsFailed = Code(.tlsFailed)

        public var description: String { base.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// What failed, in words; never contains a password.
    public var message: String
    /// The AMQP reply code when the broker gave one (e.g. 320 CONNECTION_FORCED, 404 NOT_FOUND).
    public var replyCode: UInt16?

    public init(_ code: Code, _ message: String, replyCode: UInt16? = nil) {
        self.code = code
        self.message = message
        self.replyCode = replyCode
    }

    public var description: String {
        if let replyCode { return "\(code): \(message) (reply code \(replyCode))" }
        return "\(code): \(message)"
    }
}
