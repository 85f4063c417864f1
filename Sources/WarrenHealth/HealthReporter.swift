import WarrenSystem

/// Builds the probe reports from the cached check results and the liveness watchdog.
///
/// Everything here reads cached state only: it never awaits, never touches a dependency, and so
/// can run on the health server's event loop.
public struct HealthReporter: Sendable {
    /// The checks whose cached results the readiness and startup reports show.
    public let registry: HealthRegistry
    /// The tickers whose readings the liveness report shows.
    public let watchdog: LivenessWatchdog
    /// `version` of every report.
    public let version: String?
    /// `releaseId` of every report.
    public let releaseId: String?
    /// When this reporter was made (the worker's start): liveness reports the uptime since.
    private let startedAt = MonotonicClock.nanoseconds()

    /// Creates a reporter; liveness counts the uptime from this call. `version` and `releaseId`
    /// go into every report (omitted when `nil`).
    public init(registry: HealthRegistry, watchdog: LivenessWatchdog, version: String? = nil, releaseId: String? = nil) {
        self.registry = registry
        self.watchdog = watchdog
        self.version = version
        self.releaseId = releaseId
    }

    /// What a liveness report is made of, to the millisecond: equal inputs make equal reports, so a
    /// route can compare these (cheap) instead of making the report for every probe.
    public struct LivenessInputs: Sendable, Equatable {
        /// Now, truncated to the millisecond (as the report prints it).
        var time: WallClock.Instant
        /// The uptime in whole milliseconds.
        var uptimeMilliseconds: UInt64
        /// The watchdog's readings.
        var readings: [LivenessWatchdog.Reading]
    }

    /// The inputs of a liveness report made now (see ``liveness(_:)``).
    public func livenessInputs() -> LivenessInputs {
        var now = WallClock.now()
        now.nanoseconds -= now.nanoseconds % 1_000_000
        let uptime = (MonotonicClock.nanoseconds() &- startedAt) / 1_000_000
        return LivenessInputs(time: now, uptimeMilliseconds: uptime, readings: watchdog.readings())
    }

    /// `/internal/alive`: the cooperative pool and the registered threads ticked recently.
    public func liveness() -> HealthReport {
        liveness(livenessInputs())
    }

    /// The liveness report of `inputs` (see ``livenessInputs()``).
    public func liveness(_ inputs: LivenessInputs) -> HealthReport {
        let now = inputs.time
        let entries = inputs.readings.map { reading in
            HealthReport.Entry(
                componentID: reading.component, status: reading.status,
                observedValue: reading.lagMilliseconds, observedUnit: "ms", time: now,
                output: "\(reading.component) has not ticked for \(Int(reading.lagMilliseconds)) ms past its period (stall threshold \(Int(watchdog.stallThreshold.milliseconds)) ms)"
            )
        }
        let status = entries.map(\.status).max() ?? .pass
        let uptime = Double(inputs.uptimeMilliseconds) / 1000
        return HealthReport(status: status, checks: [
            ("event-loop:lag", entries),
            ("uptime", [HealthReport.Entry(status: .pass, observedValue: uptime, observedUnit: "s", time: now)]),
        ], version: version, releaseId: releaseId)
    }

    /// `/internal/ready`: started, not shutting down, and every readiness check but `excluded` passes.
    public func readiness(excluding excluded: Set<String> = []) -> HealthReport {
        let results = registry.results(kind: .readiness, excluding: excluded)
        var report = report(results)
        if registry.isShuttingDown {
            report.status = .fail
            report.output = "shutting down"
        } else if !registry.isStarted {
            report.status = .fail
            report.output = "starting: first connect, topology and migrations not done yet"
        }
        return report
    }

    /// `/internal/ready/<check>`: that check alone; `nil` when there is no such readiness check.
    public func readiness(check name: String) -> HealthReport? {
        let results = registry.results(kind: .readiness).filter { $0.check.name == name }
        guard !results.isEmpty else { return nil }
        return report(results)
    }

    /// `/internal/started`: start-up finished (and the startup checks, if any, pass).
    public func startup() -> HealthReport {
        var report = report(registry.results(kind: .startup))
        if !registry.isStarted {
            report.status = .fail
            report.output = "starting: first connect, topology and migrations not done yet"
        }
        return report
    }

    private func report(_ results: [(check: HealthCheck, result: HealthCheckResult)]) -> HealthReport {
        let checks = results.map { check, result in
            (key: "\(check.name):\(check.measurement)", entries: [HealthReport.Entry(
                componentID: result.componentID, status: result.status, observedValue: result.observedValue, observedUnit: result.observedUnit,
                time: result.time, output: result.output
            )])
        }
        let status = results.map(\.result.status).max() ?? .pass
        return HealthReport(status: status, checks: checks, version: version, releaseId: releaseId)
    }
}
