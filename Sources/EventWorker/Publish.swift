import ArgumentParser
import Warren
import WarrenAMQP

/// `event-worker publish --count N`: publishes example events with publisher confirms.
struct Publish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Publish N example events to QUEUE, each confirmed by the broker.")

    @Option(help: "How many events.") var count: Int = 10
    @Option(name: .customLong("amqp-url"), help: "AMQP_URL") var amqpURL: String?
    @Option(help: "QUEUE") var queue: String?
    @Option(name: .customLong("queue-type"), help: "QUEUE_TYPE: classic or quorum") var queueType: String?

    func run() async throws {
        guard count >= 0 else { throw SettingError(setting: "--count", problem: "must not be negative") }
        var flags: [String: String] = [:]
        flags["AMQP_URL"] = amqpURL
        flags["QUEUE"] = queue
        flags["QUEUE_TYPE"] = queueType
        let settings = try Settings.resolve(flags: flags, environment: currentEnvironment())
        var amqp = settings.amqp
        amqp.connectionName = "event-worker publish"
        let connection = try await AMQPConnection.connect(configuration: amqp)
        // Declare first, so events published before any worker started are kept.
        try await Topology(queue: settings.queue, queueType: settings.queueType).declare(on: connection, retry: settings.retry)
        let queue = settings.queue
        let window = 256
        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in 0..<count {
                if n >= window { try await group.next() }
                group.addTask {
                    try await connection.publish(Event.example(n), routingKey: queue, properties: .persistentJSON)
                }
            }
            try await group.waitForAll()
        }
        await connection.close()
        print("published \(count) events to \(queue)")
    }
}
