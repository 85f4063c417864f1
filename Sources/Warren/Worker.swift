import CoreMetrics
import Logging
import ServiceLifecycle
import WarrenAMQP
import WarrenHealth
import WarrenHTTP

/// Settings of a ``Worker`` beyond its subscription.
public struct WorkerConfiguration: Sendable {
    /// The broker.
    public var amqp: AMQPConfiguration
    /// Address and port of the health side port.
    public var healthHost: String
    public var healthPort: Int
    /// How long in-flight handlers may run after SIGTERM before the connection is closed anyway
    /// (their messages then go back to the queue). Keep it below Kubernetes' 30 s grace period.
    public var drainTimeout: Duration
    /// Reconnect backoff.
    public var reconnectPolicy: ReconnectPolicy
    /// Liveness fails when the cooperative pool or the AMQP I/O thread is silent this long.
    public var stallThreshold: Duration

    public init(
        amqp: AMQPConfiguration = AMQPConfiguration(),
        healthHost: String = "0.0.0.0",
        healthPort: Int = 8080,
        drainTimeout: Duration = .seconds(20),
        reconnectPolicy: ReconnectPolicy = ReconnectPolicy(initialDelay: .milliseconds(100), maximumDelay: .seconds(1)),
        stallThreshold: Duration = .seconds(5)
    ) {
        self.amqp = amqp
        self.healthHost = healthHost
        self.healthPort = healthPort
        self.drainTimeout = drainTimeout
        self.reconnectPolicy = reconnectPolicy
        self.stallThreshold = stallThreshold
    }
}

/// A complete worker: the subscription, the health side port, readiness-gated consumption and
/// graceful shutdown on SIGTERM/SIGINT.
///
/// ```swift
/// let worker = Worker(configuration: .init(amqp: try AMQPConfiguration(url: url)),
///                     subscription: Subscription(queue: "jobs") { delivery in .ack },
///                     logger: logger)
/// worker.addCheck(.redis(redisClient))
/// try await worker.run()
/// ```
public final class Worker: Sendable {
    public let configuration: WorkerConfiguration
    public let registry: HealthRegistry
    public let watchdog: LivenessWatchdog
    public let subscription: SubscriptionService
    let logger: Logger
    private let startupTasks: StartupTasks
    let metrics: WorkerMetrics

    /// - Parameters:
    ///   - registry: where checks live; pass one in when a handler needs to read check results.
    ///   - metricsFactory: where metrics go (see ``WarrenMetrics``); by default the `MetricsSystem`,
    ///     which must then be bootstrapped before this init.
    public init(configuration: WorkerConfiguration, subscription: Subscription,
                registry: HealthRegistry = HealthRegistry(), logger: Logger,
                metricsFactory: any MetricsFactory = MetricsSystem.factory) {
        self.configuration = configuration
        self.logger = logger
        self.registry = registry
        self.watchdog = LivenessWatchdog(stallThreshold: configuration.stallThreshold)
        self.metrics = WorkerMetrics(factory: metricsFactory)
        self.subscription = SubscriptionService(subscription: subscription, configuration: configuration.amqp,
                                                reconnectPolicy: configuration.reconnectPolicy, logger: logger,
                                                metricsFactory: metricsFactory)
        self.startupTasks = StartupTasks(policy: configuration.reconnectPolicy, logger: logger)
        registry.register(.rabbitmq(self.subscription))
        // Readiness follows a (re)registered consumer at once, not at the check's next turn.
        self.subscription.onConsuming { [registry] in Task { await registry.evaluate("rabbitmq") } }
        let service = self.subscription
        watchdog.watch(thread: "amqp-io") { service.current.connection?.lastIOTick }
    }

    /// Adds a readiness (or startup) check. Checks with `gatesConsumption` pause consumption while failing.
    public func addCheck(_ check: HealthCheck) { registry.register(check) }

    /// Adds work that must succeed before the worker reports started (e.g. migrations); retried with
    /// backoff until it does.
    public func addStartupTask(_ name: String, _ body: @escaping @Sendable () async throws -> Void) {
        startupTasks.add(name, body)
    }

    /// The side-port routes: probes. Add your own (e.g. ``addMetricsRoute(to:contentType:render:)``)
    /// before calling ``run(router:)``.
    public func makeRouter() -> HTTPRouter {
        var router = HTTPRouter()
        router.addHealthRoutes(HealthReporter(registry: registry, watchdog: watchdog))
        return router
    }

    /// Copies the values Warren reads rather than records as they happen — check status and duration
    /// (staleness applied), event-loop lag — into their gauges. The worker does it once a second while it
    /// runs, and the `/metrics` route before each scrape.
    public func sampleMetrics() {
        metrics.sample(registry: registry, watchdog: watchdog)
    }

    /// Adds `GET /metrics` to `router`: samples the gauges (``sampleMetrics()``), then answers with
    /// `render()`, the exposition of the metrics backend the executable bootstrapped, e.g. swift-prometheus:
    ///
    /// ```swift
    /// let prometheus = PrometheusCollectorRegistry()
    /// MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: prometheus))
    /// // … create the Worker …
    /// var router = worker.makeRouter()
    /// worker.addMetricsRoute(to: &router) { prometheus.emitToBuffer() }
    /// try await worker.run(router: router)
    /// ```
    ///
    /// The route runs on the side port's NIO event loop, like the probes, so a scrape answers (and
    /// shows the lag) even while Swift's cooperative pool is stuck; `render` must not block or wait.
    public func addMetricsRoute(to router: inout HTTPRouter, contentType: String = WarrenMetrics.prometheusContentType,
                                render: @escaping @Sendable () -> [UInt8]) {
        router.get(HealthPaths.metrics, .immediate { [self] _ in
            sampleMetrics()
            var response = HTTPResponse(status: .ok, bytes: render(), contentType: contentType)
            response.headers.replaceOrAdd(name: "Cache-Control", value: "no-store")
            return response
        })
    }

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully: readiness fails at once, the consumer
    /// is cancelled, in-flight handlers finish (up to the drain timeout), connections close.
    public func run(router: HTTPRouter? = nil) async throws {
        let server = HTTPServer(
            configuration: HTTPServerConfiguration(host: configuration.healthHost, port: configuration.healthPort),
            router: router ?? makeRouter(), logger: logger)
        try await server.start()
        logger.info("health side port listening", metadata: ["warren.health.port": "\(configuration.healthPort)"])
        ConsumptionGating(registry: registry, gate: subscription.gate, logger: logger).install()
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [
                .init(service: server),
                .init(service: HealthService(registry: registry, watchdog: watchdog, sampleMetrics: sampleMetrics)),
                .init(service: StartupService(subscription: subscription, tasks: startupTasks, registry: registry),
                      successTerminationBehavior: .ignore),
                .init(service: SubscriptionRunner(service: subscription, registry: registry,
                                                  drainTimeout: configuration.drainTimeout, logger: logger),
                      successTerminationBehavior: .gracefullyShutdownGroup),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
        logger.info("stopped")
    }
}
