import WarrenSystem

/// How to reach a Redis server, and how long to wait for it.
///
/// Build one from a URL with ``init(url:)`` or field by field. `description` redacts the password,
/// so a configuration can be logged as it is.
public struct RedisConfiguration: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// Host name or address (IPv6 without brackets).
    public var host: String
    /// TCP port.
    public var port: Int
    /// ACL user name for `AUTH user password` (Redis 6+); `nil` authenticates as the default user.
    public var username: String?
    /// Password for `AUTH`; `nil` sends no `AUTH`. Never printed.
    public var password: String?
    /// Database index chosen with `SELECT` after connecting (0 sends none).
    public var database: Int
    /// Time allowed for the TCP connect, and then again for the TLS handshake (`rediss://`), as AMQP
    /// and libpq bound theirs. Host name lookup happens before and is not covered: use an address or
    /// a fast resolver.
    public var connectTimeout: Duration
    /// Time allowed for one command's round trip (also `AUTH` and `SELECT`). A
    /// server that does not answer in time (hung, frozen) fails the command with
    /// ``RedisError/Code/timeout``.
    public var commandTimeout: Duration
    /// TLS settings; `nil`: plain TCP (`redis://`).
    public var tls: RedisTLSConfiguration?

    /// Creates a configuration; every parameter has a default that suits a local server.
    public init(
        host: String = "127.0.0.1",
        port: Int = 6379,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        connectTimeout: Duration = .seconds(1),
        commandTimeout: Duration = .seconds(1),
        tls: RedisTLSConfiguration? = nil
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.tls = tls
    }

    /// Parses `redis://[[user]:password@]host[:port][/db]`, or `rediss://...` for TLS with
    /// redis-py's query parameters: `ssl_ca_certs` (CA PEM file; default: the system trust store),
    /// `ssl_certfile` and `ssl_keyfile` (client certificate and key, both or neither) and
    /// `ssl_cert_reqs` (`required`, the default, or `none`).
    ///
    /// User and password are percent-decoded; a missing part takes its default. The files must be
    /// readable now. Errors (``RedisError/Code/invalidURL``) name the part that is wrong and never
    /// echo the password.
    public init(url: String) throws(RedisError) {
        self = try RedisURLParser.parse(url)
    }

    /// The URL with the password replaced by `***`: safe for logs. With TLS, `rediss://` and its
    /// query parameters (file paths included).
    public var redactedURL: String {
        var userInfo = ""
        if password != nil {
            userInfo = "\(PercentEncoding.encode(username ?? "")):***@"
        }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        guard let tls else { return "redis://\(userInfo)\(hostPart):\(port)/\(database)" }
        let query = tls.queryItems.map { "\($0.key)=\(Self.encodePath($0.value))" }.joined(separator: "&")
        return "rediss://\(userInfo)\(hostPart):\(port)/\(database)\(query.isEmpty ? "" : "?")\(query)"
    }

    /// A file path for a URL query: percent-encoded, but with its slashes kept readable.
    private static func encodePath(_ path: String) -> String {
        PercentEncoding.encode(path).replacing("%2F", with: "/")
    }

    /// The ``redactedURL``: safe for logs.
    public var description: String { redactedURL }
    /// `RedisConfiguration(<redacted URL>)`: safe for logs.
    public var debugDescription: String { "RedisConfiguration(\(redactedURL))" }
    /// Reflection (`dump`, `print` of containers) shows the redacted URL, not the password.
    public var customMirror: Mirror { Mirror(self, children: ["url": redactedURL]) }

    /// `host:port`, for messages.
    var endpoint: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// TLS settings of a `rediss://` connection (OpenSSL, over the client's own socket I/O).
public struct RedisTLSConfiguration: Sendable, Equatable {
    /// PEM file of the CA certificates that may sign the server's certificate (`ssl_ca_certs`);
    /// `nil`: the system trust store (OpenSSL's default paths).
    public var caCertificateFile: String?
    /// PEM file of the client certificate (chain), for servers that require one (`ssl_certfile`,
    /// Redis's `tls-auth-clients yes`).
    public var certificateFile: String?
    /// PEM file of the client certificate's private key (`ssl_keyfile`).
    public var keyFile: String?
    /// Whether the server's certificate must be trusted and valid for the host (`ssl_cert_reqs=required`,
    /// the default); `false` (`none`) accepts any certificate: encryption without authentication.
    public var verifyPeer: Bool

    /// Creates TLS settings; the defaults verify the server against the system trust store and send
    /// no client certificate.
    public init(caCertificateFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil,
                verifyPeer: Bool = true) {
        self.caCertificateFile = caCertificateFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.verifyPeer = verifyPeer
    }

    /// The settings as redis-py's query parameters, in URL order.
    var queryItems: [(key: String, value: String)] {
        var items: [(key: String, value: String)] = []
        if let caCertificateFile { items.append(("ssl_ca_certs", caCertificateFile)) }
        if let certificateFile { items.append(("ssl_certfile", certificateFile)) }
        if let keyFile { items.append(("ssl_keyfile", keyFile)) }
        if !verifyPeer { items.append(("ssl_cert_reqs", "none")) }
        return items
    }
}
