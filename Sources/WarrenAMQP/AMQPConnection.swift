import CRabbitMQ
import Logging

/// A connection to a RabbitMQ broker over librabbitmq, with one channel.
///
/// Each connection owns one OS thread that makes every C call on it (see ``ConnectionOwner``); the
/// methods here queue work for that thread and await the result, so they never block Swift's
/// cooperative pool. A connection is not reused after it closes: make a new one (see ``ReconnectPolicy``).
public final class AMQPConnection: Sendable {
    let core: ConnectionCore

    private init(core: ConnectionCore) {
        self.core = core
    }

    /// Connects, logs in, opens a channel with publisher confirms enabled.
    ///
    /// - Throws: ``AMQPError`` saying what failed (`connectFailed`, `authenticationFailed`, ...).
    public static func connect(
        configuration: AMQPConfiguration,
        logger: Logger = Logger(label: "warren.amqp")
    ) async throws -> AMQPConnection {
        var logger = logger
        logger[metadataKey: "warren.amqp.host"] = "\(configuration.host):\(configuration.port)"
        let core = ConnectionCore(configuration: configuration, logger: logger)
        try await withCheckedThrowingContinuation { (connected: CheckedContinuation<Void, any Error>) in
            startOwnerThread {
                ConnectionOwner(core: core).run(connected: connected)
            }
        }
        return AMQPConnection(core: core)
    }

    /// The current state.
    public var state: AMQPConnectionState { core.state }

    /// The current state, then every change, ending after ``AMQPConnectionState/closed(_:)``.
    public func stateUpdates() -> AsyncStream<AMQPConnectionState> { core.stateUpdates() }

    /// Monotonic time (ns, `CLOCK_MONOTONIC`) of the I/O thread's last loop turn; it turns at least
    /// every 100 ms while the connection is open. For liveness watchdogs.
    public var lastIOTick: UInt64 { core.lastTick.load(ordering: .relaxed) }

    /// Closes the channel and the connection cleanly, after sending pending acks. Idempotent.
    public func close() async {
        core.requestClose()
        for await state in core.stateUpdates() {
            if case .closed = state { return }
        }
    }

    // MARK: Topology

    /// Declares an exchange (`exchange.declare`).
    public func declareExchange(_ name: String, type: String = "direct", durable: Bool = true,
                                autoDelete: Bool = false, internal isInternal: Bool = false,
                                arguments: AMQPTable = [:]) async throws {
        try await perform("declare exchange '\(name)'") { owner, conn, arena in
            _ = amqp_exchange_declare(conn, owner.channel, arena.bytes(name), arena.bytes(type), 0,
                                      durable ? 1 : 0, autoDelete ? 1 : 0, isInternal ? 1 : 0, arena.table(arguments))
        }
    }

    /// Declares a queue (`queue.declare`), e.g. with `x-dead-letter-exchange` or `x-queue-type` arguments.
    @discardableResult
    public func declareQueue(_ name: String, durable: Bool = true, exclusive: Bool = false,
                             autoDelete: Bool = false, arguments: AMQPTable = [:]) async throws -> AMQPQueueInfo {
        try await queueDeclare(name, passive: false, durable: durable, exclusive: exclusive,
                               autoDelete: autoDelete, arguments: arguments)
    }

    /// Asks the broker about an existing queue (`queue.declare` with `passive`): a round trip that
    /// proves the connection works and reports messages and consumers. A missing queue closes the
    /// connection with `channelClosedByBroker` (404).
    public func inspectQueue(_ name: String) async throws -> AMQPQueueInfo {
        try await queueDeclare(name, passive: true, durable: false, exclusive: false, autoDelete: false, arguments: [:])
    }

    /// Proves that consumer `tag` is registered on `queue`, with a round trip to the broker.
    ///
    /// Sends a passive `queue.declare` on the consumer's channel. Frames on a channel arrive in order,
    /// so had the broker cancelled the consumer (or closed the channel), that would arrive before the
    /// reply; the consumer is checked after everything received before the reply has been handled.
    /// This is what readiness uses: a local "connected" flag can stay true while the broker is gone.
    ///
    /// - Throws: ``AMQPError``; `consumerCancelledByBroker` when the consumer is no longer registered.
    @discardableResult
    public func verifyConsumer(_ tag: String, queue: String) async throws -> AMQPQueueInfo {
        try await perform("verify consumer '\(tag)' on queue '\(queue)'") { owner, conn, arena in
            let ok = amqp_queue_declare(conn, owner.channel, arena.bytes(queue), 1, 0, 0, 0, amqp_empty_table)
            guard let ok else { return AMQPQueueInfo(name: queue, messageCount: 0, consumerCount: 0) }
            return AMQPQueueInfo(name: CTable.string(ok.pointee.queue), messageCount: ok.pointee.message_count,
                                 consumerCount: ok.pointee.consumer_count)
        } after: { owner in
            try owner.handleQueuedFrames()
            guard owner.hasConsumer(tag) else {
                throw AMQPError(.consumerCancelledByBroker, "consumer '\(tag)' is not registered on queue '\(queue)'")
            }
        }
    }

