import Glibc

/// The package's one clock: `CLOCK_MONOTONIC`. Cheap, thread-safe, comparable across threads, and
/// not moved by changes of the wall clock.
///
/// Two forms of the same time: ``nanoseconds()`` for timestamps kept in atomics or compared on C
/// owner threads (liveness ticks, heartbeat deadlines), and ``now`` as an ``Instant`` for deadlines
/// and elapsed times in Swift (`deadline - MonotonicClock.now` is a `Duration`). It conforms to
/// `Clock`, so `Task.sleep(until:clock:)` takes it too.
///
/// (Not `ContinuousClock`: on Linux that is `CLOCK_BOOTTIME`, another clock, whose readings do not
/// compare with the ticks above.)
public struct MonotonicClock: Clock, Sendable {
    /// A point in monotonic time, in nanoseconds.
    public struct Instant: InstantProtocol, Sendable {
        /// Nanoseconds of `CLOCK_MONOTONIC`.
        public var nanoseconds: UInt64

        /// The instant at `nanoseconds` of `CLOCK_MONOTONIC`.
        public init(nanoseconds: UInt64) {
            self.nanoseconds = nanoseconds
        }

        /// The instant `duration` later (earlier when negative); wraps instead of trapping at the
        /// bounds of `UInt64`.
        public func advanced(by duration: Duration) -> Instant {
            let delta = duration.nanoseconds
            return Instant(nanoseconds: delta >= 0 ? nanoseconds &+ UInt64(delta) : nanoseconds &- UInt64(-delta))
        }

        /// The time from this instant to `other`: negative when `other` is earlier, saturating at
        /// the bounds of `Int64` nanoseconds.
        public func duration(to other: Instant) -> Duration {
            other.nanoseconds >= nanoseconds
                ? .nanoseconds(Int64(clamping: other.nanoseconds - nanoseconds))
                : .nanoseconds(-Int64(clamping: nanoseconds - other.nanoseconds))
        }

        /// Whether `lhs` is earlier than `rhs`.
        public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

        /// The instant `rhs` after `lhs`.
        public static func + (lhs: Instant, rhs: Duration) -> Instant { lhs.advanced(by: rhs) }

        /// The instant `rhs` before `lhs`.
        public static func - (lhs: Instant, rhs: Duration) -> Instant { lhs.advanced(by: .zero - rhs) }

        /// The time from `rhs` to `lhs` (negative when `lhs` is earlier).
        public static func - (lhs: Instant, rhs: Instant) -> Duration { rhs.duration(to: lhs) }
    }

    /// Creates the clock. It has no state: every instance reads the same `CLOCK_MONOTONIC`.
    public init() {}

    /// The current monotonic time in nanoseconds.
    @inlinable @inline(__always)
    public static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// The current instant.
    public static var now: Instant { Instant(nanoseconds: nanoseconds()) }

    /// The current instant, as `MonotonicClock.now`.
    public var now: Instant { Self.now }

    /// One nanosecond, the unit of ``Instant``.
    public var minimumResolution: Duration { .nanoseconds(1) }

    /// Suspends until `deadline` (returns at once when it has passed).
    /// - Throws: `CancellationError` when the task is cancelled while sleeping.
    public func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        let remaining = Self.now.duration(to: deadline)
        if remaining > .zero { try await Task.sleep(for: remaining, tolerance: tolerance) }
    }
}
