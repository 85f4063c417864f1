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
    /// Time allowed for the TCP connect.
    public var connectTimeout: Duration
    /// Time allowed for one command's round trip (also `AUTH` and `SELECT`). A server that does not
    /// answer in time (hung, frozen) fails the command with ``RedisError/Code/timeout``.
    public var commandTimeout: Duration

    /// Creates a configuration; every parameter has a default that suits a local server.
    public init(
        host: String = "127.0.0.1",
        port: Int = 6379,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        connectTimeout: Duration = .seconds(1),
        commandTimeout: Duration = .seconds(1)
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
    }

    /// Parses `redis://[[user]:password@]host[:port][/db]`.
    ///
    /// User and password are percent-decoded; a missing part takes its default. Errors
    /// (``RedisError/Code/invalidURL``) name the part that is wrong and never echo the password.
    public init(url: String) throws(RedisError) {
        self = try RedisURLParser.parse(url)
    }

    /// The URL with the password replaced by `***`: safe for logs.
    public var redactedURL: String {
        var userInfo = ""
        if password != nil {
            userInfo = "\(PercentEncoding.encode(username ?? "")):***@"
        }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return "redis://\(userInfo)\(hostPart):\(port)/\(database)"
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
