import ArgumentParser
import Warren
import WarrenAMQP

/// `event-worker redrive [--count N]`: moves dead letters back to the work queue.
struct Redrive: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Move dead letters from QUEUE.dead back to QUEUE (attempts reset), each confirmed before it is removed.")

    @Option(help: "At most this many (default: every dead letter present at the start).") var count: Int?
    @Option(name: .customLong("amqp-url"), help: "AMQP_URL") var amqpURL: String?
    @Option(help: "QUEUE") var queue: String?
    @Option(name: .customLong("queue-type"), help: "QUEUE_TYPE: classic or quorum") var queueType: String?

    func run() async throws {
        if let count, count < 0 { throw SettingError(setting: "--count", problem: "must not be negative") }
        var flags: [String: String] = [:]
        flags["AMQP_URL"] = amqpURL
        flags["QUEUE"] = queue
        flags["QUEUE_TYPE"] = queueType
        let settings = try Settings.resolve(flags: flags, environment: currentEnvironment())
        var amqp = settings.amqp
        amqp.connectionName = "event-worker redrive"
        let connection = try await AMQPConnection.connect(configuration: amqp)
        let topology = Topology(queue: settings.queue, queueType: settings.queueType)
        // The work queue and its delay queues exist before anything is moved into them.
        try await topology.declare(on: connection, retry: settings.retry)
        let moved = try await topology.redrive(on: connection, limit: count)
        await connection.close()
        print("moved \(moved) dead letters from \(topology.deadLetterQueue) back to \(topology.queue)")
    }
}
