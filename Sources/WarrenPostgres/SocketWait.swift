#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Waits until `socket` is ready for `events` (`POLLIN`, `POLLOUT`) or `deadline` passes.
///
/// - Returns: `false` if the deadline passed first. Errors and hang-ups count as ready, so that
///   libpq, on its next call, finds and reports them.
func waitForSocket(_ socket: Int32, events: Int16, until deadline: ContinuousClock.Instant) -> Bool {
    while true {
        let remaining = deadline - ContinuousClock.now
        guard remaining > .zero else { return false }
        var descriptor = pollfd(fd: socket, events: events, revents: 0)
        let result = poll(&descriptor, 1, remaining.pollMilliseconds)
        if result > 0 { return true }
        if result < 0 && errno != EINTR { return true }
    }
}

extension Duration {
    /// Milliseconds for `poll(2)`, rounded up so a wait never ends before its deadline.
    var pollMilliseconds: Int32 {
        let (seconds, attoseconds) = components
        let millis = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: max(0, millis))
    }
}
