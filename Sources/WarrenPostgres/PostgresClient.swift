import WarrenOwnedConnection

/// A small PostgreSQL client over libpq: one long-lived connection, owned by one OS thread.
///
/// Every libpq call runs on the client's own thread (a one-thread `NIOThreadPool`), never on
/// Swift's cooperative pool; calls from concurrent callers queue there and run one at a time. The
/// connection is opened lazily, reused while healthy, and after a connection-level failure or a
/// timeout it is dropped and the next call reconnects. libpq's non-blocking API keeps every wait
/// bounded: `connectTimeout` for connecting and logging in, `queryTimeout` for each statement
/// (which is then cancelled).
///
/// Values travel as parameters (`$1`, `$2`...) in text format, never spliced into the SQL.
/// Errors are ``PostgresError`` (or `CancellationError` when the calling task is cancelled before
/// the call ran). Call ``shutdown()`` when done.
///
/// ```swift
/// let db = PostgresClient(configuration: try PostgresConfiguration(url: "postgresql://postgres@127.0.0.1:5432/postgres"))
/// try await db.selectOne()
/// let inserted = try await db.execute(
///     "INSERT INTO events (id, type, payload) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
///     [id, type, payload]).affectedRows
/// await db.shutdown()
/// ```
public final class PostgresClient: Sendable {
    /// The configuration this client connects with.
    public let configuration: PostgresConfiguration
    private let connection: OwnedConnection<PostgresConnection>

    /// Creates a client and starts its owner thread; nothing connects until the first call.
    public init(configuration: PostgresConfiguration) {
        self.configuration = configuration
        self.connection = OwnedConnection(driver: PostgresConnection(configuration: configuration))
    }

    /// Runs `SELECT 1` and checks that it returns 1: the readiness check.
    public func selectOne() async throws {
        let result = try await execute("SELECT 1")
        guard result.rows == [["1"]] else {
            throw PostgresError(.unexpectedResult, "SELECT 1 returned \(result.rows.count) rows, not the single value 1")
        }
    }

    /// Runs one SQL statement with `$1`, `$2`... bound to `parameters` (text format; `nil` is NULL).
    ///
    /// One statement per call (the extended protocol refuses `SELECT 1; SELECT 2`); `COPY` is not
    /// supported. Server notices (`NOTICE`, `WARNING`) are discarded. A statement the server rejects throws ``PostgresError/Code/queryFailed`` with its SQLSTATE
    /// and keeps the connection.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [String?] = []) async throws -> PostgresResult {
        try await connection.run("this call") { session throws(PostgresError) in
            try session.driver.execute(sql, parameters, in: session)
        }
    }

    /// Closes the connection and stops the owner thread. Calls still queued fail with
    /// ``PostgresError/Code/clientShutDown``, as does every later call. Idempotent.
    public func shutdown() async {
        await connection.shutdown()
    }

    /// How many times this client has connected so far (for tests: a healthy connection is reused).
    func connectCount() async throws -> Int {
        try await connection.connectCount()
    }
}
