import Synchronization
import Testing
import WarrenSystem
@testable import WarrenHealth

@Suite("Liveness watchdog")
struct LivenessWatchdogTests {
    @Test func threadStallFailsAndRecovers() async {
        let watchdog = LivenessWatchdog(stallThreshold: .milliseconds(300), tickInterval: .milliseconds(10))
        let tick = Atomic<UInt64>(MonotonicClock.nanoseconds())
        watchdog.watch(thread: "amqp-io") { tick.load(ordering: .relaxed) }
        let runner = Task { await watchdog.run() }
        defer { runner.cancel() }
        let now = MonotonicClock.nanoseconds()
        tick.store(now, ordering: .relaxed)
        #expect(watchdog.readings(now: now).allSatisfy { $0.status == .pass })
        let later = now + 1_000_000_000
        let stalled = watchdog.readings(now: later).first { $0.component == "amqp-io" }
        #expect(stalled?.status == .fail)
        #expect((stalled?.lagMilliseconds ?? 0) > 800)
    }

    @Test func absentThreadIsSkipped() {
        let watchdog = LivenessWatchdog()
        watchdog.watch(thread: "amqp-io") { nil }
        #expect(watchdog.readings().map(\.component) == ["swift-concurrency"])
    }

    @Test func poolTickerKeepsItAlive() async throws {
        let watchdog = LivenessWatchdog(stallThreshold: .milliseconds(200), tickInterval: .milliseconds(10))
        let runner = Task { await watchdog.run() }
        defer { runner.cancel() }
        try await Task.sleep(for: .milliseconds(400))
        #expect(watchdog.isAlive)
        runner.cancel()
        try await Task.sleep(for: .milliseconds(400))
        #expect(!watchdog.isAlive, "a ticker that stopped means a stuck pool")
        let report = HealthReporter(registry: HealthRegistry(), watchdog: watchdog).liveness()
        #expect(report.status == .fail)
        #expect(report.checks.first?.key == "event-loop:lag")
    }
}
