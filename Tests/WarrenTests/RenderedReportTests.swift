import NIOCore
import Testing
@testable import Warren
@testable import WarrenHealth

/// The side port reuses a report's rendering only while the report is the same.
@Suite("Rendered health reports (pure)")
struct RenderedReportTests {
    @Test func anEqualReportReusesItsRenderingAndAChangedOneIsRenderedAfresh() {
        let cache = RenderedReport<HealthReport>()
        let passing = HealthReport(status: .pass, checks: [("redis:responseTime", [.init(status: .pass, observedValue: 1, observedUnit: "ms")])])
        var failing = passing
        failing.status = .fail
        failing.checks = [("redis:responseTime", [.init(status: .fail, observedValue: 800, observedUnit: "ms", output: "timed out")])]

        let first = cache.response(for: passing)
        #expect(first.status == .ok)
        #expect(cache.response(for: passing).body == first.body)
        let changed = cache.response(for: failing)
        #expect(changed.status == .serviceUnavailable)
        #expect(String(buffer: changed.body).contains("timed out"))
        #expect(String(buffer: cache.response(for: passing).body) == String(buffer: first.body))
    }
}

/// Liveness is keyed by what its report is made of: a probe within the same millisecond, with the
/// same readings, makes no report at all.
@Suite("Rendered liveness (pure)")
struct RenderedLivenessTests {
    @Test func equalInputsRenderOnceAndChangedInputsRenderAfresh() {
        let reporter = HealthReporter(registry: HealthRegistry(), watchdog: LivenessWatchdog(stallThreshold: .seconds(5)))
        let cache = RenderedReport<HealthReporter.LivenessInputs>()
        let inputs = reporter.livenessInputs()
        var renders = 0
        let render = { (inputs: HealthReporter.LivenessInputs) -> HealthReport in
            renders += 1
            return reporter.liveness(inputs)
        }
        let first = cache.response(for: inputs, render: render)
        let again = cache.response(for: inputs, render: render)
        #expect(renders == 1)
        #expect(String(buffer: again.body) == String(buffer: first.body))
        #expect(String(buffer: first.body) == reporter.liveness(inputs).json())

        var later = inputs
        later.uptimeMilliseconds += 1
        let changed = cache.response(for: later, render: render)
        #expect(renders == 2)
        #expect(String(buffer: changed.body) != String(buffer: first.body))
    }
}
