import NIOCore
import Testing
@testable import Warren
import WarrenHealth

/// The side port reuses a report's rendering only while the report is the same.
@Suite("Rendered health reports (pure)")
struct RenderedReportTests {
    @Test func anEqualReportReusesItsRenderingAndAChangedOneIsRenderedAfresh() {
        let cache = RenderedReport()
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
