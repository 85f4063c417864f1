import WarrenAMQP

/// The queue type a subscription declares.
public enum QueueType: String, Sendable, CaseIterable {
    /// A classic queue: one node, the default.
    case classic
    /// A quorum queue: replicated with Raft, what a RabbitMQ cluster runs for durability.
    case quorum
}

/// The broker objects a subscription needs: a durable work queue `<queue>` that dead-letters into
/// exchange `<queue>.dlx`, which routes to the durable queue `<queue>.dead`.
public struct Topology: Sendable, Equatable {
    public var queue: String
    public var queueType: QueueType

    public init(queue: String, queueType: QueueType = .classic) {
        self.queue = queue
        self.queueType = queueType
    }

    /// The dead-letter exchange, `<queue>.dlx`.
    public var deadLetterExchange: String { "\(queue).dlx" }
    /// The dead-letter queue, `<queue>.dead`.
    public var deadLetterQueue: String { "\(queue).dead" }

    /// Declares everything; idempotent while the arguments stay the same. A queue that exists with
    /// other arguments fails with the broker's 406 PRECONDITION_FAILED, which names the argument.
    public func declare(on connection: AMQPConnection) async throws {
        let type: AMQPTable = ["x-queue-type": .string(queueType.rawValue)]
        try await connection.declareExchange(deadLetterExchange, type: "fanout", durable: true)
        try await connection.declareQueue(deadLetterQueue, durable: true, arguments: type)
        try await connection.bindQueue(deadLetterQueue, exchange: deadLetterExchange)
        try await connection.declareQueue(queue, durable: true, arguments: type.merging(
            ["x-dead-letter-exchange": .string(deadLetterExchange)], uniquingKeysWith: { a, _ in a }))
    }
}
