#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import WarrenSystem

/// Starts a detached OS thread: C calls that block belong here, never on Swift's cooperative pool.
func startOwnerThread(_ body: @escaping @Sendable () -> Void) {
    let rc = startDetachedThread(body)
    precondition(rc == 0, "pthread_create failed: \(rc)")
}

/// Monotonic clock in nanoseconds (CLOCK_MONOTONIC): comparable across threads.
@inline(__always)
public func monotonicNanoseconds() -> UInt64 {
    MonotonicClock.nanoseconds()
}

extension Duration {
    /// This duration as a `timeval`, for librabbitmq's timeouts.
    var timeval: timeval { timevalValue }
}
