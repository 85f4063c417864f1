import CLibPQ
import Synchronization
import WarrenSystem

/// Asks the server to cancel the query running on a connection, without waiting for it.
///
/// `PQcancel` blocks: it opens a new connection to the postmaster, sends the cancel key and waits
/// for the server to close that socket, with no timeout in libpq 15; on a frozen server that wait
/// lasts until it resumes. So it runs on a short-lived detached thread that owns only the
/// `PGcancel` object (which libpq documents as independent of the `PGconn`, and safe to use from
/// another thread), while the owner thread reports the timeout and drops the connection at once.
/// At most ``limit`` such threads exist at a time; past that, cancels are skipped (the connection
/// is closed anyway, and the server ends the query when it notices).
enum PostgresCancel {
    /// The most cancel requests in flight at once, process-wide.
    static let limit = 4
    private static let inFlight = Atomic<Int>(0)

    /// Fires a cancel request for the query running on `connection`. Call on the owner thread,
    /// before closing the connection.
    static func request(for connection: OpaquePointer) {
        guard inFlight.wrappingAdd(1, ordering: .relaxed).newValue <= limit,
              let cancel = PQgetCancel(connection)
        else {
            inFlight.wrappingSubtract(1, ordering: .relaxed)
            return
        }
        let handle = Handle(pointer: cancel)
        let rc = startDetachedThread {
            var buffer = [CChar](repeating: 0, count: 256)
            _ = PQcancel(handle.pointer, &buffer, Int32(buffer.count))
            PQfreeCancel(handle.pointer)
            inFlight.wrappingSubtract(1, ordering: .relaxed)
        }
        if rc != 0 {
            PQfreeCancel(cancel)
            inFlight.wrappingSubtract(1, ordering: .relaxed)
        }
    }

    /// A `PGcancel` handed to the cancel thread, which alone uses it from then on.
    private struct Handle: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    /// Cancel requests currently in flight (for tests).
    static var inFlightCount: Int { inFlight.load(ordering: .relaxed) }
}
