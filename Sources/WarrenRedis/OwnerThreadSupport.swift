#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Blocks SIGPIPE for the calling thread. hiredis writes with plain `write(2)`, and a write to a
/// socket the server has reset would otherwise raise SIGPIPE and kill the process; with the signal
/// blocked on the owner thread the write fails with EPIPE instead (the pending signal is never
/// delivered). Idempotent and cheap.
func blockSIGPIPEOnCurrentThread() {
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGPIPE)
    pthread_sigmask(SIG_BLOCK, &set, nil)
}

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

extension Duration {
    /// This duration as a `timeval` (microsecond precision).
    var timevalValue: timeval {
        let (seconds, attoseconds) = components
        return timeval(tv_sec: .init(seconds), tv_usec: .init(attoseconds / 1_000_000_000_000))
    }

    /// This duration in seconds, for messages ("0.5 s").
    var secondsText: String {
        let millis = components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
        if millis % 1000 == 0 { return "\(millis / 1000) s" }
        return "\(Double(millis) / 1000) s"
    }
}
