import NIOPosix
import WarrenSystem

/// One connection of a blocking C client, owned by one OS thread and used from async code.
///
/// Every call runs on the connection's own thread (a one-thread `NIOThreadPool`), never on Swift's
/// cooperative pool; calls from concurrent callers queue there and run one at a time. The
/// connection is opened lazily by the first call that asks for it (``Session/connection()``),
/// reused while healthy, and closed after a failure that ``ConnectionDriver/dropsConnection(_:)``,
/// so that the next call reconnects. After a timeout, the calls queued before it fail with it at
/// once: when the server hangs, a queue of callers waits about one timeout, not one each.
///
/// Released without ``shutdown()``, it stops its thread and the connection is closed with it.
public final class OwnedConnection<Driver: ConnectionDriver>: Sendable {
    private let pool: NIOThreadPool
    private let session: Session

    /// Starts the owner thread; nothing connects until a call asks for the connection.
    public init(driver: Driver) {
        session = Session(driver: driver)
        pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
    }

    deinit {
        if !session.isShutDown.exchange(true, ordering: .acquiringAndReleasing) {
            pool.shutdownGracefully { _ in }
        }
    }

    /// Runs `body` on the owner thread and returns its result.
    ///
    /// - Parameter call: what to call this call in the failure of a call queued behind a timeout
    ///   (`GET`, "this call").
    /// - Throws: the driver's failure, ``ConnectionDriver/shutDownFailure`` once shut down, or
    ///   `CancellationError` when the calling task is cancelled before `body` ran.
    public func run<T: Sendable>(
        _ call: String,
        _ body: @escaping @Sendable (Session) throws(Driver.Failure) -> T
    ) async throws -> T {
        let submittedAt = MonotonicClock.now
        return try await onOwnerThread { session in try session.run(call, submittedAt: submittedAt, body) }
    }

    /// Closes the connection and stops the owner thread. Calls still queued fail with
    /// ``ConnectionDriver/shutDownFailure``, as does every later call. Idempotent.
    public func shutdown() async {
        guard !session.isShutDown.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let session = self.session
        _ = try? await pool.runIfActive { session.close() }
        try? await pool.shutdownGracefully()
    }

    /// How many times this connection has been opened so far (for tests: a healthy connection is
    /// reused).
    public func connectCount() async throws -> Int {
        try await onOwnerThread { $0.connectCount }
    }

    private func onOwnerThread<T: Sendable>(_ job: @escaping @Sendable (Session) throws -> T) async throws -> T {
        let session = self.session
        if session.isShutDown.load(ordering: .acquiring) { throw session.driver.shutDownFailure }
        do {
            return try await pool.runIfActive { try job(session) }
        } catch is CancellationError where session.isShutDown.load(ordering: .acquiring) {
            throw session.driver.shutDownFailure
        }
    }
}
