import Logging
import ServiceLifecycle
import Synchronization
import WarrenAMQP
import WarrenHealth

/// Evaluates the checks, ticks the liveness watchdog and samples the read-not-recorded metrics once a
/// second, until shutdown.
struct HealthService: Service {
    let registry: HealthRegistry
    let watchdog: LivenessWatchdog
    let sampleMetrics: @Sendable () -> Void

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await registry.run() }
                group.addTask { await watchdog.run() }
                group.addTask {
                    while !Task.isCancelled {
                        sampleMetrics()
                        try? await Task.sleep(for: .seconds(1))
                    }
                }
            }
        }
    }
}

/// Runs the subscriptions; on graceful shutdown fails readiness at once, stops consuming, waits for
/// in-flight handlers up to the drain timeout and then closes the connections regardless.
struct SubscriptionRunner: Service {
    let services: [SubscriptionService]
    let registry: HealthRegistry
    let drainTimeout: Duration
    let logger: Logger

    func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await withTaskGroup(of: Void.self) { group in
                    for service in services {
                        group.addTask { await service.run() }
                    }
                }
            } onCancel: {
                // Cancelled without a graceful shutdown (another service of the group failed): stop
                // consuming all the same, so that no loop spins on and no consumer is left behind.
                registry.markShuttingDown()
                for service in services { service.stop() }
            }
        } onGracefulShutdown: {
            registry.markShuttingDown()
            logger.info("shutting down: readiness fails, consumers cancelled, draining in-flight messages",
                        metadata: ["warren.drain_timeout": "\(drainTimeout)"])
            for service in services { service.stop() }
            Task {
                try await Task.sleep(for: drainTimeout)
                logger.warning("drain timeout reached; closing the connections (unacknowledged messages return to the queue)")
                for service in services { await service.current.connection?.close() }
            }
        }
    }
}

/// Work that must succeed before the worker reports started.
final class StartupTasks: Sendable {
    private let tasks = Mutex<[(name: String, body: @Sendable () async throws -> Void)]>([])
    let policy: ReconnectPolicy
    let logger: Logger

    init(policy: ReconnectPolicy, logger: Logger) {
        self.policy = policy
        self.logger = logger
    }

    func add(_ name: String, _ body: @escaping @Sendable () async throws -> Void) {
        tasks.withLock { $0.append((name, body)) }
    }

    /// Runs each task until it succeeds, with backoff between attempts.
    /// - Returns: false if the task was cancelled (shutdown) before all of them succeeded.
    func runAll() async -> Bool {
        for task in tasks.withLock({ $0 }) {
            var attempt = 0
            while true {
                do {
                    try await task.body()
                    logger.info("start-up task done", metadata: ["warren.startup.task": "\(task.name)"])
                    break
                } catch {
                    if Task.isCancelled { return false }
                    logger.warning("start-up task failed; retrying", metadata: [
                        "warren.startup.task": "\(task.name)", "warren.reason": "\(error)",
                    ])
                    do {
                        try await Task.sleep(for: policy.delay(forAttempt: attempt))
                    } catch {
                        return false
                    }
                    attempt += 1
                }
            }
        }
        return !Task.isCancelled
    }
}

/// Marks the worker started once the broker is connected (topology declared) and start-up tasks ran.
struct StartupService: Service {
    let subscriptions: [SubscriptionService]
    let tasks: StartupTasks
    let registry: HealthRegistry

    /// Returns normally when shutdown comes first (SIGTERM before the first connection or during a
    /// start-up task is a clean exit, not an error of the group).
    func run() async throws {
        await cancelWhenGracefulShutdown {
            for subscription in subscriptions { await subscription.waitUntilStarted() }
            guard !Task.isCancelled, await tasks.runAll() else { return }
            registry.markStarted()
            tasks.logger.info("started: ready once every readiness check passes")
        }
    }
}

/// Pauses each subscription while a check it needs fails (``SubscriptionOptions/needs``, or every check
/// added with `gatesConsumption`), resumes it when they all pass; logs each check transition once: its
/// first result (a check counts as failing until then) and every change between pass and fail, with
/// the reason of a failure.
struct ConsumptionGating: Sendable {
    let registry: HealthRegistry
    let subscriptions: [SubscriptionService]
    let logger: Logger
    /// Transitions are observed on each check's own task, concurrently: the gates are decided under
    /// this lock from the results as they are then, so a late observer of an old result cannot undo
    /// the decision of a newer one (the last decision always reflects the latest results).
    private let deciding = Serializer()

    final class Serializer: Sendable {
        private let lock = Mutex(())
        func withLock(_ body: () -> Void) { lock.withLock { _ in body() } }
    }

    func install() {
        let registry = registry
        let subscriptions = subscriptions
        let logger = logger
        let deciding = self.deciding
        registry.onTransition { transition in
            var metadata: Logger.Metadata = [
                "warren.check": "\(transition.check)", "warren.check.status": "\(transition.to.rawValue)",
            ]
            if let output = transition.output, transition.to == .fail { metadata["warren.reason"] = "\(output)" }
            if transition.to == .fail {
                logger.warning("check failing", metadata: metadata)
            } else {
                logger.info(transition.from == nil ? "check passing" : "check passing again", metadata: metadata)
            }
            deciding.withLock {
                guard !registry.isShuttingDown else { return }
                let failing = registry.results(kind: .readiness).filter { $0.result.status == .fail }
                for service in subscriptions {
                    Self.update(service, failing: failing, logger: logger)
                }
            }
        }
    }

    private static func update(_ service: SubscriptionService, failing: [(check: HealthCheck, result: HealthCheckResult)],
                               logger: Logger) {
        let needs = service.subscription.options.needs
        let blocking = failing.filter { needs?.contains($0.check.name) ?? $0.check.gatesConsumption }
        let gate = service.gate
        let queue: Logger.Metadata.Value = "\(service.subscription.topology.queue)"
        if blocking.isEmpty {
            if !gate.isOpen { logger.info("resuming consumption", metadata: ["warren.queue": queue]) }
            gate.set(open: true)
        } else if gate.isOpen {
            let names = blocking.map(\.check.name)
            let reasons = blocking.map { "\($0.check.name): \($0.result.output ?? "failing")" }
            logger.warning("pausing consumption: a dependency the handler needs is down or not checked yet", metadata: [
                "warren.queue": queue,
                "warren.checks": "\(names.joined(separator: ","))", "warren.reason": "\(reasons.joined(separator: "; "))",
            ])
            gate.set(open: false, reason: "\(names.joined(separator: ", ")) failing")
        }
    }
}
