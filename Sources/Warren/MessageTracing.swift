import Tracing
import WarrenAMQP

/// AMQP message headers as a carrier of W3C trace context (`traceparent`, `tracestate`): what a
/// tracer extracts from an incoming message and injects into an outgoing one.
struct AMQPHeaderCarrier: Extractor, Injector {
    func extract(key: String, from carrier: AMQPTable) -> String? {
        carrier[key]?.stringValue
    }

    func inject(_ value: String, forKey key: String, into carrier: inout AMQPTable) {
        carrier[key] = .string(value)
    }
}

/// A plain dictionary as a carrier (to read a span's ids back in W3C form, whatever the tracer).
private struct DictionaryCarrier: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        carrier[key] = value
    }
}

/// Warren's spans, recorded through swift-distributed-tracing with whichever tracer the application
/// bootstrapped (OpenTelemetry messaging semantic conventions). `nil` when none is: then Warren does
/// no tracing work at all, not even the header lookups.
struct MessageTracer: Sendable {
    let tracer: any Tracer

    /// The bootstrapped tracer, or `nil` for the no-op one. Looked up once per consumer, not per message
    /// (the lookup takes a lock).
    static func current() -> MessageTracer? {
        let tracer = InstrumentationSystem.tracer
        return tracer is NoOpTracer ? nil : MessageTracer(tracer: tracer)
    }

    /// A consumer span for `delivery`, in the trace its `traceparent` header names (a new trace without
    /// one), with the messaging attributes.
    func consumerSpan(for delivery: AMQPDelivery, queue: String, attempt: Int) -> any Span {
        var context = InstrumentationContext.topLevel
        tracer.extract(delivery.properties.headers, into: &context, using: AMQPHeaderCarrier())
        let span = tracer.startSpan("\(queue) process", context: context, ofKind: .consumer)
        span.attributes["messaging.system"] = "rabbitmq"
        span.attributes["messaging.operation.type"] = "process"
        span.attributes["messaging.operation.name"] = "deliver"
        span.attributes["messaging.destination.name"] = delivery.originalExchange
        span.attributes["messaging.destination.subscription.name"] = queue
        span.attributes["messaging.rabbitmq.destination.routing_key"] = delivery.originalRoutingKey
        span.attributes["messaging.rabbitmq.message.delivery_tag"] = Int64(clamping: delivery.deliveryTag)
        span.attributes["messaging.message.body.size"] = delivery.body.count
        if let id = delivery.properties.messageID { span.attributes["messaging.message.id"] = id }
        if let id = delivery.properties.correlationID { span.attributes["messaging.message.conversation_id"] = id }
        span.attributes["warren.attempt"] = attempt
        return span
    }

    /// Records the outcome on `span` (an error status for anything but an ack) and ends it.
    func end(_ span: any Span, outcome: MessageOutcome) {
        switch outcome {
        case .ack:
            span.attributes["warren.outcome"] = "ack"
        case .retry(let reason):
            span.attributes["warren.outcome"] = "retry"
            span.setStatus(SpanStatus(code: .error, message: reason))
        case .requeue(let reason):
            span.attributes["warren.outcome"] = "requeue"
            span.setStatus(SpanStatus(code: .error, message: reason))
        case .deadLetter(let reason):
            span.attributes["warren.outcome"] = "dead_letter"
            span.setStatus(SpanStatus(code: .error, message: reason))
        }
        span.end()
    }

    /// A producer span for a publish from inside `context` (a handler's consumer span), whose context
    /// is injected into `headers` so that the next consumer continues the trace.
    func producerSpan(exchange: String, routingKey: String, context: InstrumentationContext, headers: inout AMQPTable) -> any Span {
        let span = tracer.startSpan("\(exchange.isEmpty ? routingKey : exchange) publish", context: context, ofKind: .producer)
        span.attributes["messaging.system"] = "rabbitmq"
        span.attributes["messaging.operation.type"] = "send"
        span.attributes["messaging.operation.name"] = "publish"
        span.attributes["messaging.destination.name"] = exchange
        span.attributes["messaging.rabbitmq.destination.routing_key"] = routingKey
        tracer.inject(span.context, into: &headers, using: AMQPHeaderCarrier())
        return span
    }

    /// `trace_id` and `span_id` of `span`, as log metadata (read back through the W3C form the tracer
    /// injects, so it works with any tracer that speaks `traceparent`).
    func logMetadata(of span: any Span) -> [String: String] {
        var carrier: [String: String] = [:]
        tracer.inject(span.context, into: &carrier, using: DictionaryCarrier())
        let parts = carrier["traceparent"]?.split(separator: "-") ?? []
        guard parts.count >= 3 else { return [:] }
        return ["trace_id": String(parts[1]), "span_id": String(parts[2])]
    }
}

extension MessagePublisher {
    /// Publishes like ``publish(_:exchange:routingKey:properties:mandatory:)``, inside a producer span
    /// of the bootstrapped tracer — a child of the task's current trace context, or the root of a new
    /// trace — whose context is injected into the message's headers (`traceparent`, `tracestate`) so
    /// that the consumer continues the trace. Without a tracer it is a plain publish.
    public func tracedPublish(_ body: [UInt8], exchange: String = "", routingKey: String,
                              properties: AMQPProperties = AMQPProperties()) async throws {
        guard let tracer = MessageTracer.current() else {
            return try await publish(body, exchange: exchange, routingKey: routingKey, properties: properties, mandatory: false)
        }
        var properties = properties
        let span = tracer.producerSpan(exchange: exchange, routingKey: routingKey,
                                       context: InstrumentationContext.current ?? .topLevel, headers: &properties.headers)
        defer { span.end() }
        do {
            try await publish(body, exchange: exchange, routingKey: routingKey, properties: properties, mandatory: false)
        } catch {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error, message: "\(error)"))
            throw error
        }
    }
}
