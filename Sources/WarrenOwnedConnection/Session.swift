import Synchronization
import WarrenSystem

extension OwnedConnection {
    /// The connection as the owner thread sees it: what a call's body uses.
    ///
    /// Thread-confined: everything but `isShutDown` is used only by jobs on the owner thread, one
    /// at a time, which is what makes the `@unchecked Sendable` sound.
    public final class Session: @unchecked Sendable {
        /// The library's side of the connection.
        public let driver: Driver
        /// Set by ``OwnedConnection/shutdown()`` or the release of the connection; read from any thread.
        let isShutDown = Atomic<Bool>(false)
        private var handle: Driver.Handle?
        /// The last timeout: calls queued before it fail at once instead of waiting out another one.
        private var lastTimeout: (at: MonotonicClock.Instant, failure: Driver.Failure)?
        private var confinement = ThreadConfinement()
        /// Successful connects so far.
        private(set) var connectCount = 0

        init(driver: Driver) {
            self.driver = driver
        }

        deinit {
            // Only reached once no job can run any more (the last reference is gone).
            if let handle { driver.disconnect(handle) }
        }

        /// The open connection, connecting first if there is none.
        public func connection() throws(Driver.Failure) -> Driver.Handle {
            if let handle { return handle }
            let handle = try driver.connect()
            self.handle = handle
            connectCount += 1
            return handle
        }

        /// Closes the connection, if any. The next call reconnects.
        public func close() {
            confinement.check()
            if let handle {
                driver.disconnect(handle)
                self.handle = nil
            }
        }

        /// Runs one call's `body`: fails it at once after shutdown or when it was queued before the
        /// last timeout; closes the connection after a failure that drops it.
        func run<T>(
            _ call: String,
            submittedAt: MonotonicClock.Instant,
            _ body: (Session) throws(Driver.Failure) -> T
        ) throws(Driver.Failure) -> T {
            confinement.check()
            if isShutDown.load(ordering: .acquiring) { throw driver.shutDownFailure }
            if let lastTimeout, submittedAt < lastTimeout.at {
                throw driver.failure(call, queuedBehind: lastTimeout.failure)
            }
            do throws(Driver.Failure) {
                return try body(self)
            } catch {
                if driver.dropsConnection(error) { close() }
                if driver.isTimeout(error) { lastTimeout = (MonotonicClock.now, error) }
                throw error
            }
        }
    }
}
