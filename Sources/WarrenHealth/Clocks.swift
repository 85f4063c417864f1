import Glibc

/// Wall-clock time, for the `time` fields of health reports.
public enum WallClock {
    /// Seconds and nanoseconds since the Unix epoch.
    public struct Instant: Sendable, Equatable {
        /// Whole seconds since 1970-01-01T00:00:00Z.
        public var seconds: Int
        /// Nanoseconds past ``seconds``, in `0..<1_000_000_000`.
        public var nanoseconds: Int
    }

    /// The current wall-clock time (`CLOCK_REALTIME`). Thread-safe; it jumps when the system clock
    /// is set, so measure durations with `MonotonicClock` instead.
    public static func now() -> Instant {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Instant(seconds: ts.tv_sec, nanoseconds: ts.tv_nsec)
    }
}

extension WallClock.Instant {
    /// RFC 3339 / ISO 8601 in UTC with milliseconds: `2026-11-21T06:40:00.123Z`.
    public var iso8601: String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let s = String(value)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(nanoseconds / 1_000_000), 3))Z"
    }
}
