import WarrenOwnedConnection

/// A small Redis client: one long-lived connection, plain TCP (`redis://`) or TLS (`rediss://`),
/// owned by one OS thread. hiredis encodes the commands and parses the replies; the socket I/O
/// (and OpenSSL's, for TLS) is the client's own.
///
/// Every blocking call runs on the client's own thread (a one-thread `NIOThreadPool`), never on
/// Swift's cooperative pool; commands from concurrent callers queue there and run one at a time.
/// The connection is opened lazily on the first command, reused while healthy, and after any I/O
/// error or timeout it is dropped and the next command reconnects. Every wait is bounded:
/// `connectTimeout` for the connect, `commandTimeout` for each command's round trip.
///
/// Errors are ``RedisError`` (or `CancellationError` when the calling task is cancelled before the
/// command ran). Call ``shutdown()`` when done.
///
/// ```swift
/// let redis = RedisClient(configuration: try RedisConfiguration(url: "redis://127.0.0.1:6379/0"))
/// try await redis.ping()
/// let fresh = try await redis.setIfAbsent("seen:\(id)", "1", expirySeconds: 86_400)
/// await redis.shutdown()
/// ```
public final class RedisClient: Sendable {
    /// The configuration this client connects with.
    public let configuration: RedisConfiguration
    private let connection: OwnedConnection<RedisConnection>

    /// Creates a client and starts its owner thread; nothing connects until the first command.
    public init(configuration: RedisConfiguration) {
        self.configuration = configuration
        self.connection = OwnedConnection(driver: RedisConnection(configuration: configuration))
    }

    /// Sends `PING` and expects `PONG`: the readiness check.
    public func ping() async throws {
        let reply = try await command(["PING"])
        guard reply == .status("PONG") else { throw unexpected("PING", reply) }
    }

    /// The value of `key`, or `nil` when the key does not exist.
    public func get(_ key: String) async throws -> String? {
        switch try await command(["GET", key]) {
        case .null: return nil
        case .bulkString(let bytes): return String(decoding: bytes, as: UTF8.self)
        case let reply: throw unexpected("GET", reply)
        }
    }

    /// Sets `key` to `value`, with an expiry in seconds when `expirySeconds` is given.
    public func set(_ key: String, _ value: String, expirySeconds: Int? = nil) async throws {
        var arguments = ["SET", key, value]
        if let expirySeconds { arguments += ["EX", String(expirySeconds)] }
        let reply = try await command(arguments)
        guard reply == .status("OK") else { throw unexpected("SET", reply) }
    }

    /// Sets `key` only if it does not exist yet (`SET key value NX [EX seconds]`).
    ///
    /// - Returns: `true` if this call set the key, `false` if it already existed.
    public func setIfAbsent(_ key: String, _ value: String, expirySeconds: Int? = nil) async throws -> Bool {
        var arguments = ["SET", key, value, "NX"]
        if let expirySeconds { arguments += ["EX", String(expirySeconds)] }
        switch try await command(arguments) {
        case .status("OK"): return true
        case .null: return false
        case let reply: throw unexpected("SET NX", reply)
        }
    }

    /// Deletes `key`.
    ///
    /// - Returns: whether the key existed.
    @discardableResult
    public func delete(_ key: String) async throws -> Bool {
        switch try await command(["DEL", key]) {
        case .integer(let count): return count > 0
        case let reply: throw unexpected("DEL", reply)
        }
    }

    /// Sends any command (arguments are sent binary-safe, each as one bulk string) and returns the
    /// reply. An error reply throws ``RedisError/Code/commandFailed`` and keeps the connection.
    public func command(_ arguments: [String]) async throws -> RedisValue {
        try await command(arguments.map { Array($0.utf8) }, name: arguments.first?.uppercased() ?? "command")
    }

    /// Sends any command given as raw byte strings; see ``command(_:)``.
    public func command(_ arguments: [[UInt8]], name: String) async throws -> RedisValue {
        guard !arguments.isEmpty else { throw RedisError(.commandFailed, "an empty command cannot be sent") }
        return try await connection.run(name) { session throws(RedisError) in
            try session.driver.run(arguments, name: name, in: session)
        }
    }

    /// Frees the connection and stops the owner thread. Commands still queued fail with
    /// ``RedisError/Code/clientShutDown``, as does every later call. Idempotent.
    public func shutdown() async {
        await connection.shutdown()
    }

    /// How many times this client has connected so far (for tests: a healthy connection is reused).
    func connectCount() async throws -> Int {
        try await connection.connectCount()
    }

    private func unexpected(_ name: String, _ reply: RedisValue) -> RedisError {
        RedisError(.unexpectedReply, "Redis answered \(name) with an unexpected reply (\(Self.kind(of: reply)))")
    }

    private static func kind(of reply: RedisValue) -> String {
        switch reply {
        case .status(let text): "status \(text.prefix(32))"
        case .bulkString(let bytes): "a bulk string of \(bytes.count) bytes"
        case .integer(let value): "integer \(value)"
        case .null: "nil"
        case .array(let values): "an array of \(values.count)"
        case .error(let message): "error \(message.prefix(64))"
        }
    }
}
