import ArgumentParser
import Logging
import ServiceLifecycle
import Warren
import WarrenAMQP

/// `event-worker publish --count N`: publishes example events with publisher confirms.
struct Publish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "publish", abstract: "Publish N example events to QUEUE, each confirmed by the broker.")

    @Option(help: "How many events.") var count: Int = 10
    @OptionGroup var broker: BrokerOptions

    func run() async throws {
        guard count >= 0 else { throw SettingError(setting: "--count", problem: "must not be negative") }
        // With OTEL_* set, each event starts a trace (a producer span) that the worker continues.
        let tracing = try TracingExport.bootstrap(environment: currentEnvironment())
        let (_, connection, topology) = try await broker.connect(as: "event-worker publish")
        let queue = topology.queue
        let count = self.count
        try await Self.whileExporting(tracing) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for n in 0..<count {
                    if n >= 256 { try await group.next() }  // 256 unconfirmed at most
                    group.addTask {
                        try await connection.tracedPublish(Event.example(n), routingKey: queue, properties: .persistentJSON)
                    }
                }
                try await group.waitForAll()
            }
        }
        await connection.close()
        print("published \(count) events to \(queue)")
    }

    /// Runs `body` while `exporter` (if any) runs, then shuts the exporter down so it flushes.
    static func whileExporting(_ exporter: (any Service)?, _ body: @escaping @Sendable () async throws -> Void) async throws {
        guard let exporter else { return try await body() }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [.init(service: exporter)],
                                                                         logger: Logger(label: "event-worker")))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                try await body()
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}
