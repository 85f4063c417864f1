import WarrenAMQP

/// The queue type a subscription declares.
public enum QueueType: String, Sendable, CaseIterable {
    /// A classic queue: one node, the default.
    case classic
    /// A quorum queue: replicated with Raft, what a RabbitMQ cluster runs for durability.
    case quorum
}

/// An exchange a subscription binds its queue to. Declared (durable by default) before the queue is
/// bound, so a worker can start before any publisher; declaring an existing exchange with another
/// type fails with the broker's 406 PRECONDITION_FAILED.
public struct Exchange: Sendable, Hashable {
    /// The routing an exchange does.
    public enum Kind: String, Sendable, CaseIterable {
        /// Routes to the queues bound with exactly the message's routing key.
        case direct
        /// Routes by pattern: `*` matches one dot-separated word, `#` zero or more.
        case topic
        /// Routes to every bound queue; routing keys are ignored.
        case fanout
        /// Routes by message headers (`x-match` all or any).
        case headers
    }

    /// The exchange's name.
    public var name: String
    /// How it routes.
    public var kind: Kind
    /// Survives a broker restart (the default).
    public var durable: Bool
    /// Deleted once its last binding is removed.
    public var autoDelete: Bool
    /// Declare arguments (e.g. `alternate-exchange`).
    public var arguments: AMQPTable

    /// An exchange; durable and not auto-deleted unless said otherwise.
    public init(_ name: String, kind: Kind, durable: Bool = true, autoDelete: Bool = false, arguments: AMQPTable = [:]) {
        self.name = name
        self.kind = kind
        self.durable = durable
        self.autoDelete = autoDelete
        self.arguments = arguments
    }
}

/// A binding of a subscription's queue to an exchange.
public struct Binding: Sendable, Hashable {
    /// The exchange the queue is bound to (declared before binding).
    public var exchange: Exchange
    /// The routing key, or pattern for a topic exchange; ignored by fanout and headers exchanges.
    public var routingKey: String
    /// Binding arguments: for a headers exchange, the headers to match and `x-match`.
    public var arguments: AMQPTable

    /// A binding; ``topic(_:_:)``, ``direct(_:_:)``, ``fanout(_:)`` and ``headers(_:matchAll:_:)`` say it shorter.
    public init(exchange: Exchange, routingKey: String = "", arguments: AMQPTable = [:]) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.arguments = arguments
    }

    /// Messages published to topic exchange `exchange` whose routing key matches `pattern`
    /// (`orders.*.created`, `audit.#`).
    public static func topic(_ exchange: String, _ pattern: String) -> Binding {
        Binding(exchange: Exchange(exchange, kind: .topic), routingKey: pattern)
    }

    /// Messages published to direct exchange `exchange` with routing key `key`.
    public static func direct(_ exchange: String, _ key: String) -> Binding {
        Binding(exchange: Exchange(exchange, kind: .direct), routingKey: key)
    }

    /// Every message published to fanout exchange `exchange`.
    public static func fanout(_ exchange: String) -> Binding {
        Binding(exchange: Exchange(exchange, kind: .fanout))
    }

    /// Messages published to headers exchange `exchange` whose headers match `headers`: all of them
    /// (`matchAll`, the default) or any one.
    public static func headers(_ exchange: String, matchAll: Bool = true, _ headers: AMQPTable) -> Binding {
        var arguments = headers
        arguments["x-match"] = .string(matchAll ? "all" : "any")
        return Binding(exchange: Exchange(exchange, kind: .headers), arguments: arguments)
    }
}

/// What the broker does when a queue with a length limit is full.
public enum OverflowBehavior: String, Sendable {
    /// Drop (or dead-letter) the oldest message: the default.
    case dropHead = "drop-head"
    /// Refuse new messages (publishers with confirms get a nack).
    case rejectPublish = "reject-publish"
    /// Refuse new messages and dead-letter them.
    case rejectPublishDeadLetter = "reject-publish-dlx"
}

/// Arguments of a subscription's queue beyond its type and dead-lettering. A queue's arguments are
/// fixed when it is first declared: changing one later fails with the broker's 406
/// PRECONDITION_FAILED naming it (delete the queue, or use a policy, to change them).
public struct QueueArguments: Sendable, Hashable {
    /// One consumer at a time receives (the others wait as hot standbys): for ordered processing.
    public var singleActiveConsumer: Bool
    /// `x-max-length`: most messages the queue holds.
    public var maxLength: Int?
    /// `x-max-length-bytes`: most body bytes the queue holds.
    public var maxLengthBytes: Int?
    /// `x-overflow`: what happens past a limit.
    public var overflow: OverflowBehavior?
    /// `x-message-ttl`: a message older than this is dead-lettered (millisecond precision).
    public var messageTTL: Duration?
    /// Anything else, as raw `x-` arguments.
    public var extra: AMQPTable

    /// Arguments; every one is optional and off by default.
    public init(singleActiveConsumer: Bool = false, maxLength: Int? = nil, maxLengthBytes: Int? = nil,
                overflow: OverflowBehavior? = nil, messageTTL: Duration? = nil, extra: AMQPTable = [:]) {
        self.singleActiveConsumer = singleActiveConsumer
        self.maxLength = maxLength
        self.maxLengthBytes = maxLengthBytes
        self.overflow = overflow
        self.messageTTL = messageTTL
        self.extra = extra
    }

