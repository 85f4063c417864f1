import ArgumentParser
import CoreMetrics
import Logging
import Prometheus
import Warren
import WarrenAMQP
import WarrenHealth
import WarrenPostgres
import WarrenRedis

/// `event-worker run`: consume until SIGTERM.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Consume QUEUE until SIGTERM/SIGINT (the default).")

    @OptionGroup var options: SettingOptions

    func run() async throws {
        let settings = try options.resolve()
        LoggingSystem.bootstrap { label in
            LineLogHandler(label: label, format: settings.logFormat, level: settings.logLevel)
        }
        let logger = Logger(label: "event-worker")
        // Before the worker: the tracer must be bootstrapped when its consumers start.
        let tracing = try TracingExport.bootstrap(environment: currentEnvironment())
        logger.info("starting event-worker", metadata: settings.summary.merging(["warren.version": "\(WarrenBuild.version)"]) { a, _ in a })
        // Before any metric object exists: Warren makes them once, when the Worker is created.
        let prometheus = PrometheusCollectorRegistry()
        var metricsFactory = PrometheusMetricsFactory(registry: prometheus)
        metricsFactory.durationHistogramBuckets = [WarrenMetrics.handlerDuration: WarrenMetrics.handlerDurationBuckets]
        MetricsSystem.bootstrap(metricsFactory)

        let registry = HealthRegistry()
        let redis = RedisClient(configuration: settings.redis)
        let postgres = PostgresClient(configuration: settings.postgres)
        let job = IngestJob(redis: redis, postgres: postgres, registry: registry)
        let worker = Worker(
            configuration: WorkerConfiguration(
                amqp: settings.amqp, healthHost: settings.healthHost, healthPort: settings.healthPort,
                drainTimeout: settings.drainTimeout),
            subscription: settings.subscription(job: job),
            registry: registry,
            logger: logger)
        if settings.handler == .ingest {
            try worker.addCheck(.redis(redis))
            try worker.addCheck(.postgres(postgres, gatesConsumption: true))
            try worker.addStartupTask("create table events") { try await job.migrate() }
        }
        try worker.addMetricsRoute { prometheus.emitToBuffer() }
        try await worker.runUntilSignalled(alongside: tracing.map { [$0] } ?? [])
        await redis.shutdown()
        await postgres.shutdown()
    }
}
