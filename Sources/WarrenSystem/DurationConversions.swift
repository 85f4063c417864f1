import Glibc

/// Every conversion of `Duration` the package needs, in one place: C timeouts, numbers for metrics
/// and reports, text for messages.
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

    /// The duration in whole nanoseconds (saturating at the bounds of `Int64`).
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? (seconds < 0 ? .min : .max) : product &+ attoseconds / 1_000_000_000
    }

    /// Milliseconds for `poll(2)`, rounded up so a wait never ends before its deadline; 0 for a
    /// negative duration, `Int32.max` at most.
    public var pollMilliseconds: Int32 {
        let (seconds, attoseconds) = components
        let millis = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: max(0, millis))
    }
}
