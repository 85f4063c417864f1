import CoreMetrics
import Synchronization
import WarrenHealth
import WarrenSystem

/// Warren's metrics: names, types and labels, in one place.
///
/// Warren records them through the swift-metrics API only (`Counter`, `Timer`, `Meter`, `Gauge`), so a
/// worker can bootstrap any backend; `event-worker` bootstraps swift-prometheus and serves `GET /metrics`.
/// Bootstrap `MetricsSystem` before creating a ``Worker``: metric objects are made once, at init.
public enum WarrenMetrics {
    /// The kind of a metric, as Prometheus names it.
    public enum Kind: String, Sendable {
        case counter, gauge, histogram
    }

    /// One metric of ``catalog``.
    public struct Descriptor: Sendable, Equatable {
        /// The metric's name (Prometheus style: snake_case, `_total` for counters, `_seconds` for durations).
        public var name: String
        /// Counter, gauge or histogram.
        public var kind: Kind
        /// Its label names, in order.
        public var labels: [String]
        /// What it counts or measures.
        public var help: String
    }

    /// Counter, `queue`: deliveries received from the broker.
    public static let messagesReceived = "warren_messages_received_total"
    /// Counter, `queue`: messages acknowledged.
    public static let messagesAcked = "warren_messages_acked_total"
    /// Counter, `queue`: messages put back because a dependency was down or consumption was pausing.
    public static let messagesRequeued = "warren_messages_requeued_total"
    /// Counter, `queue`: messages put back for redelivery after a handler failure.
    public static let messagesRetried = "warren_messages_retried_total"
    /// Counter, `queue`: messages dead-lettered (invalid, or out of attempts).
    public static let messagesDeadLettered = "warren_messages_dead_lettered_total"
    /// Histogram, `queue`: handler run time, every outcome (buckets: ``handlerDurationBuckets``): one
    /// observation per message for message handlers (a chunk's time shared among its messages), one
    /// per call for batch handlers (the chunk).
    public static let handlerDuration = "warren_handler_duration_seconds"
    /// Counter, `queue`: messages whose handler ran past its timeout (then retried).
    public static let handlerTimeouts = "warren_handler_timeouts_total"
    /// Gauge, `queue`: messages ready in the queue, as the broker said at the last readiness round trip.
    public static let queueMessages = "warren_queue_messages"
    /// Gauge, `queue`: consumers on the queue (all replicas), as the broker said at the last readiness round trip.
    public static let queueConsumers = "warren_queue_consumers"
    /// Gauge, `queue`: handlers running now.
    public static let messagesInFlight = "warren_messages_in_flight"
    /// Gauge, `queue` and `state`: 1 for the consumer's current state, 0 for the others.
    public static let consumerState = "warren_consumer_state"
    /// Counter, `queue`: broker connection attempts after a failure.
    public static let reconnects = "warren_reconnects_total"
    /// Gauge, `check`: 1 while the check passes, else 0.
    public static let checkUp = "warren_check_up"
    /// Gauge, `check`: duration of the check's last evaluation, in seconds.
    public static let checkDuration = "warren_check_duration_seconds"
    /// Gauge, `component`: how late a watched loop's last tick is, in seconds.
    public static let eventLoopLag = "warren_event_loop_lag_seconds"
    /// Gauge: process start, seconds since the Unix epoch.
    public static let processStartTime = "process_start_time_seconds"
    /// Gauge, `version` and `swift`: always 1.
    public static let buildInfo = "warren_build_info"

