import Logging
import Tracing
import WarrenAMQP

/// How a subscription consumes: limits, retries, and the checks it waits for.
public struct SubscriptionOptions: Sendable {
    /// Unacknowledged deliveries the broker may push ahead (`basic.qos`).
    public var prefetch: UInt16
    /// Handlers running at once (at most `prefetch`).
    public var concurrency: Int
    /// Delayed retries through the broker, and how many attempts before a message is dead-lettered.
    public var retry: RetryPolicy
    /// A handler (or chunk) still running after this is cancelled and its messages retried as failures
    /// (keep it well below RabbitMQ's `consumer_timeout`, 30 min by default). `nil`: no limit.
    public var handlerTimeout: Duration?
    /// The readiness checks this subscription's handler needs: while one of them fails, this
    /// subscription pauses (its consumer is cancelled; messages wait in the queue) and the others go
    /// on. `nil`: every check added with `gatesConsumption: true`.
    public var needs: Set<String>?
    /// Where the handlers run: the cooperative pool (the default), or the connection's I/O thread.
    public var handlerExecutor: HandlerExecutor

    /// Options; `concurrency` is capped at `prefetch`.
    public init(prefetch: UInt16 = 100, concurrency: Int = 16, retry: RetryPolicy = RetryPolicy(),
                handlerTimeout: Duration? = .seconds(30), needs: Set<String>? = nil,
                handlerExecutor: HandlerExecutor = .cooperativePool) {
        self.prefetch = prefetch
        self.concurrency = concurrency
        self.retry = retry
        self.handlerTimeout = handlerTimeout
        self.needs = needs
        self.handlerExecutor = handlerExecutor
    }

    /// Handler attempts before a message is dead-lettered (``RetryPolicy/maxAttempts``).
    public var maxAttempts: Int { retry.maxAttempts }
}

/// Where a subscription's handlers run.
public enum HandlerExecutor: Sendable, Equatable {
    /// Swift's cooperative pool: a handler may compute for as long as it needs; each batch of
    /// deliveries costs a hand-over from the connection's thread to the pool and back.
    case cooperativePool
    /// The connection's I/O thread (``WarrenAMQP/AMQPConnection/taskExecutor``): a delivery is read,
    /// handled and acknowledged by one thread, with no wake-up of another (on two cores, a no-op
    /// message costs about a third less CPU time). For handlers that await rather than compute: while a
    /// handler computes or blocks, the connection reads nothing and sends no heartbeat, and past the
    /// stall threshold liveness reports the I/O thread stuck.
    case connectionThread
}

/// What the subscription service (or `WarrenTesting`) gives a handler besides the deliveries.
package struct HandlerEnvironment: Sendable {
    /// The queue consumed.
    package var queue: String
    /// Publishes on the connection that delivered the messages.
    package var publisher: any MessagePublisher
    package var logger: Logger
    /// The attempt a delivery is, from 1.
    package var attempt: @Sendable (AMQPDelivery) -> Int
    /// The tracer, when one is bootstrapped.
    var tracer: MessageTracer?

    package init(queue: String, publisher: any MessagePublisher, logger: Logger, attempt: @escaping @Sendable (AMQPDelivery) -> Int) {
        self.queue = queue
        self.publisher = publisher
        self.logger = logger
        self.attempt = attempt
    }

    /// Runs `body` for one message inside its consumer span (when tracing), so that the handler's own
    /// spans, publishes and log lines belong to the message's trace; ends the span with the outcome.
    func traced(_ delivery: AMQPDelivery, _ body: (_ attempt: Int, _ span: (any Span)?) async -> MessageOutcome) async -> MessageOutcome {
        let attempt = attempt(delivery)
        guard let tracer else { return await body(attempt, nil) }
        let span = tracer.consumerSpan(for: delivery, queue: queue, attempt: attempt)
        let outcome = await InstrumentationContext.withValue(span.context) { await body(attempt, span) }
        tracer.end(span, outcome: outcome)
        return outcome
    }
}

/// What a worker consumes and how: a queue with its topology, a handler, and the limits around it.
///
/// ```swift
/// struct OrderPlaced: Decodable { var id: String; var total: Int }
/// struct Receipt: Encodable { var order: String }
///
/// let receipts = Subscription(Topology(queue: "receipts", bindings: [.topic("shop", "order.*.placed")])) {
///     (order: OrderPlaced, context: MessageContext) in
///     try await context.publish(Receipt(order: order.id), to: "shop", routingKey: "receipt.created")
/// }
/// ```
///
/// Three kinds of handler: typed (a `Decodable` message and a ``MessageContext``; returning acks,
/// throwing retries), raw (one ``AMQPDelivery`` → a ``MessageOutcome``) and chunk (many deliveries →
/// one outcome each, for throughput).
public struct Subscription: Sendable {
    /// The queue and its dead-letter companions, exchanges and bindings.
    public var topology: Topology
    /// Limits, retries and the checks it waits for.
    public var options: SubscriptionOptions
    /// The smallest chunk a delivery batch is cut into (1 for one-message handlers, so they run in
    /// parallel; larger for chunk handlers, which gain from fewer, bigger chunks).
    public var minimumChunk: Int
    /// True when the handler takes one message at a time (and so traces each inside its own span);
    /// a chunk handler's messages get their spans around the chunk.
    let tracesEachMessage: Bool
    /// Decides the fate of a chunk of messages, one outcome per delivery, in order.
    package let handler: @Sendable ([AMQPDelivery], HandlerEnvironment) async -> [MessageOutcome]

