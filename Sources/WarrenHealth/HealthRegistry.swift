import Synchronization
import WarrenSystem

/// Holds the checks, evaluates them in the background and answers probes from the cache.
///
/// Every check runs in its own loop, on its own interval, under its own timeout, concurrently with
/// the others. A probe reads the cache (a lock and a dictionary lookup), so it answers at once even
/// while a dependency hangs. A result older than ``staleAfter`` counts as a failure: if the checks stop
/// running (for example because Swift's cooperative pool is stuck), readiness does not keep saying
/// "ready" from old news.
public final class HealthRegistry: Sendable {
    private struct State {
        var checks: [String: HealthCheck] = [:]
        var evaluators: [String: CheckEvaluator] = [:]
        var order: [String] = []
        var results: [String: HealthCheckResult] = [:]
        var started = false
        var shuttingDown = false
        var transitions: [@Sendable (HealthTransition) -> Void] = []
    }

    private let state = Mutex(State())
    /// How soon a failing check runs again (when its interval is longer).
    static let failingInterval: Duration = .milliseconds(100)

    /// Results older than this fail (default: 5 s).
    public let staleAfter: Duration

    /// Creates an empty registry. A passing result older than `staleAfter` (or, for a slower check,
    /// than three intervals plus its timeout) is reported as `fail`.
    public init(staleAfter: Duration = .seconds(5)) {
        self.staleAfter = staleAfter
    }

    /// Adds a check. Until its first evaluation it reports `fail` ("not evaluated yet").
    public func register(_ check: HealthCheck) {
        state.withLock { state in
            if state.checks.updateValue(check, forKey: check.name) == nil { state.order.append(check.name) }
            state.evaluators[check.name] = CheckEvaluator(check: check)
        }
    }

    /// Calls `observer` (on the evaluating task) whenever a check changes between pass and fail.
    public func onTransition(_ observer: @escaping @Sendable (HealthTransition) -> Void) {
        state.withLock { $0.transitions.append(observer) }
    }

    /// The names of registered checks of a kind, in registration order.
    public func checkNames(kind: HealthCheckKind) -> [String] {
        state.withLock { state in state.order.filter { state.checks[$0]?.kind == kind } }
    }

    // MARK: Lifecycle flags

    /// Marks start-up as finished: `/internal/started` passes, readiness may pass.
    public func markStarted() { state.withLock { $0.started = true } }

    /// Marks shutdown: readiness fails at once, whatever the checks say.
    public func markShuttingDown() { state.withLock { $0.shuttingDown = true } }

    /// Whether ``markStarted()`` was called. Thread-safe.
    public var isStarted: Bool { state.withLock { $0.started } }
    /// Whether ``markShuttingDown()`` was called. Thread-safe.
    public var isShuttingDown: Bool { state.withLock { $0.shuttingDown } }

    // MARK: Reading

    /// The cached result of one check, with staleness applied; `nil` for an unknown check.
    public func result(of name: String, now: UInt64 = MonotonicClock.nanoseconds()) -> HealthCheckResult? {
        state.withLock { state in
            guard let check = state.checks[name] else { return nil }
            return effectiveResult(check, state.results[name], now: now)
        }
    }

    /// The cached results of every check of `kind` except `excluded`, in registration order.
    public func results(kind: HealthCheckKind, excluding excluded: Set<String> = [], now: UInt64 = MonotonicClock.nanoseconds())
        -> [(check: HealthCheck, result: HealthCheckResult)]
    {
        state.withLock { state in
            state.order.compactMap { name in
                guard let check = state.checks[name], check.kind == kind, !excluded.contains(name) else { return nil }
                return (check, effectiveResult(check, state.results[name], now: now))
            }
        }
    }

    /// True when every readiness check (except `excluded`) passes, start-up is done and no shutdown began.
    public func isReady(excluding excluded: Set<String> = []) -> Bool {
        guard isStarted, !isShuttingDown else { return false }
        return results(kind: .readiness, excluding: excluded).allSatisfy { $0.result.status != .fail }
    }

    private func effectiveResult(_ check: HealthCheck, _ result: HealthCheckResult?, now: UInt64) -> HealthCheckResult {
        guard var result else {
            return HealthCheckResult(status: .fail, output: "not evaluated yet", measuredAt: now)
        }
        let age = result.age(at: now)
        if result.status != .fail, age > max(staleAfter, check.interval * 3 + check.timeout) {
            result.status = .fail
            result.output = "stale: last evaluated \(Int(age.milliseconds)) ms ago (health evaluation is stuck)"
        }
        return result
    }

    // MARK: Evaluation

    /// Evaluates every registered check on its interval until the task is cancelled.
    public func run() async {
        let evaluators = state.withLock { state in state.order.compactMap { state.evaluators[$0] } }
        await withTaskGroup(of: Void.self) { group in
            for evaluator in evaluators {
                group.addTask { await self.loop(evaluator) }
            }
        }
    }

    /// Evaluates one check now and caches the result.
    @discardableResult
    public func evaluate(_ name: String) async -> HealthCheckResult? {
        guard let evaluator = state.withLock({ $0.evaluators[name] }) else { return nil }
        return await store(evaluator.evaluate(), for: evaluator.check)
    }

    private func loop(_ evaluator: CheckEvaluator) async {
        while !Task.isCancelled {
            let started = MonotonicClock.now
            let result = store(await evaluator.evaluate(), for: evaluator.check)
            // A failing check is retried sooner, so recovery (and start-up) shows within ~100 ms.
            let interval = result.status == .fail ? min(evaluator.check.interval, Self.failingInterval) : evaluator.check.interval
            try? await Task.sleep(until: started + interval, clock: MonotonicClock())
        }
    }

    @discardableResult
    private func store(_ result: HealthCheckResult, for check: HealthCheck) -> HealthCheckResult {
        let (previous, observers) = state.withLock { state in
            (state.results.updateValue(result, forKey: check.name), state.transitions)
        }
        if (previous?.status ?? .fail) != result.status || previous == nil {
            let transition = HealthTransition(check: check.name, kind: check.kind, from: previous?.status, to: result.status, output: result.output)
            for observer in observers { observer(transition) }
        }
        return result
    }
}

/// A check that changed status: what readiness logs and gates on.
public struct HealthTransition: Sendable, Equatable {
    /// The name of the check that changed (``HealthCheck/name``).
    public var check: String
    /// Which probe the check answers to.
    public var kind: HealthCheckKind
    /// The previous status; `nil` for the first evaluation.
    public var from: HealthStatus?
    /// The new status.
    public var to: HealthStatus
    /// Why, when it failed.
    public var output: String?
}
