import Testing
import Warren
import WarrenAMQP

/// Every test that talks to the real servers lives under this suite: `.serialized` runs them one at
/// a time, because fault tests stop, freeze and restart the servers the others use.
@Suite(.serialized) struct Integration {}

extension AMQPConnection {
    /// Deletes what a worker declared for `queue`: the queue, its dead-letter queue and exchange, and
    /// every delay queue (`<queue>.retry.*`, found by the policies' delays given).
    func deleteTopology(of queue: String, retry: [RetryPolicy] = [RetryPolicy()]) async {
        let topology = Topology(queue: queue)
        _ = try? await deleteQueue(queue)
        _ = try? await deleteQueue(topology.deadLetterQueue)
        try? await deleteExchange(topology.deadLetterExchange)
        for delay in Set(retry.flatMap(\.delays)) { _ = try? await deleteQueue(topology.retryQueue(delay: delay)) }
    }
}
