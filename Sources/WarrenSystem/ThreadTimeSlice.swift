import CWarrenSystem

/// The calling thread's time slice under Linux's EEVDF scheduler (6.12 and later): the latency hint
/// an unprivileged thread may give the kernel.
///
/// A thread whose slice is shorter than the running thread's may preempt it when it wakes
/// (the scheduler's PREEMPT_SHORT), instead of waiting until the running one has used up its own
/// slice (the kernel's default, 0.7 ms scaled up with the number of CPUs: 1.4 ms on two) or the
/// next tick (4 ms at 250 Hz). That is what a thread that sleeps most of the time and must answer
/// quickly when woken wants, e.g. the side port's event loop: a probe arriving while the consume
/// path and the broker keep every core busy. It does not raise the thread's share of the CPU (its
/// nice value and policy stay), needs no capability, and on older kernels the request succeeds and
/// changes nothing.
public enum ThreadTimeSlice {
    /// Asks for a time slice of `duration` for the calling thread (the kernel clamps it to
    /// 0.1–100 ms).
    /// - Returns: 0, or the `errno` of `sched_setattr` (e.g. `EPERM` under a seccomp profile that
    ///   forbids it, `ENOSYS` without the call).
    @discardableResult
    public static func request(_ duration: Duration) -> Int32 {
        // `nanoseconds` saturates, and the kernel clamps whatever it gets; a negative duration is 0,
        // which asks for the kernel's default.
        warren_set_thread_slice(UInt64(clamping: duration.nanoseconds))
    }

    /// The calling thread's time slice: the one in effect since Linux 6.12 (the kernel's default
    /// unless one was requested); `nil` before 6.12 or when it cannot be read.
    public static var current: Duration? {
        let nanoseconds = warren_thread_slice()
        return nanoseconds > 0 ? .nanoseconds(nanoseconds) : nil
    }
}
