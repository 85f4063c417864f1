import ArgumentParser
import Warren
import WarrenAMQP

/// `event-worker redrive [--count N]`: moves dead letters back to the work queue.
struct Redrive: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redrive", abstract: "Move dead letters from QUEUE.dead back to QUEUE (attempts reset), each confirmed before it is removed.")

    @Option(help: "At most this many (default: every dead letter present at the start).") var count: Int?
    @OptionGroup var broker: BrokerOptions

    func run() async throws {
        if let count, count < 0 { throw SettingError(setting: "--count", problem: "must not be negative") }
        let (_, connection, topology) = try await broker.connect(as: "event-worker redrive")
        let moved = try await topology.redrive(on: connection, limit: count)
        await connection.close()
        print("moved \(moved) dead letters from \(topology.deadLetterQueue) back to \(topology.queue)")
    }
}
