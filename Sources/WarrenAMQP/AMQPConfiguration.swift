import WarrenSystem

/// One broker address: a host and a port. Never carries credentials, so it can be logged.
public struct AMQPEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// Broker host name or address.
    public var host: String
    /// Broker port.
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port` (an IPv6 address in brackets).
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// TLS settings of an `amqps://` connection (librabbitmq's OpenSSL socket).
public struct AMQPTLSConfiguration: Sendable, Equatable {
    /// PEM file of the CA certificates that may sign the broker's certificate; `nil`: the system
    /// trust store (OpenSSL's default paths, e.g. /etc/ssl/certs).
    public var caCertificateFile: String?
    /// PEM file of the client certificate (chain), for brokers that require one (mutual TLS).
    public var certificateFile: String?
    /// PEM file of the client certificate's private key (not password-protected).
    public var keyFile: String?
    /// Whether the broker's certificate is verified: chain, validity, and name (default `true`;
    /// `verify=verify_none` turns it off, which only encrypts).
    public var verifyPeer: Bool
    /// The name sent as SNI and checked against the certificate instead of the endpoint's host
    /// (`server_name_indication=...`); `nil`: the host.
    public var serverName: String?
    /// Whether SNI is sent at all (`server_name_indication=disable` turns it off).
    public var sendsServerName: Bool

    public init(caCertificateFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil,
                verifyPeer: Bool = true, serverName: String? = nil, sendsServerName: Bool = true) {
        self.caCertificateFile = caCertificateFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.verifyPeer = verifyPeer
        self.serverName = serverName
        self.sendsServerName = sendsServerName
    }
}

/// How to reach and talk to a RabbitMQ broker.
///
/// Build one from a URL with ``init(url:)`` or field by field. `description` redacts the password,
/// so a configuration can be logged as it is.
public struct AMQPConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// The brokers to connect to (never empty). A connection tries them in a shuffled order and
    /// uses the first that accepts it; they share the credentials, vhost and TLS settings.
    public var endpoints: [AMQPEndpoint] {
        didSet { precondition(!endpoints.isEmpty, "AMQPConfiguration: endpoints must not be empty") }
    }
    /// The first broker's host name or address.
    public var host: String {
        get { endpoints[0].host }
        set { endpoints[0].host = newValue }
    }
    /// The first broker's port.
    public var port: Int {
        get { endpoints[0].port }
        set { endpoints[0].port = newValue }
    }
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
    /// TLS settings; `nil`: plain TCP (`amqp://`).
    public var tls: AMQPTLSConfiguration?
    /// Whether a connection tries ``endpoints`` in a shuffled order (the default) or in the order
    /// given (a caller that rotates through them itself, as `SubscriptionService` does).
    public var shufflesEndpoints: Bool = true

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
        self.endpoints = [AMQPEndpoint(host: host, port: port)]
        self.username = username
        self.password = password
        self.virtualHost = virtualHost
        self.heartbeat = heartbeat
        self.connectTimeout = connectTimeout
        self.rpcTimeout = rpcTimeout
        self.connectionName = connectionName
        self.tls = nil
    }

    /// Parses `amqp://user:pass@host:port/vhost?heartbeat=10&connection_timeout=5000`, or
    /// `amqps://...?cacertfile=...&certfile=...&keyfile=...` for TLS, or several such URLs
    /// separated by commas (several brokers).
    ///
    /// Follows the RabbitMQ URI spec: user, password and vhost are percent-decoded; the vhost is one
    /// path segment (`%2F` for `/`); a missing part takes its default (port 5672, 5671 for amqps).
    /// In a list, every URL must have the same scheme, credentials, vhost and query: only host and
    /// port differ. A certificate or key file that cannot be read is an error naming the
    /// parameter. Errors name the part that is wrong and never echo the password.
    public init(url: String, connectionName: String? = nil) throws(AMQPError) {
        self = try AMQPURLParser.parseList(url)
        self.connectionName = connectionName
    }

    /// The URL with the password replaced by `***`: safe for logs. With several brokers, one URL
    /// per broker, separated by commas.
    public var redactedURL: String {
        let userInfo = password.isEmpty ? username : "\(username):***"
        let vhost = virtualHost == "/" ? "%2F" : PercentEncoding.encode(virtualHost)
        let scheme = tls == nil ? "amqp" : "amqps"
        return endpoints.map { "\(scheme)://\(userInfo)@\($0)/\(vhost)" }.joined(separator: ",")
    }

    public var description: String { redactedURL }
}