    /// Every metric Warren records (the README's "Metrics" table lists the same).
    public static let catalog: [Descriptor] = [
        .init(name: messagesReceived, kind: .counter, labels: ["queue"], help: "deliveries received from the broker"),
        .init(name: messagesAcked, kind: .counter, labels: ["queue"], help: "messages acknowledged"),
        .init(name: messagesRequeued, kind: .counter, labels: ["queue"],
              help: "messages put back because a dependency was down or consumption was pausing"),
        .init(name: messagesRetried, kind: .counter, labels: ["queue", "reason"],
              help: "messages sent to a delay queue after a failed attempt (reason: failure or timeout)"),
        .init(name: messagesDeadLettered, kind: .counter, labels: ["queue", "reason"],
              help: "messages dead-lettered (reason: invalid, or exhausted attempts)"),
        .init(name: handlerTimeouts, kind: .counter, labels: ["queue"], help: "messages whose handler ran past its timeout"),
        .init(name: queueMessages, kind: .gauge, labels: ["queue"],
              help: "messages ready in the queue at the last readiness round trip (the backlog, without the broker's exporter)"),
        .init(name: queueConsumers, kind: .gauge, labels: ["queue"],
              help: "consumers on the queue, every replica's, at the last readiness round trip"),
        .init(name: handlerDuration, kind: .histogram, labels: ["queue"], help: "handler run time, every outcome (per message; per chunk for batch handlers)"),
        .init(name: messagesInFlight, kind: .gauge, labels: ["queue"], help: "handlers running now"),
        .init(name: consumerState, kind: .gauge, labels: ["queue", "state"],
              help: "1 for the consumer's current state (consuming, paused, disconnected), 0 for the others"),
        .init(name: reconnects, kind: .counter, labels: ["queue"], help: "broker connection attempts after a failure"),
        .init(name: checkUp, kind: .gauge, labels: ["check"], help: "1 while the check passes, else 0"),
        .init(name: checkDuration, kind: .gauge, labels: ["check"], help: "duration of the check's last evaluation"),
        .init(name: eventLoopLag, kind: .gauge, labels: ["component"],
              help: "how late a watched loop's last tick is (swift-concurrency, amqp-io)"),
        .init(name: processStartTime, kind: .gauge, labels: [], help: "process start, seconds since the Unix epoch"),
        .init(name: buildInfo, kind: .gauge, labels: ["version", "swift"], help: "always 1; the labels tell the build"),
    ]

    /// Buckets for ``handlerDuration``: 1 ms to 10 s. Backends that take buckets per metric (such as
    /// swift-prometheus's `PrometheusMetricsFactory.durationHistogramBuckets`) should be given these.
    public static let handlerDurationBuckets: [Duration] = [
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    /// The Prometheus text exposition content type.
    public static let prometheusContentType = "text/plain; version=0.0.4; charset=utf-8"
}

/// What the consumer is doing, for `warren_consumer_state`.
enum ConsumerState: String, CaseIterable, Sendable {
    case consuming, paused, disconnected
}

/// The per-queue metric objects of a ``SubscriptionService``, made once so that the hot path only
/// increments.
final class SubscriptionMetrics: Sendable {
    let received: Counter
    let acked: Counter
    let requeued: Counter
    private let retriedFailure: Counter
    private let retriedTimeout: Counter
    private let deadLetteredInvalid: Counter
    private let deadLetteredExhausted: Counter
    let handlerTimeouts: Counter
    /// What the broker said of the queue at the last readiness round trip.
    let queueMessages: Gauge
    let queueConsumers: Gauge
    let handlerDuration: CoreMetrics.Timer
    let inFlight: Meter
    let reconnects: Counter
    private let states: [(state: ConsumerState, gauge: Gauge)]

    init(queue: String, factory: any MetricsFactory) {
        let labels = [("queue", queue)]
        func counter(_ name: String) -> Counter { Counter(label: name, dimensions: labels, factory: factory) }
        received = counter(WarrenMetrics.messagesReceived)
        acked = counter(WarrenMetrics.messagesAcked)
        requeued = counter(WarrenMetrics.messagesRequeued)
        func counter(_ name: String, reason: String) -> Counter {
            Counter(label: name, dimensions: labels + [("reason", reason)], factory: factory)
        }
        retriedFailure = counter(WarrenMetrics.messagesRetried, reason: Settlement.DelayReason.failure.rawValue)
        retriedTimeout = counter(WarrenMetrics.messagesRetried, reason: Settlement.DelayReason.timeout.rawValue)
        deadLetteredInvalid = counter(WarrenMetrics.messagesDeadLettered, reason: Settlement.DeadLetterReason.invalid.rawValue)
        deadLetteredExhausted = counter(WarrenMetrics.messagesDeadLettered, reason: Settlement.DeadLetterReason.exhausted.rawValue)
        handlerTimeouts = counter(WarrenMetrics.handlerTimeouts)
        queueMessages = Gauge(label: WarrenMetrics.queueMessages, dimensions: labels, factory: factory)
        queueConsumers = Gauge(label: WarrenMetrics.queueConsumers, dimensions: labels, factory: factory)
        reconnects = counter(WarrenMetrics.reconnects)
        handlerDuration = CoreMetrics.Timer(label: WarrenMetrics.handlerDuration, dimensions: labels, factory: factory)
        inFlight = Meter(label: WarrenMetrics.messagesInFlight, dimensions: labels, factory: factory)
        inFlight.set(0)
        states = ConsumerState.allCases.map { state in
            (state, Gauge(label: WarrenMetrics.consumerState, dimensions: labels + [("state", state.rawValue)], factory: factory))
        }
        setState(.disconnected)
    }

