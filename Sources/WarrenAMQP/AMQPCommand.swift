/// A request to the broker, described in Swift: ``AMQPConnection`` builds one, the owner thread's
/// adapter (``ConnectionOwner``) carries it out with librabbitmq and answers with an ``AMQPReply``.
enum AMQPCommand: Sendable {
    case declareExchange(ExchangeDeclaration)
    case declareQueue(QueueDeclaration)
    case bindQueue(queue: String, exchange: String, routingKey: String, arguments: AMQPTable)
    /// Replies with the number of messages purged.
    case purgeQueue(String)
    /// Replies with the number of messages the queue held.
    case deleteQueue(String)
    case deleteExchange(String)
    case setPrefetch(count: UInt16, global: Bool)
    /// Replies with the consumer tag; the deliveries then go to `deliveries`.
    case consume(Consumption)
    /// Replies once `cancel-ok` came and the deliveries sent before it are handed over.
    case cancel(consumerTag: String)
    /// A passive declare of `queue` (a round trip on the consumer's channel), then checks that the
    /// consumer is still registered once everything received before the reply has been handled.
    case verifyConsumer(tag: String, queue: String)
    /// Replies when the broker confirms the message.
    case publish(OutgoingMessage)

    /// What the command does, for error messages ("declare queue 'orders'").
    var what: String {
        switch self {
        case .declareExchange(let exchange): "declare exchange '\(exchange.name)'"
        case .declareQueue(let queue): "declare queue '\(queue.name)'"
        case .bindQueue(let queue, let exchange, _, _): "bind queue '\(queue)' to '\(exchange)'"
        case .purgeQueue(let name): "purge queue '\(name)'"
        case .deleteQueue(let name): "delete queue '\(name)'"
        case .deleteExchange(let name): "delete exchange '\(name)'"
        case .setPrefetch(let count, _): "set prefetch \(count)"
        case .consume(let consumption): "consume queue '\(consumption.queue)'"
        case .cancel(let tag): "cancel consumer '\(tag)'"
        case .verifyConsumer(let tag, let queue): "verify consumer '\(tag)' on queue '\(queue)'"
        case .publish: "publish"
        }
    }
}

/// `exchange.declare`.
struct ExchangeDeclaration: Sendable {
    var name: String
    var type: String
    var durable: Bool
    var autoDelete: Bool
    var isInternal: Bool
    var arguments: AMQPTable
    /// Only check that the exchange exists (404 NOT_FOUND when it does not).
    var passive = false
}

/// `queue.declare`; passive: only check that the queue exists and report its counts.
struct QueueDeclaration: Sendable {
    var name: String
    var passive = false
    var durable = false
    var exclusive = false
    var autoDelete = false
    var arguments: AMQPTable = [:]

    static func passive(_ name: String) -> QueueDeclaration {
        QueueDeclaration(name: name, passive: true)
    }
}

/// `basic.consume` with manual acknowledgements, and where its deliveries go.
struct Consumption: Sendable {
    var queue: String
    /// Empty: the broker makes one up.
    var tag: String
    var exclusive: Bool
    var arguments: AMQPTable
    /// The most deliveries handed over in one batch.
    var maxBatch: Int
    let deliveries: AsyncThrowingStream<[AMQPDelivery], any Error>.Continuation
}

/// `basic.publish`.
struct OutgoingMessage: Sendable {
    var body: [UInt8]
    var exchange: String
    var routingKey: String
    var properties: AMQPProperties
    var mandatory: Bool
}

/// The answer to an ``AMQPCommand``.
enum AMQPReply: Sendable, Equatable {
    case done
    case queue(AMQPQueueInfo)
    case messageCount(UInt32)
    case consumerTag(String)
}

/// A command queued for the owner thread, and the continuation its reply resumes.
struct PendingCommand: Sendable {
    let command: AMQPCommand
    let reply: CheckedContinuation<AMQPReply, any Error>
}