    /// The longest delivery batch the consumer is handed (``AMQPConnection/consume(queue:consumerTag:exclusive:arguments:maxBatch:)``):
    /// a full prefetch spread over `concurrency` tasks, and at least `minimumChunk`. A batch that
    /// long is one chunk of a chunk handler's, handed to it as it is.
    var batchLimit: Int {
        max(minimumChunk, (Int(options.prefetch) + options.concurrency - 1) / options.concurrency)
    }

    /// ``SubscriptionOptions/prefetch``.
    public var prefetch: UInt16 { options.prefetch }
    /// ``SubscriptionOptions/concurrency`` (at most `prefetch`).
    public var concurrency: Int { options.concurrency }
    /// ``RetryPolicy/maxAttempts``.
    public var maxAttempts: Int { options.retry.maxAttempts }

    /// A subscription whose handler takes a typed message, decoded from the body (JSON unless a
    /// `decoder` says otherwise).
    ///
    /// - A body that does not decode is dead-lettered with the decoding error as the reason; the
    ///   handler does not run.
    /// - The handler returns: the message is acked. It throws ``DependencyUnavailable``: requeued,
    ///   not an attempt. ``InvalidMessage``: dead-lettered at once. Anything else: retried, up to
    ///   ``RetryPolicy/maxAttempts`` with growing delays, then dead-lettered.
    public init<Message: Decodable & Sendable>(
        _ topology: Topology,
        options: SubscriptionOptions = SubscriptionOptions(),
        decoder: any MessageDecoder = JSONMessageDecoder(),
        encoder: any MessageEncoder = JSONMessageEncoder(),
        handler: @escaping @Sendable (Message, MessageContext) async throws -> Void
    ) {
        self.init(topology, options: options, minimumChunk: 1, tracesEachMessage: true) { deliveries, environment in
            var outcomes: [MessageOutcome] = []
            outcomes.reserveCapacity(deliveries.count)
            for delivery in deliveries {
                outcomes.append(await environment.traced(delivery) { attempt, span in
                    let message: Message
                    do {
                        message = try decoder.decode(Message.self, from: delivery.body, properties: delivery.properties)
                    } catch {
                        return .deadLetter(reason: describe(decodingError: error))
                    }
                    let context = MessageContext(queue: environment.queue, delivery: delivery, attempt: attempt,
                                                 publisher: environment.publisher, encoder: encoder, logger: environment.logger,
                                                 tracing: span.flatMap { span in environment.tracer.map { ($0, span) } })
                    do {
                        try await handler(message, context)
                        return .ack
                    } catch {
                        return MessageOutcome(error: error)
                    }
                })
            }
            return outcomes
        }
    }

    /// A subscription whose handler sees one raw message at a time and says what to do with it.
    public init(
        _ topology: Topology,
        options: SubscriptionOptions = SubscriptionOptions(),
        handler: @escaping @Sendable (AMQPDelivery) async -> MessageOutcome
    ) {
        self.init(topology, options: options, minimumChunk: 1, tracesEachMessage: true) { deliveries, environment in
            var outcomes: [MessageOutcome] = []
            outcomes.reserveCapacity(deliveries.count)
            for delivery in deliveries {
                outcomes.append(await environment.traced(delivery) { _, _ in await handler(delivery) })
            }
            return outcomes
        }
    }

    /// A subscription whose handler sees chunks of messages: under load each delivery batch from the
    /// broker is split into at most `concurrency` chunks (of at least `minimumChunk`), so a handler
    /// can, say, insert a chunk with one statement. It must return exactly one outcome per delivery,
    /// in the same order; a chunk answered with another count fails as a whole (retried) and is logged.
    public init(
        _ topology: Topology,
        options: SubscriptionOptions = SubscriptionOptions(),
        minimumChunk: Int = 64,
        batchHandler: @escaping @Sendable ([AMQPDelivery]) async -> [MessageOutcome]
    ) {
        self.init(topology, options: options, minimumChunk: minimumChunk, tracesEachMessage: false) { deliveries, _ in
            await batchHandler(deliveries)
        }
    }

    private init(_ topology: Topology, options: SubscriptionOptions, minimumChunk: Int, tracesEachMessage: Bool,
                 handler: @escaping @Sendable ([AMQPDelivery], HandlerEnvironment) async -> [MessageOutcome]) {
        precondition(options.prefetch > 0, "Subscription: prefetch must be positive")
        precondition(options.concurrency > 0, "Subscription: concurrency must be positive")
        var options = options
        options.concurrency = min(options.concurrency, Int(options.prefetch))
        self.topology = topology
        self.options = options
        self.minimumChunk = max(1, minimumChunk)
        self.tracesEachMessage = tracesEachMessage
        self.handler = handler
    }
}

extension MessageOutcome {
    /// The outcome of a handler that threw `error`.
    init(error: any Error) {
        switch error {
        case let error as DependencyUnavailable: self = .requeue(reason: error.description)
        case let error as InvalidMessage: self = .deadLetter(reason: error.reason)
        default: self = .retry(reason: "\(error)")
        }
    }
}

extension Topology: ExpressibleByStringLiteral {
    /// A queue of that name with the defaults: classic, no bindings (`Subscription("jobs") { … }`).
    public init(stringLiteral queue: String) {
        self.init(queue: queue)
    }
}
