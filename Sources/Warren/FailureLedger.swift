import Synchronization
import WarrenAMQP

/// Counts handler failures per message inside this process, so that redelivery stays bounded on
/// classic queues, where the broker only says `redelivered` (quorum queues count in
/// `x-delivery-count`). A message is known by its `message-id`, or else by a hash of its body.
/// Bounded: it forgets everything past `capacity` entries (a message then gets a few extra tries).
final class FailureLedger: Sendable {
    private let failures = Mutex<[Int: Int]>([:])
    private let capacity: Int

    init(capacity: Int = 10_000) {
        self.capacity = capacity
    }

    /// The attempt this delivery is: the larger of the broker's count and ours.
    func attempt(of delivery: AMQPDelivery) -> Int {
        let ours = failures.withLock { $0[Self.key(delivery)] ?? 0 } + 1
        return max(deliveryAttempt(of: delivery), ours)
    }

    /// Records a failure that will be redelivered.
    func recordFailure(_ delivery: AMQPDelivery) {
        failures.withLock { failures in
            if failures.count >= capacity { failures.removeAll(keepingCapacity: true) }
            failures[Self.key(delivery), default: 0] += 1
        }
    }

    /// Forgets a message that is settled for good (acked or dead-lettered).
    func forget(_ delivery: AMQPDelivery) {
        failures.withLock { failures in
            guard !failures.isEmpty else { return }
            failures.removeValue(forKey: Self.key(delivery))
        }
    }

    private static func key(_ delivery: AMQPDelivery) -> Int {
        var hasher = Hasher()
        if let id = delivery.properties.messageID { hasher.combine(id) } else { hasher.combine(delivery.body) }
        return hasher.finalize()
    }
}
