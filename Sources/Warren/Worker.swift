import CoreMetrics
import Logging
import ServiceLifecycle
import Synchronization
import WarrenAMQP
import WarrenHealth
import WarrenHTTP

/// A complete worker: subscriptions, the health side port, readiness-gated consumption and graceful
/// shutdown. A swift-service-lifecycle `Service`: run it in your application's `ServiceGroup` (beside
/// an HTTP app, say), or alone with ``runUntilSignalled()``.
///
/// ```swift
/// let worker = Worker(configuration: WorkerConfiguration(amqp: try AMQPConfiguration(url: url)), logger: logger)
/// try worker.subscribe(Subscription("jobs") { (job: Job, context: MessageContext) in try await run(job) })
/// try worker.addCheck(.redis(redis, gatesConsumption: true))
/// try await worker.runUntilSignalled()   // SIGTERM/SIGINT: readiness 503, consumers cancelled, drain, close
/// ```
///
/// Shutdown, whichever triggers it (a signal, the group, cancellation): readiness fails at once, every
/// consumer is cancelled, in-flight handlers finish up to ``WorkerConfiguration/drainTimeout``, then
/// the connections close (the broker requeues whatever is still unacknowledged).
public final class Worker: Service, Sendable {
    /// What is fixed once the worker runs.
    private struct State {
        var running = false
        var subscriptions: [SubscriptionService] = []
        var metricsRoute: (contentType: String, render: @Sendable () -> [UInt8])?
    }

    /// The settings it was made with.
    public let configuration: WorkerConfiguration
    /// Where the checks live: read results here (e.g. from a handler).
    public let registry: HealthRegistry
    /// What `/internal/alive` reads: the cooperative pool's ticker and the AMQP I/O threads.
    public let watchdog: LivenessWatchdog
    let logger: Logger
    let metrics: WorkerMetrics
    private let metricsFactory: any MetricsFactory
    private let startupTasks: StartupTasks
    private let state: Mutex<State>
    private let reporter: HealthReporter

    /// - Parameters:
    ///   - registry: where checks live; pass one in when a handler needs to read check results.
    ///   - metricsFactory: where metrics go (see ``WarrenMetrics``); by default the `MetricsSystem`,
    ///     which must then be bootstrapped before this init.
    public init(configuration: WorkerConfiguration, registry: HealthRegistry = HealthRegistry(), logger: Logger,
                metricsFactory: any MetricsFactory = MetricsSystem.factory) {
        self.configuration = configuration
        self.logger = logger
        self.registry = registry
        self.metricsFactory = metricsFactory
        self.watchdog = LivenessWatchdog(stallThreshold: configuration.stallThreshold)
        self.metrics = WorkerMetrics(factory: metricsFactory)
        self.startupTasks = StartupTasks(policy: configuration.reconnectPolicy, logger: logger)
        self.state = Mutex(State())
        self.reporter = HealthReporter(registry: registry, watchdog: watchdog, version: configuration.version,
                                       releaseId: configuration.releaseId ?? configuration.version)
        // Weak: the registry and the watchdog belong to the worker, which must not be kept by them.
        registry.register(.rabbitmq { [weak self] in self?.subscriptions ?? [] })
        watchdog.watch(thread: "amqp-io") { [weak self] in
            // The most silent of the connections' I/O threads (nil while none is connected).
            self?.subscriptions.compactMap { $0.current.connection?.lastIOTick }.min()
        }
    }

    /// A worker with one subscription.
    public convenience init(configuration: WorkerConfiguration, subscription: Subscription,
                            registry: HealthRegistry = HealthRegistry(), logger: Logger,
                            metricsFactory: any MetricsFactory = MetricsSystem.factory) {
        self.init(configuration: configuration, registry: registry, logger: logger, metricsFactory: metricsFactory)
        try! self.subscribe(subscription)  // cannot fail: the worker is not running yet
    }

    // MARK: Configuring (before run)

    /// Adds a subscription: its own connection, topology, consumer and limits. The `rabbitmq` check
    /// proves every subscription's consumer is registered.
    /// - Returns: the service that runs it (its phase, its connection).
    /// - Throws: ``WorkerError`` once the worker runs.
    @discardableResult
    public func subscribe(_ subscription: Subscription) throws(WorkerError) -> SubscriptionService {
        let service = SubscriptionService(subscription: subscription, configuration: configuration.amqp,
                                          reconnectPolicy: configuration.reconnectPolicy, logger: logger,
                                          metricsFactory: metricsFactory)
        try whileConfiguring("subscribe(_:)") { $0.subscriptions.append(service) }
        // Readiness follows a (re)registered consumer at once, not at the check's next turn.
        service.onConsuming { [registry] in Task { await registry.evaluate("rabbitmq") } }
        return service
    }

    /// The subscriptions, in the order they were added.
    public var subscriptions: [SubscriptionService] { state.withLock { $0.subscriptions } }

