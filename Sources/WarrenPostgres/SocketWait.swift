import Glibc
import WarrenSystem

/// Waits until `socket` is ready for `events` (`POLLIN`, `POLLOUT`) or `deadline` passes.
///
/// - Returns: `false` if the deadline passed first. Errors and hang-ups count as ready, so that
///   libpq, on its next call, finds and reports them.
func waitForSocket(_ socket: Int32, events: Int16, until deadline: MonotonicClock.Instant) -> Bool {
    while true {
        let remaining = deadline - MonotonicClock.now
        guard remaining > .zero else { return false }
        var descriptor = pollfd(fd: socket, events: events, revents: 0)
        let result = poll(&descriptor, 1, remaining.pollMilliseconds)
        if result > 0 { return true }
        if result < 0 && errno != EINTR { return true }
    }
}
