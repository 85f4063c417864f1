import FoundationEssentials
import Logging
import Synchronization
import Warren
import WarrenAMQP

/// A message to hand a subscription's handler, as if the broker delivered it.
public struct TestMessage: Sendable {
    /// The body, as published.
    public var body: [UInt8]
    /// Properties and headers.
    public var properties: AMQPProperties
    /// The exchange it was published to (`""`: the default exchange).
    public var exchange: String
    /// The routing key it was published with.
    public var routingKey: String
    /// Whether the broker would say it delivered it before (implied by an attempt above 1).
    public var redelivered: Bool

    /// A message with these bytes and properties (none by default).
    public init(body: [UInt8], properties: AMQPProperties = AMQPProperties(), exchange: String = "",
                routingKey: String = "", redelivered: Bool = false) {
        self.body = body
        self.properties = properties
        self.exchange = exchange
        self.routingKey = routingKey
        self.redelivered = redelivered
    }

    /// `value` as JSON, with content type `application/json`.
    public static func json<Value: Encodable>(_ value: Value, properties: AMQPProperties = AMQPProperties(),
                                              exchange: String = "", routingKey: String = "") throws -> TestMessage {
        var properties = properties
        if properties.contentType == nil { properties.contentType = "application/json" }
        return TestMessage(body: Array(try JSONEncoder().encode(value)), properties: properties, exchange: exchange,
                           routingKey: routingKey)
    }
}

/// A message a handler published (and that the tester confirmed).
public struct PublishedMessage: Sendable, Equatable {
    /// The exchange it went to (`""`: the default exchange).
    public var exchange: String
    /// Its routing key (for a reply: the requester's `reply-to`).
    public var routingKey: String
    /// The encoded body.
    public var body: [UInt8]
    /// Its properties: content type, correlation id, delivery mode, headers.
    public var properties: AMQPProperties

    /// The body decoded as JSON.
    public func decode<Value: Decodable>(_ type: Value.Type = Value.self) throws -> Value {
        try JSONDecoder().decode(type, from: Data(body))
    }
}

/// What happened to one message: the handler's outcome and what it published meanwhile.
public struct TestOutcome: Sendable {
    /// What the worker would do with the message: ack, retry, requeue or dead-letter.
    public var outcome: MessageOutcome
    /// What the handler published while handling it, in order.
    public var published: [PublishedMessage]
}

/// Runs a ``Subscription``'s handler on in-memory messages — the same decoding, context, publisher
/// and error-to-outcome mapping the worker uses — and records outcomes and publishes. No broker, no
/// network: a test of a handler is a plain unit test.
///
/// ```swift
/// let tester = SubscriptionTester(receipts)
/// let result = try await tester.deliver(.json(OrderPlaced(id: "o-1", total: 42), routingKey: "order.eu.placed"))
/// #expect(result.outcome == .ack)
/// #expect(try result.published.first?.decode(Receipt.self).order == "o-1")
/// ```
///
/// What the tester does not do is what the broker and the worker do around a handler: redelivery
/// after `.retry`, dead-lettering after the attempts run out, pausing. Test those against a broker.
public final class SubscriptionTester: Sendable {
    /// Thrown by the tester's publisher while ``failPublishes(with:)`` is set, as an unconfirmed
    /// publish would be.
    public struct PublishRefused: Error, CustomStringConvertible {
        /// Why the publish failed.
        public var description: String

        /// A refusal saying `description`.
        public init(_ description: String = "not confirmed (SubscriptionTester)") {
            self.description = description
        }
    }

    /// The subscription whose handler runs.
    public let subscription: Subscription
    private let recorder = Recorder()
    private let logger: Logger

    /// A tester of `subscription`'s handler; `logger` is the context's logger.
    public init(_ subscription: Subscription, logger: Logger = Logger(label: "warren.testing")) {
        self.subscription = subscription
        self.logger = logger
    }

    /// Everything published so far, in order.
    public var published: [PublishedMessage] { recorder.state.withLock { $0.published } }

    /// Makes every publish fail with `error` (as a publish the broker refused or never confirmed), or
    /// succeed again with `nil`.
    public func failPublishes(with error: (any Error)? = PublishRefused()) {
        recorder.state.withLock { $0.failure = error }
    }

    /// Hands `message` to the handler as delivery attempt `attempt`; returns its outcome and what it
    /// published.
    public func deliver(_ message: TestMessage, attempt: Int = 1) async -> TestOutcome {
        let results = await deliver([message], attempt: attempt)
        return results[0]
    }

    /// Hands `messages` to the handler in one chunk (as the worker does under load); returns one
    /// result per message. A chunk handler's publishes are not attributed to single messages: each
    /// result then lists all of them.
    public func deliver(_ messages: [TestMessage], attempt: Int = 1) async -> [TestOutcome] {
        let before = published.count
        let deliveries = messages.enumerated().map { index, message in
            AMQPDelivery(testing: message.body, properties: message.properties, deliveryTag: UInt64(index + 1),
                         redelivered: message.redelivered || attempt > 1, exchange: message.exchange,
                         routingKey: message.routingKey)
        }
        let environment = HandlerEnvironment(queue: subscription.topology.queue, publisher: recorder, logger: logger,
                                             attempt: { _ in attempt })
        var outcomes = await subscription.handler(deliveries, environment)
        if outcomes.count != deliveries.count {
            let reason = "the chunk handler returned \(outcomes.count) outcomes for \(deliveries.count) deliveries"
            outcomes = Array(repeating: .retry(reason: reason), count: deliveries.count)
        }
        let publishedNow = Array(published.dropFirst(before))
        return outcomes.map { TestOutcome(outcome: $0, published: publishedNow) }
    }

    /// Records publishes instead of sending them.
    private final class Recorder: MessagePublisher {
        struct State {
            var published: [PublishedMessage] = []
            var failure: (any Error)?
        }

        let state = Mutex(State())

        func publish(_ body: [UInt8], exchange: String, routingKey: String, properties: AMQPProperties,
                     mandatory: Bool) async throws {
            try state.withLock { state in
                if let failure = state.failure { throw failure }
                state.published.append(PublishedMessage(exchange: exchange, routingKey: routingKey, body: body, properties: properties))
            }
        }
    }
}
