import Foundation
import Logging
import Synchronization
import Warren
import WarrenAMQP
import WarrenHealth
import WarrenHTTP
import WarrenTestSupport

/// Captures every log line, so tests can prove that no secret reaches a log.
final class LogCapture: Sendable {
    let lines = Mutex<[String]>([])

    func handler(label: String) -> LogHandler {
        CapturingHandler(label: label, capture: self)
    }

    var all: String { lines.withLock { $0.joined(separator: "\n") } }

    struct CapturingHandler: LogHandler {
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        let label: String
        let capture: LogCapture

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var merged = metadata
            if let extra = event.metadata { merged.merge(extra) { _, new in new } }
            let line = "\(event.level) \(label): \(event.message) \(merged)"
            capture.lines.withLock { $0.append(line) }
        }
    }
}

/// A health side port wired like the worker's: registry, watchdog, HTTP server, and a subscription
/// that keeps a consumer on a real broker for the `rabbitmq` check.
final class HealthHarness: Sendable {
    let registry = HealthRegistry(staleAfter: .seconds(3))
    let watchdog: LivenessWatchdog
    let server: HTTPServer
    let logs = LogCapture()
    let service: SubscriptionService
    let port: Int
    private let tasks = Mutex<[Task<Void, Never>]>([])

    init(stallThreshold: Duration = .seconds(2), extraChecks: [HealthCheck] = [], amqpURL: String = Servers.amqpURL,
         waitForStart: Bool = true) async throws {
        let logs = self.logs
        let logger = Logger(label: "warren.test") { logs.handler(label: $0) }
        watchdog = LivenessWatchdog(stallThreshold: stallThreshold, tickInterval: .milliseconds(50))
        var amqp = try AMQPConfiguration(url: amqpURL, connectionName: "warren-health-test")
        amqp.heartbeat = 2
        service = SubscriptionService(
            subscription: Subscription(Topology(queue: uniqueName("health")), options: SubscriptionOptions(prefetch: 10, concurrency: 1)) { _ in .ack },
            configuration: amqp,
            reconnectPolicy: ReconnectPolicy(initialDelay: .milliseconds(100), maximumDelay: .milliseconds(500)),
            logger: logger
        )
        registry.register(.rabbitmq(service, timeout: .milliseconds(500), interval: .milliseconds(250)))
        for check in extraChecks { registry.register(check) }
        let service = self.service
        watchdog.watch(thread: "amqp-io") { service.current.connection?.lastIOTick }
        var router = HTTPRouter()
        router.addHealthRoutes(HealthReporter(registry: registry, watchdog: watchdog))
        server = HTTPServer(configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0), router: router, logger: logger)
        port = try await server.start()
        let registry = self.registry
        let watchdog = self.watchdog
        tasks.withLock {
            $0 = [
                Task { await service.run() },
                Task { await registry.run() },
                Task { await watchdog.run() },
            ]
        }
        if waitForStart {
            await service.waitUntilStarted()
            registry.markStarted()
        }
    }

    func stop() async {
        service.stop()
        for task in tasks.withLock({ $0 }) { task.cancel() }
        await server.shutdown()
        if let connection = service.current.connection {
            await connection.deleteTopology(of: service.subscription.topology.queue)
        }
    }

    /// GET (or HEAD) on the side port from a thread of its own; returns the response and its latency.
    func probe(_ path: String, method: String = "GET") async throws -> (response: RawResponse, seconds: Double) {
        let port = self.port
        return try await onThread {
            let start = monotonicSeconds()
            let response = try RawConnection.exchange(port: port, get(path, method: method), isHead: method == "HEAD", timeout: 3)
            return (response, monotonicSeconds() - start)
        }
    }

    /// Polls `path` until it answers `status`; returns the seconds it took, or nil after `timeout`.
    func waitForStatus(_ path: String, _ status: Int, timeout: Double) async throws -> Double? {
        let start = monotonicSeconds()
        while monotonicSeconds() - start < timeout {
            let (response, latency) = try await probe(path)
            if latency > 1 { throw Servers.Failure("probe \(path) took \(latency) s") }
            if response.status == status { return monotonicSeconds() - start }
            try await Task.sleep(for: .milliseconds(25))
        }
        return nil
    }
}
