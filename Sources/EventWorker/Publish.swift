import ArgumentParser
import Warren
import WarrenAMQP

/// `event-worker publish --count N`: publishes example events with publisher confirms.
struct Publish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Publish N example events to QUEUE, each confirmed by the broker.")

    @Option(help: "How many events.") var count: Int = 10
    @OptionGroup var broker: BrokerOptions

    func run() async throws {
        guard count >= 0 else { throw SettingError(setting: "--count", problem: "must not be negative") }
        let (_, connection, topology) = try await broker.connect(as: "event-worker publish")
        let queue = topology.queue
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
