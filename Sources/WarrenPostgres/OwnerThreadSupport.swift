#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Debug-build check that a thread-confined object is only used from one thread.
struct ThreadConfinement {
    private var owner: pthread_t?

    mutating func check() {
        #if DEBUG
        let current = pthread_self()
        if let owner {
            precondition(pthread_equal(owner, current) != 0, "used off its owner thread")
        } else {
            owner = current
        }
        #endif
    }
}

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

/// Starts a detached OS thread for `body` (used for the blocking `PQcancel`).
func startDetachedThread(_ body: @escaping @Sendable () -> Void) -> Bool {
    final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    #if canImport(Darwin)
    var thread: pthread_t?
    #else
    var thread = pthread_t()
    #endif
    let rc = pthread_create(&thread, &attributes, { raw in
        Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, context)
    if rc != 0 {
        Unmanaged<Box>.fromOpaque(context).release()
        return false
    }
    return true
}

extension Duration {
    /// Milliseconds for `poll(2)`, rounded up so a wait never ends before its deadline.
    var pollMilliseconds: Int32 {
        let (seconds, attoseconds) = components
        let millis = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: max(0, millis))
    }

    /// This duration in seconds, for messages ("0.5 s").
    var secondsText: String {
        let millis = components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
        if millis % 1000 == 0 { return "\(millis / 1000) s" }
        return "\(Double(millis) / 1000) s"
    }
}
