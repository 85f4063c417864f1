import WarrenSystem

/// How to reach and talk to a RabbitMQ broker.
///
/// Build one from a URL with ``init(url:)`` or field by field. `description` redacts the password,
/// so a configuration can be logged as it is.
public struct AMQPConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// Broker host name or address.
    public var host: String
    /// Broker port.
    public var port: Int
    /// User name for SASL PLAIN.
    public var username: String
    /// Password for SASL PLAIN. Never printed.
    public var password: String
    /// Virtual host.
    public var virtualHost: String
    /// Heartbeat timeout in seconds to propose to the broker (0 disables heartbeats).
    /// A broker that sends nothing for this long is considered dead.
    public var heartbeat: Int
    /// Time allowed for the TCP connect and, separately, for the AMQP handshake.
    public var connectTimeout: Duration
    /// Time allowed for a synchronous request (declare, qos, consume, cancel) to be answered.
    public var rpcTimeout: Duration
    /// The name shown for this connection in the RabbitMQ management UI (`connection_name`).
    public var connectionName: String?

    /// Creates a configuration; every parameter has a default that suits a local broker.
    public init(
        host: String = "127.0.0.1",
        port: Int = 5672,
        username: String = "guest",
        password: String = "guest",
        virtualHost: String = "/",
        heartbeat: Int = 10,
        connectTimeout: Duration = .seconds(5),
        rpcTimeout: Duration = .seconds(10),
        connectionName: String? = nil
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.virtualHost = virtualHost
        self.heartbeat = heartbeat
        self.connectTimeout = connectTimeout
        self.rpcTimeout = rpcTimeout
        self.connectionName = connectionName
    }

    /// Parses `amqp://user:pass@host:port/vhost?heartbeat=10&connection_timeout=5000`.
    ///
    /// Follows the RabbitMQ URI spec: user, password and vhost are percent-decoded; the vhost is one
    /// path segment (`%2F` for `/`); a missing part takes its default. Errors name the part that is
    /// wrong and never echo the password.
    public init(url: String, connectionName: String? = nil) throws(AMQPError) {
        self = try AMQPURLParser.parse(url)
        self.connectionName = connectionName
    }

    /// The URL with the password replaced by `***`: safe for logs.
    public var redactedURL: String {
        let userInfo = password.isEmpty ? username : "\(username):***"
        let hostPart = host.contains(":") ? "[\(host)]" : host
        let vhost = virtualHost == "/" ? "%2F" : PercentEncoding.encode(virtualHost)
        return "amqp://\(userInfo)@\(hostPart):\(port)/\(vhost)"
    }

    public var description: String { redactedURL }
}
