#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension Duration {
    /// This duration as a `timeval` (microsecond precision, truncated), for C timeouts.
    public var timevalValue: timeval {
        let (seconds, attoseconds) = components
        return timeval(tv_sec: .init(seconds), tv_usec: .init(attoseconds / 1_000_000_000_000))
    }

    /// This duration in seconds, as a `Double`.
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// This duration in milliseconds, as a `Double`.
    public var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }

    /// This duration in seconds, for messages ("2 s", "0.5 s"; millisecond precision).
    public var secondsText: String {
        let millis = components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
        if millis % 1000 == 0 { return "\(millis / 1000) s" }
        return "\(Double(millis) / 1000) s"
    }
}
