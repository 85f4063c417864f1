import Logging
import Tracing
import WarrenAMQP

/// Publishes messages and waits for the broker's publisher confirm. ``AMQPConnection`` is one;
/// `WarrenTesting` records publishes instead.
public protocol MessagePublisher: Sendable {
    /// Publishes `body` and returns once the broker confirmed it; throws when it was refused or the
    /// connection failed (then it may or may not have been routed).
    func publish(_ body: [UInt8], exchange: String, routingKey: String, properties: AMQPProperties,
                 mandatory: Bool) async throws
}

extension AMQPConnection: MessagePublisher {}

/// Throw it from a handler when a dependency it needs is down: the message goes back to the queue
/// without counting as an attempt, and is never dead-lettered for it. Pair it with a readiness check of
/// that dependency (added with `gatesConsumption`, or named in ``SubscriptionOptions/needs``) so
/// consumption pauses until the dependency is back instead of redelivering in a loop.
public struct DependencyUnavailable: Error, CustomStringConvertible {
    /// The dependency, e.g. `postgres`.
    public var dependency: String
    /// What failed.
    public var reason: String

    /// The handler cannot work because `dependency` (a check's name, e.g. `postgres`) is down, for `reason`.
    public init(_ dependency: String, reason: String) {
        self.dependency = dependency
        self.reason = reason
    }

    /// `<dependency> unavailable: <reason>`: the reason logged when the message is requeued.
    public var description: String { "\(dependency) unavailable: \(reason)" }
}

/// Throw it from a handler when the message itself is wrong (a value the handler cannot accept): it
/// is dead-lettered at once with `reason`, never retried.
public struct InvalidMessage: Error, CustomStringConvertible {
    /// Why the message is refused: logged, and the dead letter's reason.
    public var reason: String

    /// A message refused for `reason`.
    public init(_ reason: String) {
        self.reason = reason
    }

    /// The reason.
    public var description: String { reason }
}

/// A handler's view of the message it handles and of the broker: the delivery's metadata, a logger
/// with the message's ids as metadata, and a publisher with confirms.
///
/// Publish from a handler to hand a result on (consume-then-publish): the publish returns once the
/// broker confirmed it, so when a handler returns, everything it published is safe. If a publish is
/// not confirmed it throws; let it propagate and the input message is retried instead of acked.
public struct MessageContext: Sendable {
    /// The queue the message was consumed from.
    public let queue: String
    /// All properties of the message, headers included.
    public let properties: AMQPProperties
    /// The exchange it was published to (`""`: the default exchange); on a retry, still the first
    /// publish's, not the delay queue's.
    public let exchange: String
    /// The routing key it was published with (on a retry, still the first publish's).
    public let routingKey: String
    /// True when the broker delivered it before.
    public let redelivered: Bool
    /// This delivery's attempt at the handler, from 1.
    public let attempt: Int
    /// Logs with `warren.queue` and, when set, `warren.message_id` / `warren.correlation_id`.
    public let logger: Logger
    let publisher: any MessagePublisher
    let encoder: any MessageEncoder

    /// The message headers.
    public var headers: AMQPTable { properties.headers }
    /// The publisher's `message-id`, if it set one.
    public var messageID: String? { properties.messageID }
    /// The `correlation-id`, if set: carried onto what the handler publishes.
    public var correlationID: String? { properties.correlationID }
    /// Where the sender wants a reply (``reply(_:properties:)``), if anywhere.
    public var replyTo: String? { properties.replyTo }

    /// The context of `delivery`; with `tracing`, its logger carries the consumer span's `trace_id` and
    /// `span_id`.
    init(queue: String, delivery: AMQPDelivery, attempt: Int, publisher: any MessagePublisher,
         encoder: any MessageEncoder, logger: Logger, tracing: (tracer: MessageTracer, span: any Span)? = nil) {
        self.queue = queue
        self.properties = delivery.properties
        self.exchange = delivery.originalExchange
        self.routingKey = delivery.originalRoutingKey
        self.redelivered = delivery.redelivered
        self.attempt = attempt
        self.publisher = publisher
        self.encoder = encoder
        var logger = logger
        if let id = delivery.properties.messageID { logger[metadataKey: "warren.message_id"] = "\(id)" }
        if let id = delivery.properties.correlationID { logger[metadataKey: "warren.correlation_id"] = "\(id)" }
        if let (tracer, span) = tracing {
            for (key, value) in tracer.logMetadata(of: span) { logger[metadataKey: key] = "\(value)" }
        }
        self.logger = logger
    }

    /// Encodes `message` (JSON unless the subscription says otherwise) and publishes it to `exchange`
    /// with `routingKey`, persistent, carrying this message's correlation id (unless `properties` sets
    /// one); returns once the broker confirmed it.
    public func publish<Message: Encodable>(_ message: Message, to exchange: String = "", routingKey: String,
                                            properties: AMQPProperties = AMQPProperties(deliveryMode: 2)) async throws {
        try await publish(body: try encoder.encode(message), to: exchange, routingKey: routingKey,
                          properties: outgoing(properties, contentType: encoder.contentType))
    }

    /// Publishes raw bytes, as given (no properties added); returns once the broker confirmed them.
    public func publish(body: [UInt8], to exchange: String = "", routingKey: String,
                        properties: AMQPProperties = AMQPProperties(deliveryMode: 2)) async throws {
        // A child of this message's span (the task's current context, set around the handler), whose
        // context travels in the headers to the next consumer.
        try await publisher.tracedPublish(body, exchange: exchange, routingKey: routingKey, properties: properties)
    }

    /// Replies to the sender: publishes `message` to the default exchange with the message's
    /// `reply-to` as routing key and its correlation id (request/reply over RabbitMQ).
    /// - Throws: ``InvalidMessage`` when the message has no `reply-to` (it is then dead-lettered).
    public func reply<Message: Encodable>(_ message: Message, properties: AMQPProperties = AMQPProperties()) async throws {
        guard let replyTo, !replyTo.isEmpty else {
            throw InvalidMessage("a reply was asked for, but the message has no reply-to")
        }
        try await publish(body: try encoder.encode(message), to: "", routingKey: replyTo,
                          properties: outgoing(properties, contentType: encoder.contentType))
    }

    private func outgoing(_ properties: AMQPProperties, contentType: String) -> AMQPProperties {
        var properties = properties
        if properties.contentType == nil { properties.contentType = contentType }
        if properties.correlationID == nil { properties.correlationID = correlationID }
        return properties
    }
}
