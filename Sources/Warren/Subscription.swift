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
    /// The smallest chunk a delivery batch is cut into (1 for one-message handlers, so they run in
    /// parallel; larger for chunk handlers, which gain from fewer, bigger chunks).
    public var minimumChunk: Int
    /// Decides the fate of a chunk of messages, one outcome per delivery, in order. Runs on Swift
    /// concurrency; it must not block a thread.
    public var handler: @Sendable ([AMQPDelivery]) async -> [MessageOutcome]

    /// A subscription whose handler sees one message at a time.
    public init(
        queue: String,
        queueType: QueueType = .classic,
        prefetch: UInt16 = 100,
        concurrency: Int = 16,
        maxAttempts: Int = 3,
        handler: @escaping @Sendable (AMQPDelivery) async -> MessageOutcome
    ) {
        self.init(queue: queue, queueType: queueType, prefetch: prefetch, concurrency: concurrency,
                  maxAttempts: maxAttempts, minimumChunk: 1, batchHandler: { deliveries in
                      var outcomes: [MessageOutcome] = []
                      outcomes.reserveCapacity(deliveries.count)
                      for delivery in deliveries { outcomes.append(await handler(delivery)) }
                      return outcomes
                  })
    }

    /// A subscription whose handler sees chunks of messages: under load each delivery batch from the
    /// broker is split into at most `concurrency` chunks, so a handler can, say, insert a chunk with
    /// one statement. It must return exactly one outcome per delivery, in the same order.
    public init(
        queue: String,
        queueType: QueueType = .classic,
        prefetch: UInt16 = 100,
        concurrency: Int = 16,
        maxAttempts: Int = 3,
        minimumChunk: Int = 64,
        batchHandler: @escaping @Sendable ([AMQPDelivery]) async -> [MessageOutcome]
    ) {
        precondition(prefetch > 0, "Subscription: prefetch must be positive")
        precondition(concurrency > 0, "Subscription: concurrency must be positive")
        precondition(maxAttempts > 0, "Subscription: maxAttempts must be positive")
        self.topology = Topology(queue: queue, queueType: queueType)
        self.prefetch = prefetch
        self.concurrency = min(concurrency, Int(prefetch))
        self.maxAttempts = maxAttempts
        self.minimumChunk = max(1, minimumChunk)
        self.handler = batchHandler
    }
}
