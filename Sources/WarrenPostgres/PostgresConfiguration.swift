import WarrenSystem

/// How to reach a PostgreSQL server, and how long to wait for it.
///
/// Build one from a URL with ``init(url:)`` or field by field. `description` redacts the password,
/// so a configuration can be logged as it is.
public struct PostgresConfiguration: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// Host name or address (IPv6 without brackets), or a Unix-socket directory starting with `/`.
    public var host: String
    /// TCP port (also names the Unix socket file).
    public var port: Int
    /// User to log in as.
    public var user: String
    /// Password, if the server asks for one. Never printed.
    public var password: String?
    /// Database name.
    public var database: String
    /// Time allowed to connect and log in. Enforced by this client on every wait (libpq's own
    /// `connect_timeout` has a 2 s minimum and only covers blocking connects). Host name lookup
    /// happens before and is not covered: use an address or a fast resolver.
    public var connectTimeout: Duration
    /// Time allowed for one query's round trip; past it the query is cancelled and the connection
    /// dropped (the next call reconnects).
    public var queryTimeout: Duration
    /// Shown as `application_name` in `pg_stat_activity`.
    public var applicationName: String
    /// libpq `sslmode`: `disable` (the default), `allow`, `prefer`, `require`, `verify-ca`,
    /// `verify-full`.
    public var sslMode: String

    /// libpq `sslrootcert`: the CA certificate file that signed the server's certificate, for
    /// `verify-ca` and `verify-full`. `nil` leaves libpq 15's default (`~/.postgresql/root.crt`);
    /// for a server signed by a public CA name the system bundle
    /// (`/etc/ssl/certs/ca-certificates.crt` on Debian).
    public var sslRootCert: String?
    /// libpq `sslcert`: the client certificate file, for servers that require one.
    public var sslCert: String?
    /// libpq `sslkey`: the client certificate's private key file. libpq refuses a key that others
    /// can read: mode 0600 when the file belongs to the worker's user, at most 0640 when it
    /// belongs to root (Kubernetes mounts Secret files as root; `defaultMode: 0440` fits).
    public var sslKey: String?

    /// The `sslmode` values libpq accepts.
    public static let sslModes: Set<String> = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

    /// Creates a configuration; every parameter has a default that suits a local server.
    public init(
        host: String = "127.0.0.1",
        port: Int = 5432,
        user: String = "postgres",
        password: String? = nil,
        database: String = "postgres",
        connectTimeout: Duration = .seconds(2),
        queryTimeout: Duration = .seconds(1),
        applicationName: String = "warren",
        sslMode: String = "disable",
        sslRootCert: String? = nil,
        sslCert: String? = nil,
        sslKey: String? = nil
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.queryTimeout = queryTimeout
        self.applicationName = applicationName
        self.sslMode = sslMode
        self.sslRootCert = sslRootCert
        self.sslCert = sslCert
        self.sslKey = sslKey
    }

    /// Parses `postgresql://user[:password]@host[:port][/db][?sslmode=...&application_name=...]`
    /// (`postgres://` too; also `connect_timeout=SECONDS`, and for TLS `sslrootcert`, `sslcert`,
    /// `sslkey`: files that must be readable, else ``PostgresError/Code/invalidURL`` names the
    /// parameter).
    ///
    /// Every part is percent-decoded; the database defaults to the user name, as in libpq. Errors
    /// (``PostgresError/Code/invalidURL``) name the part that is wrong and never echo the password.
    public init(url: String) throws(PostgresError) {
        self = try PostgresURLParser.parse(url)
    }

    /// The URL with the password replaced by `***`: safe for logs.
    public var redactedURL: String {
        let encode = PercentEncoding.encode
        let userInfo = password == nil ? encode(user) : "\(encode(user)):***"
        let hostPart = host.contains(":") ? "[\(host)]" : encode(host)
        return "postgresql://\(userInfo)@\(hostPart):\(port)/\(encode(database))"
            + "?sslmode=\(encode(sslMode))&application_name=\(encode(applicationName))"
            + [("sslrootcert", sslRootCert), ("sslcert", sslCert), ("sslkey", sslKey)]
                .compactMap { key, value in value.map { "&\(key)=\(encode($0))" } }.joined()
    }

    /// The ``redactedURL``: safe for logs.
    public var description: String { redactedURL }
    /// `PostgresConfiguration(<redacted URL>)`: safe for logs.
    public var debugDescription: String { "PostgresConfiguration(\(redactedURL))" }
    /// Reflection (`dump`, `print` of containers) shows the redacted URL, not the password.
    public var customMirror: Mirror { Mirror(self, children: ["url": redactedURL]) }

    /// `host:port`, for messages.
    var endpoint: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// libpq connection keywords and values (passed to `PQconnectStartParams` as arrays, so no
    /// quoting or escaping is involved and a value cannot inject another keyword).
    var connectionParameters: [(String, String)] {
        let seconds = connectTimeout.components.seconds + (connectTimeout.components.attoseconds > 0 ? 1 : 0)
        var parameters: [(String, String)] = [
            ("host", host),
            ("port", String(port)),
            ("user", user),
            ("dbname", database),
            ("application_name", applicationName),
            ("sslmode", sslMode),
            ("connect_timeout", String(max(2, seconds))),
            ("client_encoding", "UTF8"),
        ]
        if let password { parameters.append(("password", password)) }
        if let sslRootCert { parameters.append(("sslrootcert", sslRootCert)) }
        if let sslCert { parameters.append(("sslcert", sslCert)) }
        if let sslKey { parameters.append(("sslkey", sslKey)) }
        return parameters
    }
}