    /// The retry counter of `reason` (failure or timeout; a dependency outage counts as requeued).
    func retried(_ reason: Settlement.DelayReason) -> Counter {
        reason == .timeout ? retriedTimeout : retriedFailure
    }

    /// The dead-letter counter of `reason`.
    func deadLettered(_ reason: Settlement.DeadLetterReason) -> Counter {
        reason == .exhausted ? deadLetteredExhausted : deadLetteredInvalid
    }

    /// Sets the current state's gauge to 1 and the others to 0.
    func setState(_ current: ConsumerState) {
        for (state, gauge) in states { gauge.record(state == current ? 1 : 0) }
    }
}

extension SubscriptionService.Phase {
    /// The phase as `warren_consumer_state` reports it: connecting and stopped count as disconnected.
    var consumerState: ConsumerState {
        switch self {
        case .consuming: .consuming
        case .paused: .paused
        case .connecting, .disconnected, .stopped: .disconnected
        }
    }
}

/// The worker-wide metrics: check status and duration, event-loop lag, process start and build info.
///
/// Check results and watchdog readings are read, not pushed: ``sample(registry:watchdog:)`` copies
/// them into gauges, on every `/metrics` scrape and once a second. It reads the registry's effective
/// results, so a check whose evaluation got stuck shows as down, as readiness does.
final class WorkerMetrics: Sendable {
    private let factory: any MetricsFactory
    private let checks = Mutex<[String: (up: Gauge, duration: Gauge)]>([:])
    private let lags = Mutex<[String: Gauge]>([:])
    private let startTime: Gauge
    private let buildInfo: Gauge

    init(factory: any MetricsFactory) {
        self.factory = factory
        startTime = Gauge(label: WarrenMetrics.processStartTime, factory: factory)
        startTime.record(ProcessInfoReader.startTimeSeconds)
        buildInfo = Gauge(label: WarrenMetrics.buildInfo,
                          dimensions: [("version", WarrenBuild.version), ("swift", WarrenBuild.swiftVersion)], factory: factory)
        buildInfo.record(1)
    }

    func sample(registry: HealthRegistry, watchdog: LivenessWatchdog) {
        let now = MonotonicClock.nanoseconds()
        for kind in [HealthCheckKind.readiness, .startup, .liveness] {
            for (check, result) in registry.results(kind: kind, now: now) {
                let gauges = checkGauges(check.name)
                gauges.up.record(result.status == .fail ? 0 : 1)
                if let duration = result.duration { gauges.duration.record(duration.seconds) }
            }
        }
        for reading in watchdog.readings(now: now) {
            lagGauge(reading.component).record(reading.lagMilliseconds / 1000)
        }
    }

    private func checkGauges(_ name: String) -> (up: Gauge, duration: Gauge) {
        checks.withLock { checks in
            if let gauges = checks[name] { return gauges }
            let labels = [("check", name)]
            let gauges = (Gauge(label: WarrenMetrics.checkUp, dimensions: labels, factory: factory),
                          Gauge(label: WarrenMetrics.checkDuration, dimensions: labels, factory: factory))
            checks[name] = gauges
            return gauges
        }
    }

    private func lagGauge(_ component: String) -> Gauge {
        lags.withLock { lags in
            if let gauge = lags[component] { return gauge }
            let gauge = Gauge(label: WarrenMetrics.eventLoopLag, dimensions: [("component", component)], factory: factory)
            lags[component] = gauge
            return gauge
        }
    }
}
