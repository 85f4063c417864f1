import WarrenAMQP

/// What a worker consumes and how: a queue, a handler, and the limits around it.
public struct Subscription: Sendable {
    /// The queue and its dead-letter companions.
    public var topology: Topology
    /// Unacknowledged deliveries the broker may push ahead (`basic.qos`).
    public var prefetch: UInt16
    /// Handlers running at once (at most `prefetch`).
    public var concurrency: Int
    /// Deliveries of a failing message before it is dead-lettered.
    public var maxAttempts: Int
    /// Decides each message's fate. Runs on Swift concurrency; it must not block a thread.
    public var handler: @Sendable (AMQPDelivery) async -> MessageOutcome

    public init(
        queue: String,
        queueType: QueueType = .classic,
        prefetch: UInt16 = 100,
        concurrency: Int = 16,
        maxAttempts: Int = 3,
        handler: @escaping @Sendable (AMQPDelivery) async -> MessageOutcome
    ) {
        precondition(prefetch > 0, "Subscription: prefetch must be positive")
        precondition(concurrency > 0, "Subscription: concurrency must be positive")
        precondition(maxAttempts > 0, "Subscription: maxAttempts must be positive")
        self.topology = Topology(queue: queue, queueType: queueType)
        self.prefetch = prefetch
        self.concurrency = min(concurrency, Int(prefetch))
        self.maxAttempts = maxAttempts
        self.handler = handler
    }
}