    /// The arguments as the broker takes them.
    var table: AMQPTable {
        var table = extra
        if singleActiveConsumer { table["x-single-active-consumer"] = true }
        if let maxLength { table["x-max-length"] = .int(Int64(maxLength)) }
        if let maxLengthBytes { table["x-max-length-bytes"] = .int(Int64(maxLengthBytes)) }
        if let overflow { table["x-overflow"] = .string(overflow.rawValue) }
        if let messageTTL {
            let (seconds, attoseconds) = messageTTL.components
            table["x-message-ttl"] = .int(seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        }
        return table
    }
}

/// The broker objects a subscription needs: a durable work queue `<queue>` that dead-letters into
/// exchange `<queue>.dlx`, which routes to the durable queue `<queue>.dead`; and the exchanges and
/// bindings that route messages to the queue (none: only the default exchange, by queue name).
public struct Topology: Sendable, Equatable {
    /// The work queue's name; the dead-letter objects are named after it.
    public var queue: String
    /// Classic or quorum (`x-queue-type`), for the queue and its dead-letter queue.
    public var queueType: QueueType
    /// Limits and options of the work queue.
    public var arguments: QueueArguments
    /// Where messages come from besides the default exchange (by queue name).
    public var bindings: [Binding]

    /// A topology; `Topology("jobs")` (a string literal) is a classic queue with no bindings.
    public init(queue: String, queueType: QueueType = .classic, arguments: QueueArguments = QueueArguments(),
                bindings: [Binding] = []) {
        self.queue = queue
        self.queueType = queueType
        self.arguments = arguments
        self.bindings = bindings
    }

    /// The dead-letter exchange, `<queue>.dlx`.
    public var deadLetterExchange: String { "\(queue).dlx" }
    /// The dead-letter queue, `<queue>.dead`.
    public var deadLetterQueue: String { "\(queue).dead" }

    /// The delay queue of `delay`, `<queue>.retry.<ms>ms`: messages wait there for `delay` (its message
    /// TTL), then the broker dead-letters them back to `<queue>` (see ``RetryPolicy``).
    public func retryQueue(delay: Duration) -> String { "\(queue).retry.\(delay.wholeMilliseconds)ms" }

    /// Declares everything, the delay queues of `retry` included; idempotent while the arguments stay
    /// the same. A queue or exchange that exists with other arguments fails with the broker's 406
    /// PRECONDITION_FAILED, which names them. (Delay queues are named by their delay, so a changed
    /// `RETRY_DELAY` declares new ones instead of clashing with the old.)
    public func declare(on connection: AMQPConnection, retry: RetryPolicy = RetryPolicy()) async throws {
        try await declareQueues(on: connection)
        for delay in retry.delays {
            var arguments: AMQPTable = [
                "x-queue-type": .string(queueType.rawValue),
                "x-message-ttl": .int(delay.wholeMilliseconds),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": .string(queue),
            ]
            if queueType == .quorum {
                // At-least-once dead-lettering (3.10+; it requires reject-publish): on a cluster a
                // retry must not be lost when a leader moves between the TTL and the work queue.
                arguments["x-dead-letter-strategy"] = "at-least-once"
                arguments["x-overflow"] = "reject-publish"
            }
            try await connection.declareQueue(retryQueue(delay: delay), durable: true, arguments: arguments)
        }
    }

    /// Checks that everything ``declare(on:retry:)`` makes still exists, with passive declares only:
    /// reads on the node connected to. After a reconnect this replaces the full declaration, whose
    /// bindings are cluster-wide writes that RabbitMQ 3.x holds while a node is hung (see
    /// `SubscriptionService`). Throws (the broker's 404) when something is missing.
    func verify(on connection: AMQPConnection, retry: RetryPolicy) async throws {
        try await connection.inspectExchange(deadLetterExchange)
        _ = try await connection.inspectQueue(deadLetterQueue)
        _ = try await connection.inspectQueue(queue)
        for delay in retry.delays { _ = try await connection.inspectQueue(retryQueue(delay: delay)) }
        for name in Set(bindings.map(\.exchange.name)) { try await connection.inspectExchange(name) }
    }

    private func declareQueues(on connection: AMQPConnection) async throws {
        let type: AMQPTable = ["x-queue-type": .string(queueType.rawValue)]
        try await connection.declareExchange(deadLetterExchange, type: "fanout", durable: true)
        try await connection.declareQueue(deadLetterQueue, durable: true, arguments: type)
        try await connection.bindQueue(deadLetterQueue, exchange: deadLetterExchange)
        var queueArguments = arguments.table
        queueArguments["x-queue-type"] = .string(queueType.rawValue)
        queueArguments["x-dead-letter-exchange"] = .string(deadLetterExchange)
        try await connection.declareQueue(queue, durable: true, arguments: queueArguments)
        var declared = Set<String>()
        for binding in bindings {
            let exchange = binding.exchange
            if declared.insert(exchange.name).inserted {
                try await connection.declareExchange(exchange.name, type: exchange.kind.rawValue, durable: exchange.durable,
                                                     autoDelete: exchange.autoDelete, arguments: exchange.arguments)
            }
            try await connection.bindQueue(queue, exchange: exchange.name, routingKey: binding.routingKey,
                                           arguments: binding.arguments)
        }
    }
}
