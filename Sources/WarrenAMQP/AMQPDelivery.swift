/// Basic-class message properties.
public struct AMQPProperties: Sendable, Equatable {
    public var contentType: String?
    public var contentEncoding: String?
    public var headers: AMQPTable
    /// 2 = persistent, 1 = transient.
    public var deliveryMode: UInt8?
    public var priority: UInt8?
    public var correlationID: String?
    public var replyTo: String?
    public var expiration: String?
    public var messageID: String?
    /// Seconds since the epoch.
    public var timestamp: UInt64?
    public var type: String?
    public var userID: String?
    public var appID: String?

    public init(
        contentType: String? = nil, contentEncoding: String? = nil, headers: AMQPTable = [:],
        deliveryMode: UInt8? = nil, priority: UInt8? = nil, correlationID: String? = nil,
        replyTo: String? = nil, expiration: String? = nil, messageID: String? = nil,
        timestamp: UInt64? = nil, type: String? = nil, userID: String? = nil, appID: String? = nil
    ) {
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.headers = headers
        self.deliveryMode = deliveryMode
        self.priority = priority
        self.correlationID = correlationID
        self.replyTo = replyTo
        self.expiration = expiration
        self.messageID = messageID
        self.timestamp = timestamp
        self.type = type
        self.userID = userID
        self.appID = appID
    }

    /// Persistent JSON: what a durable queue expects of an event.
    public static let persistentJSON = AMQPProperties(contentType: "application/json", deliveryMode: 2)
}

/// How a delivery is settled.
public enum AMQPSettlement: Sendable, Hashable {
    /// `basic.ack`: processed, remove from the queue.
    case ack
    /// `basic.nack`: not processed; requeue it or, with `requeue: false`, dead-letter it.
    case nack(requeue: Bool)
    /// `basic.reject`: refused; requeue it or, with `requeue: false`, dead-letter it.
    case reject(requeue: Bool)
}

/// A message delivered to a consumer. Settle it exactly once with ``ack()``, ``nack(requeue:)`` or
/// ``reject(requeue:)``, from any task. Settling after the connection closed does nothing: the broker
/// has already put the message back in the queue.
public struct AMQPDelivery: Sendable {
    /// The message body.
    public let body: [UInt8]
    /// The message properties, headers included.
    public let properties: AMQPProperties
    /// The channel-scoped delivery tag.
    public let deliveryTag: UInt64
    /// True when the broker delivered this message before (it was requeued or its consumer died).
    public let redelivered: Bool
    /// The exchange the message was published to.
    public let exchange: String
    /// The routing key it was published with.
    public let routingKey: String
    /// The consumer it was delivered to.
    public let consumerTag: String

    /// The channel it came on: its tag means something only there.
    let channel: ChannelID
    /// `nil` for a delivery made in memory (WarrenTesting).
    let core: ConnectionCore?

    init(body: [UInt8], properties: AMQPProperties, deliveryTag: UInt64, redelivered: Bool, exchange: String,
         routingKey: String, consumerTag: String, channel: ChannelID, core: ConnectionCore?) {
        self.body = body
        self.properties = properties
        self.deliveryTag = deliveryTag
        self.redelivered = redelivered
        self.exchange = exchange
        self.routingKey = routingKey
        self.consumerTag = consumerTag
        self.channel = channel
        self.core = core
    }

    /// A delivery with no connection behind it, for in-memory tests of handlers (WarrenTesting):
    /// settling it does nothing.
    package init(testing body: [UInt8], properties: AMQPProperties, deliveryTag: UInt64, redelivered: Bool,
                 exchange: String, routingKey: String) {
        self.init(body: body, properties: properties, deliveryTag: deliveryTag, redelivered: redelivered,
                  exchange: exchange, routingKey: routingKey, consumerTag: "warren-testing", channel: 0, core: nil)
    }

    /// Acknowledges the message: the broker removes it from the queue.
    public func ack() { settle(.ack) }

    /// Negatively acknowledges the message: requeued, or dead-lettered with `requeue: false`.
    public func nack(requeue: Bool = true) { settle(.nack(requeue: requeue)) }

    /// Rejects the message: dead-lettered by default, or requeued with `requeue: true`.
    public func reject(requeue: Bool = false) { settle(.reject(requeue: requeue)) }

    /// Settles the message as given.
    public func settle(_ settlement: AMQPSettlement) { core?.settle(channel: channel, deliveryTag, settlement) }

    /// Acknowledges every delivery of `deliveries`, as ``ack()`` on each would, but queues those of one
    /// connection for its I/O thread together: one lock and at most one wake-up of that thread per run,
    /// instead of one lock per message.
    public static func ack(_ deliveries: [AMQPDelivery]) {
        var start = deliveries.startIndex
        while start != deliveries.endIndex {
            // A run of deliveries from one connection (a chunk is always one run).
            let core = deliveries[start].core
            var end = start + 1
            while end != deliveries.endIndex, deliveries[end].core === core { end += 1 }
            core?.acknowledge(deliveries[start..<end])
            start = end
        }
    }
}

/// The result of a queue declaration.
public struct AMQPQueueInfo: Sendable, Equatable {
    /// The queue name (server-generated when declared with an empty name).
    public var name: String
    /// Messages ready for delivery.
    public var messageCount: UInt32
    /// Active consumers.
    public var consumerCount: UInt32
}

/// The lifecycle of a connection, as observed from Swift.
public enum AMQPConnectionState: Sendable, Equatable {
    /// The TCP connection and handshake are in progress.
    case connecting
    /// Logged in, channel open: usable.
    case open
    /// Closed. `nil` when closed by ``AMQPConnection/close()``; otherwise what went wrong.
    case closed(AMQPError?)

    /// True for ``open``.
    public var isOpen: Bool { self == .open }
}
