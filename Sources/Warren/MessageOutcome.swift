import WarrenAMQP

/// What a handler decided about a message, and so how it is settled with the broker.
public enum MessageOutcome: Sendable, Equatable {
    /// Done: acknowledge, the broker forgets it.
    case ack
    /// The message itself is bad (not JSON, wrong shape): reject without requeue, so it goes to
    /// `<queue>.dead`. Logged once with the reason; never retried.
    case deadLetter(reason: String)
    /// A dependency the handler needs is down: requeue, never dead-letter; consumption pauses
    /// until readiness passes again.
    case requeue(reason: String)
    /// The handler failed: redeliver, up to the subscription's attempt limit, then dead-letter.
    case retry(reason: String)
}

/// How often a message has been delivered, as far as the broker tells.
///
/// Quorum queues count deliveries in `x-delivery-count`; classic queues only say `redelivered`,
/// so a redelivered classic message counts as attempt 2.
func deliveryAttempt(of delivery: AMQPDelivery) -> Int {
    if let count = delivery.properties.headers["x-delivery-count"]?.intValue {
        return Int(count) + 1
    }
    return delivery.redelivered ? 2 : 1
}
