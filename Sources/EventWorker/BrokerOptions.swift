import ArgumentParser
import Warren
import WarrenAMQP

/// The broker and queue of the one-shot commands (`publish`, `redrive`): flags win over the environment.
struct BrokerOptions: ParsableArguments {
    @Option(name: .customLong("amqp-url"), help: "AMQP_URL") var amqpURL: String?
    @Option(help: "QUEUE") var queue: String?
    @Option(name: .customLong("queue-type"), help: "QUEUE_TYPE: classic or quorum") var queueType: String?

    /// Connects as `name` and declares the queue's topology (its delay queues included), so that what
    /// the command publishes is kept even before any worker ran.
    func connect(as name: String) async throws -> (Settings, AMQPConnection, Topology) {
        var flags: [String: String] = [:]
        flags["AMQP_URL"] = amqpURL
        flags["QUEUE"] = queue
        flags["QUEUE_TYPE"] = queueType
        let settings = try Settings.resolve(flags: flags, environment: currentEnvironment())
        var amqp = settings.amqp
        amqp.connectionName = name
        let connection = try await AMQPConnection.connect(configuration: amqp)
        let topology = Topology(queue: settings.queue, queueType: settings.queueType)
        do {
            try await topology.declare(on: connection, retry: settings.retry)
        } catch {
            await connection.close()
            throw error
        }
        return (settings, connection, topology)
    }
}
