import Synchronization
import WarrenSystem

/// Proves the process is responsive: a ticker on Swift's cooperative pool plus the loop ticks of
/// registered threads (such as the AMQP I/O thread). Liveness fails when any of them stalls past
/// ``stallThreshold``. It never looks at a dependency: a broker outage must not get the pod restarted.
///
/// Reading it (``readings(now:)``) takes a lock and a few loads, so the health server's event loop can
/// answer `/internal/alive` when the cooperative pool is exactly what is stuck.
public final class LivenessWatchdog: Sendable {
    /// One ticking component's state.
    public struct Reading: Sendable, Equatable {
        /// `swift-concurrency` for the cooperative pool, or a registered thread's name.
        public var component: String
        /// How late its last tick is beyond its expected period, in milliseconds.
        public var lagMilliseconds: Double
        /// `fail` when its last tick is older than ``LivenessWatchdog/stallThreshold``, else `pass`.
        public var status: HealthStatus
    }

    /// Longest tolerated silence of a ticker.
    public let stallThreshold: Duration
    /// Period of the cooperative-pool ticker.
    public let tickInterval: Duration
    private let poolTick: Atomic<UInt64>
    private let threads = Mutex<[(name: String, period: Duration, lastTick: @Sendable () -> UInt64?)]>([])

    /// Creates a watchdog; the pool ticker runs once ``run()`` is started. `stallThreshold` must
    /// exceed `tickInterval` (a precondition).
    public init(stallThreshold: Duration = .seconds(5), tickInterval: Duration = .milliseconds(100)) {
        precondition(stallThreshold > tickInterval, "LivenessWatchdog: stallThreshold must exceed tickInterval")
        self.stallThreshold = stallThreshold
        self.tickInterval = tickInterval
        self.poolTick = Atomic(MonotonicClock.nanoseconds())
    }

    /// Watches a thread that publishes its loop time (monotonic ns) at least every `period`.
    /// `lastTick` returns `nil` while the thread does not exist (e.g. between reconnects).
    public func watch(thread name: String, period: Duration = .milliseconds(100), lastTick: @escaping @Sendable () -> UInt64?) {
        threads.withLock { $0.append((name, period, lastTick)) }
    }

    /// Ticks on the cooperative pool until the task is cancelled.
    public func run() async {
        while !Task.isCancelled {
            poolTick.store(MonotonicClock.nanoseconds(), ordering: .relaxed)
            try? await Task.sleep(for: tickInterval)
        }
    }

    /// The state of every ticker at monotonic time `now`.
    public func readings(now: UInt64 = MonotonicClock.nanoseconds()) -> [Reading] {
        var readings = [reading("swift-concurrency", last: poolTick.load(ordering: .relaxed), period: tickInterval, now: now)]
        let watched = threads.withLock { $0 }
        for thread in watched {
            guard let last = thread.lastTick() else { continue }
            readings.append(reading(thread.name, last: last, period: thread.period, now: now))
        }
        return readings
    }

    /// True when no ticker stalled.
    public var isAlive: Bool { readings().allSatisfy { $0.status == .pass } }

    private func reading(_ name: String, last: UInt64, period: Duration, now: UInt64) -> Reading {
        let silence = Double(now > last ? now - last : 0) / 1_000_000
        let lag = max(0, silence - period.milliseconds)
        let status: HealthStatus = silence > stallThreshold.milliseconds ? .fail : .pass
        return Reading(component: name, lagMilliseconds: (lag * 1000).rounded() / 1000, status: status)
    }
}
