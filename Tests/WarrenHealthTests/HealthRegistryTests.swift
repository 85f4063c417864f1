import Synchronization
import Testing
@testable import WarrenHealth

/// A probe whose behaviour a test switches at will: pass, fail, or hang until released.
final class Switch: Sendable {
    enum Mode: Sendable { case pass, fail, hang }
    let mode = Mutex(Mode.pass)
    let calls = Atomic<Int>(0)

    func probe() async throws {
        calls.add(1, ordering: .relaxed)
        while mode.withLock({ $0 }) == .hang { try? await Task.sleep(for: .milliseconds(5)) }
        if mode.withLock({ $0 }) == .fail { throw ProbeError() }
    }

    struct ProbeError: Error, CustomStringConvertible { var description: String { "connection refused" } }
}

@Suite("Health registry")
struct HealthRegistryTests {
    /// A reader takes `now` before it reads the cache; a check may store a result measured after it.
    /// That result is zero old (this subtraction once trapped and crashed the worker's metrics sampler).
    @Test func aResultMeasuredAfterNowHasAgeZero() {
        let result = HealthCheckResult(status: .pass, measuredAt: 2_000)
        #expect(result.age(at: 1_000) == .zero)
        #expect(result.age(at: 2_500) == .nanoseconds(500))
    }

    @Test func passFailAndTimeout() async throws {
        let s = Switch()
        let registry = HealthRegistry()
        registry.register(HealthCheck(name: "dep", timeout: .milliseconds(100), probe: s.probe))
        #expect(registry.result(of: "dep")?.status == .fail, "not evaluated yet")
        #expect(await registry.evaluate("dep")?.status == .pass)
        s.mode.withLock { $0 = .fail }
        let failed = await registry.evaluate("dep")
        #expect(failed?.status == .fail)
        #expect(failed?.output == "connection refused")
        s.mode.withLock { $0 = .hang }
        let clock = ContinuousClock()
        let start = clock.now
        let hung = await registry.evaluate("dep")
        #expect(clock.now - start < .milliseconds(600))
        #expect(hung?.status == .fail)
        #expect(hung?.output?.contains("no answer within 100 ms") == true)
        // The hung probe is not started again: the next evaluation waits on the same call.
        let callsBefore = s.calls.load(ordering: .relaxed)
        let again = await registry.evaluate("dep")
        #expect(again?.output?.contains("still waiting") == true)
        #expect(s.calls.load(ordering: .relaxed) == callsBefore)
        s.mode.withLock { $0 = .pass }
        try await Task.sleep(for: .milliseconds(20))
        #expect(await registry.evaluate("dep")?.status == .pass)
    }

    @Test func readinessNeedsStartAndFailsOnShutdown() async {
        let registry = HealthRegistry()
        registry.register(HealthCheck(name: "a", probe: {}))
        registry.register(HealthCheck(name: "b", probe: { throw Switch.ProbeError() }))
        await registry.evaluate("a")
        await registry.evaluate("b")
        #expect(!registry.isReady())
        registry.markStarted()
        #expect(!registry.isReady())
        #expect(registry.isReady(excluding: ["b"]))
        registry.markShuttingDown()
        #expect(!registry.isReady(excluding: ["b"]))
    }

    @Test func staleResultsFail() async {
        let registry = HealthRegistry(staleAfter: .milliseconds(50))
        registry.register(HealthCheck(name: "a", timeout: .milliseconds(10), interval: .milliseconds(10), probe: {}))
        let result = await registry.evaluate("a")
        let measured = result!.measuredAt
        #expect(registry.result(of: "a", now: measured + 10_000_000)?.status == .pass)
        let stale = registry.result(of: "a", now: measured + 200_000_000)
        #expect(stale?.status == .fail)
        #expect(stale?.output?.hasPrefix("stale") == true)
    }

    @Test func backgroundLoopRecoversAndReportsTransitions() async throws {
        let s = Switch()
        let registry = HealthRegistry()
        let transitions = Mutex<[HealthTransition]>([])
        registry.onTransition { t in transitions.withLock { $0.append(t) } }
        registry.register(HealthCheck(name: "dep", timeout: .milliseconds(100), interval: .milliseconds(20), probe: s.probe))
        let runner = Task { await registry.run() }
        defer { runner.cancel() }
        #expect(await eventually { registry.result(of: "dep")?.status == .pass })
        s.mode.withLock { $0 = .fail }
        #expect(await eventually { registry.result(of: "dep")?.status == .fail })
        s.mode.withLock { $0 = .pass }
        #expect(await eventually { registry.result(of: "dep")?.status == .pass })
        let seen = transitions.withLock { $0.map(\.to) }
        #expect(seen == [.pass, .fail, .pass])
        #expect(transitions.withLock { $0[1].output } == "connection refused")
    }

    @Test func reporterShapes() async throws {
        let registry = HealthRegistry()
        registry.register(HealthCheck(name: "redis", probe: {}))
        registry.register(HealthCheck(name: "postgres", probe: { throw Switch.ProbeError() }))
        await registry.evaluate("redis")
        await registry.evaluate("postgres")
        let reporter = HealthReporter(registry: registry, watchdog: LivenessWatchdog())
        #expect(reporter.readiness().output?.hasPrefix("starting") == true)
        registry.markStarted()
        let ready = reporter.readiness()
        #expect(ready.status == .fail)
        #expect(ready.checks.map(\.key) == ["redis:responseTime", "postgres:responseTime"])
        #expect(reporter.readiness(excluding: ["postgres"]).status == .pass)
        #expect(reporter.readiness(check: "redis")?.status == .pass)
        #expect(reporter.readiness(check: "postgres")?.status == .fail)
        #expect(reporter.readiness(check: "nope") == nil)
        #expect(reporter.startup().status == .pass)
        registry.markShuttingDown()
        #expect(reporter.readiness(excluding: ["postgres"]).httpStatus == 503)
    }

    /// The instance a probe reached is read after each probe and reported as `componentId`, on
    /// success and on failure; a check without one reports none.
    @Test func componentIDFollowsTheInstanceInUse() async throws {
        let node = Mutex("rabbit-0:5671")
        let s = Switch()
        let registry = HealthRegistry()
        registry.register(HealthCheck(name: "rabbitmq", componentID: { node.withLock { $0 } }, probe: s.probe))
        registry.register(HealthCheck(name: "plain", probe: {}))
        await registry.evaluate("rabbitmq")
        await registry.evaluate("plain")
        registry.markStarted()
        let reporter = HealthReporter(registry: registry, watchdog: LivenessWatchdog())
        #expect(reporter.readiness().checks.first?.entries.first?.componentID == "rabbit-0:5671")
        #expect(reporter.readiness().checks.last?.entries.first?.componentID == nil)
        node.withLock { $0 = "rabbit-2:5671" }
        s.mode.withLock { $0 = .fail }
        await registry.evaluate("rabbitmq")
        let failed = try #require(reporter.readiness(check: "rabbitmq")?.checks.first?.entries.first)
        #expect(failed.componentID == "rabbit-2:5671" && failed.status == .fail)
        #expect(failed.json.hasPrefix(#"{"componentId":"rabbit-2:5671","status":"fail""#))
    }
}

/// Polls until `condition` holds, up to 2 s.
func eventually(_ condition: () -> Bool) async -> Bool {
    for _ in 0..<200 {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}
