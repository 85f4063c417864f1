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
        // 24 ASCII bytes written in place (a liveness report under load has three per millisecond).
        return String(unsafeUninitializedCapacity: 24) { bytes in
            var at = 0
            func put(_ value: Int, digits: Int) {
                var value = value
                for index in stride(from: at + digits - 1, through: at, by: -1) {
                    bytes[index] = UInt8(ascii: "0") + UInt8(value % 10)
                    value /= 10
                }
                at += digits
            }
            func put(_ separator: Unicode.Scalar) {
                bytes[at] = UInt8(ascii: separator)
                at += 1
            }
            put(Int(parts.tm_year) + 1900, digits: 4); put("-"); put(Int(parts.tm_mon) + 1, digits: 2); put("-")
            put(Int(parts.tm_mday), digits: 2); put("T"); put(Int(parts.tm_hour), digits: 2); put(":")
            put(Int(parts.tm_min), digits: 2); put(":"); put(Int(parts.tm_sec), digits: 2); put(".")
            put(nanoseconds / 1_000_000, digits: 3); put("Z")
            return at
        }
    }
}
