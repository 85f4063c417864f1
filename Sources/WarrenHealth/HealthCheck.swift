import WarrenSystem

/// The verdict of a check, as the IETF health-check draft spells it.
public enum HealthStatus: String, Sendable, Comparable {
    /// Healthy.
    case pass
    /// Healthy but degraded: still serves traffic (HTTP 200).
    case warn
    /// Unhealthy: the probe answers HTTP 503.
    case fail

    /// Orders by severity, `pass` < `warn` < `fail`, so the `max()` of several statuses is the worst.
    public static func < (a: HealthStatus, b: HealthStatus) -> Bool { a.rank < b.rank }
    private var rank: Int {
        switch self {
        case .pass: 0
        case .warn: 1
        case .fail: 2
        }
    }
}

/// Which probe a check answers to.
public enum HealthCheckKind: String, Sendable {
    /// `/internal/alive`: is the process itself working? Never a dependency.
    case liveness
    /// `/internal/ready`: can this instance do its work now (its dependencies answer)?
    case readiness
    /// `/internal/started`: has start-up finished?
    case startup
}

/// A named check of a dependency, evaluated in the background by a ``HealthRegistry``.
///
/// The probe does one real round trip (a `PING`, a `SELECT 1`, a passive queue declare) and throws
/// when it fails. The registry times it, caps it with ``timeout``, and caches the result, so a
/// Kubernetes probe never waits for a dependency.
public struct HealthCheck: Sendable {
    /// The check name, e.g. `redis`; the key in reports is `"<name>:<measurement>"`.
    public var name: String
    /// What `observedValue` measures, e.g. `responseTime`.
    public var measurement: String
    /// Which probe it answers to.
    public var kind: HealthCheckKind
    /// The longest a probe may take before the check fails (the probe itself may go on).
    public var timeout: Duration
    /// How often the check runs.
    public var interval: Duration
    /// Whether a failure of this readiness check pauses consumption (a dependency the handler needs).
    public var gatesConsumption: Bool
    /// The round trip. Throwing fails the check; the error's description becomes `output`, so it
    /// must not contain secrets.
    public var probe: @Sendable () async throws -> Void
    /// Which instance of the dependency the probe reached (e.g. `rabbit-1:5671`), read after each
    /// probe and reported as the entry's `componentId`; `nil` reports none. Never a secret.
    public var componentID: (@Sendable () -> String?)?

    /// Creates a check. Defaults: a readiness check measuring `responseTime`, failing after 500 ms,
    /// run every 250 ms, not gating consumption: a dependency that stops answering is reported
    /// within 750 ms (interval + timeout), under the second a Kubernetes probe period allows.
    public init(
        name: String,
        measurement: String = "responseTime",
        kind: HealthCheckKind = .readiness,
        timeout: Duration = .milliseconds(500),
        interval: Duration = .milliseconds(250),
        gatesConsumption: Bool = false,
        componentID: (@Sendable () -> String?)? = nil,
        probe: @escaping @Sendable () async throws -> Void
    ) {
        self.componentID = componentID
        self.gatesConsumption = gatesConsumption
        self.name = name
        self.measurement = measurement
        self.kind = kind
        self.timeout = timeout
        self.interval = interval
        self.probe = probe
    }
}

/// One evaluation of a check.
public struct HealthCheckResult: Sendable, Equatable {
    /// The verdict.
    public var status: HealthStatus
    /// What was measured (the probe's duration for dependency checks).
    public var observedValue: Double?
    /// The unit of `observedValue`, e.g. `ms`.
    public var observedUnit: String?
    /// Why it failed; `nil` when it passed.
    public var output: String?
    /// The instance of the dependency that answered (``HealthCheck/componentID``), if known.
    public var componentID: String?
    /// How long the probe ran until this result (a probe still hanging from an earlier evaluation
    /// counts from its start); `nil` when the result did not come from an evaluation.
    public var duration: Duration?
    /// Wall-clock time of the evaluation (for `time` in reports).
    public var time: WallClock.Instant
    /// Monotonic nanoseconds of the evaluation (for the result's age).
    public var measuredAt: UInt64

    /// Creates a result; `time` (wall clock) and `measuredAt` (monotonic ns) default to now.
    public init(status: HealthStatus, observedValue: Double? = nil, observedUnit: String? = nil,
                output: String? = nil, componentID: String? = nil, duration: Duration? = nil, time: WallClock.Instant = WallClock.now(),
                measuredAt: UInt64 = MonotonicClock.nanoseconds()) {
        self.status = status
        self.observedValue = observedValue
        self.observedUnit = observedUnit
        self.output = output
        self.componentID = componentID
        self.duration = duration
        self.time = time
        self.measuredAt = measuredAt
    }

    /// How old the result is at monotonic time `now` (ns); zero for a result measured after `now`
    /// (a reader takes `now` before the lock, and a check may store a newer result meanwhile).
    public func age(at now: UInt64 = MonotonicClock.nanoseconds()) -> Duration {
        now > measuredAt ? .nanoseconds(Int64(now - measuredAt)) : .zero
    }
}