    private func queueDeclare(_ name: String, passive: Bool, durable: Bool, exclusive: Bool,
                              autoDelete: Bool, arguments: AMQPTable) async throws -> AMQPQueueInfo {
        try await perform("declare queue '\(name)'") { owner, conn, arena in
            let ok = amqp_queue_declare(conn, owner.channel, arena.bytes(name), passive ? 1 : 0, durable ? 1 : 0,
                                        exclusive ? 1 : 0, autoDelete ? 1 : 0, arena.table(arguments))
            guard let ok else { return AMQPQueueInfo(name: name, messageCount: 0, consumerCount: 0) }
            return AMQPQueueInfo(name: CTable.string(ok.pointee.queue), messageCount: ok.pointee.message_count,
                                 consumerCount: ok.pointee.consumer_count)
        }
    }

    /// Binds a queue to an exchange (`queue.bind`).
    public func bindQueue(_ queue: String, exchange: String, routingKey: String = "",
                          arguments: AMQPTable = [:]) async throws {
        try await perform("bind queue '\(queue)' to '\(exchange)'") { owner, conn, arena in
            _ = amqp_queue_bind(conn, owner.channel, arena.bytes(queue), arena.bytes(exchange),
                                arena.bytes(routingKey), arena.table(arguments))
        }
    }

    /// Removes all ready messages from a queue; returns how many.
    @discardableResult
    public func purgeQueue(_ name: String) async throws -> UInt32 {
        try await perform("purge queue '\(name)'") { owner, conn, arena in
            amqp_queue_purge(conn, owner.channel, arena.bytes(name))?.pointee.message_count ?? 0
        }
    }

    /// Deletes a queue; returns how many messages it held.
    @discardableResult
    public func deleteQueue(_ name: String) async throws -> UInt32 {
        try await perform("delete queue '\(name)'") { owner, conn, arena in
            amqp_queue_delete(conn, owner.channel, arena.bytes(name), 0, 0)?.pointee.message_count ?? 0
        }
    }

    /// Deletes an exchange.
    public func deleteExchange(_ name: String) async throws {
        try await perform("delete exchange '\(name)'") { owner, conn, arena in
            _ = amqp_exchange_delete(conn, owner.channel, arena.bytes(name), 0)
        }
    }

    // MARK: Consuming

    /// Limits unacknowledged deliveries on this channel (`basic.qos`); 0 means no limit.
    public func setPrefetch(_ count: UInt16, global: Bool = false) async throws {
        try await perform("set prefetch \(count)") { owner, conn, _ in
            _ = amqp_basic_qos(conn, owner.channel, 0, count, global ? 1 : 0)
        }
    }

    /// Starts consuming a queue with manual acknowledgements (`basic.consume`).
    public func consume(queue: String, consumerTag: String = "", exclusive: Bool = false,
                        arguments: AMQPTable = [:]) async throws -> AMQPConsumer {
        let (stream, continuation) = AsyncThrowingStream<[AMQPDelivery], any Error>.makeStream()
        let tag: String = try await perform("consume queue '\(queue)'") { owner, conn, arena in
            let ok = amqp_basic_consume(conn, owner.channel, arena.bytes(queue), arena.bytes(consumerTag),
                                        0, 0, exclusive ? 1 : 0, arena.table(arguments))
            let tag = ok.map { CTable.string($0.pointee.consumer_tag) } ?? consumerTag
            if ok != nil { owner.register(consumer: tag, continuation) }
            return tag
        }
        return AMQPConsumer(tag: tag, stream: stream, connection: self)
    }

    /// Cancels a consumer (`basic.cancel`). Its sequence ends after the deliveries sent before `cancel-ok`.
    public func cancel(consumerTag: String) async throws {
        try await perform("cancel consumer '\(consumerTag)'") { owner, conn, arena in
            _ = amqp_basic_cancel(conn, owner.channel, arena.bytes(consumerTag))
        } after: { owner in
            try owner.unregister(consumer: consumerTag)
        }
    }

    // MARK: Publishing

    /// Publishes a message and waits for the broker's publisher confirm.
    ///
    /// - Throws: ``AMQPError`` with `publishNacked` when the broker refused it, or a connection error:
    ///   then the message may or may not have been routed, so publish again (consumers must dedupe).
    public func publish(_ body: [UInt8], exchange: String = "", routingKey: String,
                        properties: AMQPProperties = AMQPProperties(), mandatory: Bool = false) async throws {
        try await withCheckedThrowingContinuation { (confirm: CheckedContinuation<Void, any Error>) in
            core.submit(OwnerTask(
                run: { owner in
                    owner.publish(body: body, exchange: exchange, routingKey: routingKey,
                                  properties: properties, mandatory: mandatory, confirm: confirm)
                },
                fail: { confirm.resume(throwing: $0) }
            ))
        }
    }

    // MARK: Plumbing

    /// Runs a synchronous librabbitmq RPC on the owner thread and checks its reply.
    private func perform<T: Sendable>(
        _ what: String,
        _ body: @escaping @Sendable (ConnectionOwner, amqp_connection_state_t, CTable.Arena) -> T,
        after: (@Sendable (ConnectionOwner) throws -> Void)? = nil
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            core.submit(OwnerTask(
                run: { owner in
                    guard let conn = owner.conn else {
                        continuation.resume(throwing: owner.core.closedError())
                        return
                    }
                    let arena = CTable.Arena()
                    let value = body(owner, conn, arena)
                    do {
                        try owner.check(amqp_get_rpc_reply(conn), doing: what)
                        try after?(owner)
                        continuation.resume(returning: value)
                    } catch {
                        continuation.resume(throwing: error)
                    }
                },
                fail: { continuation.resume(throwing: $0) }
            ))
        }
    }
}