    /// Adds a readiness (or startup) check. Checks with `gatesConsumption` pause the subscriptions that
    /// need them (see ``SubscriptionOptions/needs``) while failing.
    /// - Throws: ``WorkerError`` once the worker runs (a check added then would never be evaluated).
    public func addCheck(_ check: HealthCheck) throws(WorkerError) {
        try whileConfiguring("addCheck(_:)") { _ in registry.register(check) }
    }

    /// Adds work that must succeed before the worker reports started (e.g. migrations); retried with
    /// backoff until it does.
    /// - Throws: ``WorkerError`` once the worker runs.
    public func addStartupTask(_ name: String, _ body: @escaping @Sendable () async throws -> Void) throws(WorkerError) {
        try whileConfiguring("addStartupTask(_:_:)") { _ in startupTasks.add(name, body) }
    }

    /// Serves `GET /metrics` on the side port: samples the gauges (``sampleMetrics()``), then answers
    /// with `render()`, the exposition of the metrics backend the executable bootstrapped, e.g.
    /// swift-prometheus's `{ prometheus.emitToBuffer() }`. The route runs on the side port's event
    /// loop, like the probes, so a scrape answers (and shows the lag) even while Swift's cooperative
    /// pool is stuck; `render` must not block or wait.
    /// - Throws: ``WorkerError`` once the worker runs.
    public func addMetricsRoute(contentType: String = WarrenMetrics.prometheusContentType,
                                render: @escaping @Sendable () -> [UInt8]) throws(WorkerError) {
        try whileConfiguring("addMetricsRoute(contentType:render:)") { $0.metricsRoute = (contentType, render) }
    }

    /// Changes the configuration, or throws once the worker runs.
    private func whileConfiguring(_ what: String, _ body: (inout State) -> Void) throws(WorkerError) {
        try state.withLock { state throws(WorkerError) in
            guard !state.running else { throw .alreadyRunning(what) }
            body(&state)
        }
    }

    // MARK: Health

    /// The health routes as plain values, to mount on your own HTTP server.
    public var healthEndpoints: HealthEndpoints { HealthEndpoints(reporter: reporter) }

    /// Copies the values Warren reads rather than records as they happen — check status and duration
    /// (staleness applied), event-loop lag — into their gauges. The worker does it once a second while
    /// it runs, and the `/metrics` route before each scrape.
    public func sampleMetrics() {
        metrics.sample(registry: registry, watchdog: watchdog)
    }

    // MARK: Running

    /// Runs until the surrounding `ServiceGroup` shuts down gracefully (or the task is cancelled), then
    /// shuts down: readiness fails at once, consumers are cancelled, in-flight handlers finish (up to
    /// the drain timeout), connections close. A worker runs once.
    /// - Throws: ``WorkerError`` when it runs a second time or has no subscription; the side port's
    ///   bind error.
    public func run() async throws {
        let (subscriptions, metricsRoute) = try state.withLock { state throws(WorkerError) in
            guard !state.running else { throw .alreadyRunning("run()") }
            guard !state.subscriptions.isEmpty else { throw .noSubscription }
            state.running = true
            return (state.subscriptions, state.metricsRoute)
        }
        ConsumptionGating(registry: registry, subscriptions: subscriptions, logger: logger).install()
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let port = configuration.healthPort {
            services.append(.init(service: HTTPServer(
                configuration: HTTPServerConfiguration(host: configuration.healthHost, port: port),
                router: sidePortRouter(metricsRoute), logger: logger)))
        }
        services += [
            .init(service: HealthService(registry: registry, watchdog: watchdog, sampleMetrics: sampleMetrics)),
            .init(service: StartupService(subscriptions: subscriptions, tasks: startupTasks, registry: registry),
                  successTerminationBehavior: .ignore),
            // Last, so that it is the first to hear of shutdown (a group shuts down in reverse order).
            .init(service: SubscriptionRunner(services: subscriptions, registry: registry,
                                              drainTimeout: configuration.drainTimeout, logger: logger),
                  successTerminationBehavior: .gracefullyShutdownGroup),
        ]
        // A group of our own, run as a child of the caller's: it hears the caller's graceful shutdown.
        try await ServiceGroup(configuration: ServiceGroupConfiguration(services: services, logger: logger)).run()
        logger.info("stopped")
    }

    /// Runs the worker as its process's main service until SIGTERM or SIGINT; then shuts down as
    /// ``run()`` does.
    /// - Parameter services: run beside the worker in the same group, started before it and shut down
    ///   after it (e.g. a tracing exporter, which then flushes the worker's last spans).
    public func runUntilSignalled(alongside services: [any Service] = []) async throws {
        try await ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services.map { .init(service: $0) } + [.init(service: self)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)).run()
    }

    private func sidePortRouter(_ metricsRoute: (contentType: String, render: @Sendable () -> [UInt8])?) -> HTTPRouter {
        var router = HTTPRouter()
        router.addHealthRoutes(reporter)
        if let (contentType, render) = metricsRoute {
            router.get(HealthPaths.metrics, .immediate { [self] _ in
                sampleMetrics()
                var response = HTTPResponse(status: .ok, bytes: render(), contentType: contentType)
                response.headers.replaceOrAdd(name: "Cache-Control", value: "no-store")
                return response
            })
        }
        return router
    }
}
