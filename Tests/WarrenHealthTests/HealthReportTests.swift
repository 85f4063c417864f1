import Foundation
import Testing
@testable import WarrenHealth

@Suite("Health report rendering")
struct HealthReportTests {
    let time = WallClock.Instant(seconds: 1_795_000_000, nanoseconds: 123_456_789)

    @Test func rendersDraftShape() throws {
        let report = HealthReport(status: .fail, checks: [
            ("redis:responseTime", [.init(status: .pass, observedValue: 0.42, observedUnit: "ms", time: time, output: "ignored on pass")]),
            ("postgres:responseTime", [.init(status: .fail, observedValue: 800, observedUnit: "ms", time: time, output: "no answer within 800 ms")]),
        ])
        let json = try JSONSerialization.jsonObject(with: Data(report.json().utf8)) as! [String: Any]
        #expect(json["status"] as? String == "fail")
        let checks = try #require(json["checks"] as? [String: [[String: Any]]])
        let redis = try #require(checks["redis:responseTime"]?.first)
        #expect(redis["status"] as? String == "pass")
        #expect(redis["observedValue"] as? Double == 0.42)
        #expect(redis["observedUnit"] as? String == "ms")
        #expect(redis["time"] as? String == "2026-11-18T11:06:40.123Z")
        #expect(redis["output"] == nil, "output only on failure")
        let postgres = try #require(checks["postgres:responseTime"]?.first)
        #expect(postgres["output"] as? String == "no answer within 800 ms")
        #expect(postgres["observedValue"] as? Int == 800)
        #expect(report.httpStatus == 503)

        let exact = HealthReport(status: .warn, output: "slow", checks: [
            ("a:b", [.init(componentID: "c", status: .warn, observedValue: 2, observedUnit: "ms", time: time, output: "late")]),
            ("d", []),
        ], version: "1", releaseId: "r")
        #expect(exact.json() == #"{"status":"warn","version":"1","releaseId":"r","output":"slow","checks":{"a:b":[{"componentId":"c","status":"warn","observedValue":2,"observedUnit":"ms","time":"2026-11-18T11:06:40.123Z","output":"late"}],"d":[]}}"#)
        #expect(WallClock.Instant(seconds: 0, nanoseconds: 999_999_999).iso8601 == "1970-01-01T00:00:00.999Z")
    }

    @Test func escapesStrings() throws {
        let report = HealthReport(status: .fail, output: "quote \" backslash \\ newline \n tab \t bell \u{7}")
        let json = try JSONSerialization.jsonObject(with: Data(report.json().utf8)) as! [String: Any]
        #expect(json["output"] as? String == "quote \" backslash \\ newline \n tab \t bell \u{7}")
        #expect(HealthReport(status: .pass).json() == #"{"status":"pass","checks":{}}"#)
        #expect(HealthReport(status: .warn).httpStatus == 200)
    }

    /// Check names are the user's: a name with quotes, backslashes or control characters still
    /// renders valid JSON, in the report's keys as in the 404 of an unknown check.
    @Test func escapesCheckNames() async throws {
        let name = "we\"ird\\name\n"
        let registry = HealthRegistry()
        registry.register(HealthCheck(name: name, probe: {}))
        _ = await registry.evaluate(name)
        registry.markStarted()
        let reporter = HealthReporter(registry: registry, watchdog: LivenessWatchdog(stallThreshold: .seconds(5)))
        let report = reporter.readiness(excluding: [])
        let json = try JSONSerialization.jsonObject(with: Data(report.json().utf8)) as! [String: Any]
        let checks = try #require(json["checks"] as? [String: Any])
        #expect(checks.keys.contains { $0.hasPrefix(name + ":") }, "\(checks.keys)")
    }

    /// Every report names the service's version and release; liveness also reports the uptime.
    @Test func reportsCarryVersionReleaseAndUptime() throws {
        let registry = HealthRegistry()
        registry.markStarted()
        let reporter = HealthReporter(registry: registry, watchdog: LivenessWatchdog(stallThreshold: .seconds(5)),
                                      version: "1.4.0", releaseId: "2026-11-29.3")
        for report in [reporter.liveness(), reporter.readiness(), reporter.startup()] {
            let json = try JSONSerialization.jsonObject(with: Data(report.json().utf8)) as! [String: Any]
            #expect(json["version"] as? String == "1.4.0")
            #expect(json["releaseId"] as? String == "2026-11-29.3")
        }
        let alive = try JSONSerialization.jsonObject(with: Data(reporter.liveness().json().utf8)) as! [String: Any]
        let checks = try #require(alive["checks"] as? [String: [[String: Any]]])
        let uptime = try #require(checks["uptime"]?.first)
        #expect(uptime["observedUnit"] as? String == "s")
        #expect((uptime["observedValue"] as? Double ?? (uptime["observedValue"] as? Int).map(Double.init) ?? -1) >= 0)
    }
}
