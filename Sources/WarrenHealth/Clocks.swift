import Glibc

/// Wall-clock time, for the `time` fields of health reports.
public enum WallClock {
    /// Seconds and nanoseconds since the Unix epoch.
    public struct Instant: Sendable, Equatable {
        public var seconds: Int
        public var nanoseconds: Int
    }

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
