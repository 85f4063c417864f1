import Logging
import WarrenSystem

/// A connection to a RabbitMQ broker over librabbitmq, with one channel.
///
/// Each connection owns one OS thread that makes every C call on it (see ``ConnectionOwner``); the
/// methods here describe requests (``AMQPCommand``) for that thread and await the reply, so they
/// never block Swift's cooperative pool. A connection is not reused after it closes: make a new
/// one (see ``ReconnectPolicy``).
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
        logger[metadataKey: "warren.amqp.host"] = "\(configuration.endpoints.map(\.description).joined(separator: ","))"
        let core = try ConnectionCore(configuration: configuration, logger: logger)
        try await ConnectionOwner.start(core: core)
        return AMQPConnection(core: core)
    }

    /// The broker this connection is connected to (`host:port`, never credentials): with several
    /// endpoints, the one that accepted it. For logs and readiness reports.
    public var connectedEndpoint: AMQPEndpoint {
        core.endpoint.withLock { $0 } ?? core.configuration.endpoints[0]
    }

    /// Whether the connection runs over TLS.
    public var isTLS: Bool { core.configuration.tls != nil }

    /// The current state.
    public var state: AMQPConnectionState { core.state }

    /// The current state, then every change, ending after ``AMQPConnectionState/closed(_:)``.
    public func stateUpdates() -> AsyncStream<AMQPConnectionState> { core.stateUpdates() }

    /// Monotonic time (ns, `CLOCK_MONOTONIC`) of the I/O thread's last loop turn; it turns at least
    /// every 100 ms while the connection is open. For liveness watchdogs.
    ///
    /// While the thread waits in a synchronous RPC (a declare, the readiness check's passive declare)
    /// it cannot turn, but it is not stuck: the RPC timeout brings it back. A hung broker (no answer,
    /// no RST) makes that wait last the whole timeout (10 s by default), longer than a watchdog's
    /// stall threshold, and liveness must not fail for a broker (the pod would be restarted for a
    /// dependency). So until that deadline this reports now; past it, the deadline itself, so a
    /// thread that overstays its RPC timeout shows as silent from then on.
    public var lastIOTick: UInt64 {
        let tick = core.lastTick.load(ordering: .relaxed)
        let deadline = core.boundedCallDeadline.load(ordering: .relaxed)
        guard deadline != 0 else { return tick }
        let now = MonotonicClock.nanoseconds()
        return now < deadline ? now : max(tick, deadline)
    }

    /// An executor that runs tasks on this connection's I/O thread, between its reads of the socket.
    ///
    /// Tasks that prefer it (`withTaskExecutorPreference(connection.taskExecutor)`) handle a
    /// delivery in the same turn of the I/O loop that read it, and their acks go out in the next,
    /// with no thread woken in between, as in a single-threaded C consumer. The
    /// price is that while such a task computes, the connection reads nothing, sends no heartbeat
    /// and its I/O tick (``lastIOTick``) stands still: only for handlers that await rather than
    /// compute or block. Once the connection has closed, the tasks run on the global executor.
    public var taskExecutor: any TaskExecutor { core }

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
        _ = try await core.perform(.declareExchange(ExchangeDeclaration(
            name: name, type: type, durable: durable, autoDelete: autoDelete, isInternal: isInternal, arguments: arguments)))
    }

    /// Checks that an exchange exists (`exchange.declare` with `passive`); a missing one fails with
    /// the broker's 404 NOT_FOUND, which closes the connection like every channel error.
    public func inspectExchange(_ name: String) async throws {
        _ = try await core.perform(.declareExchange(ExchangeDeclaration(
            name: name, type: "", durable: false, autoDelete: false, isInternal: false, arguments: [:], passive: true)))
    }

    /// Declares a queue (`queue.declare`), e.g. with `x-dead-letter-exchange` or `x-queue-type` arguments.
    @discardableResult
    public func declareQueue(_ name: String, durable: Bool = true, exclusive: Bool = false,
                             autoDelete: Bool = false, arguments: AMQPTable = [:]) async throws -> AMQPQueueInfo {
        try await queueInfo(.declareQueue(QueueDeclaration(
            name: name, durable: durable, exclusive: exclusive, autoDelete: autoDelete, arguments: arguments)))
    }

    /// Asks the broker about an existing queue (`queue.declare` with `passive`): a round trip that
    /// proves the connection works and reports messages and consumers. A missing queue closes the
    /// connection with `channelClosedByBroker` (404).
    public func inspectQueue(_ name: String) async throws -> AMQPQueueInfo {
        try await queueInfo(.declareQueue(.passive(name)))
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
        try await queueInfo(.verifyConsumer(tag: tag, queue: queue))
    }

    /// Binds a queue to an exchange (`queue.bind`).
    public func bindQueue(_ queue: String, exchange: String, routingKey: String = "",
                          arguments: AMQPTable = [:]) async throws {
        _ = try await core.perform(.bindQueue(queue: queue, exchange: exchange, routingKey: routingKey, arguments: arguments))
    }

    /// Removes all ready messages from a queue; returns how many.
    @discardableResult
    public func purgeQueue(_ name: String) async throws -> UInt32 {
        try await messageCount(.purgeQueue(name))
    }

    /// Deletes a queue; returns how many messages it held.
    @discardableResult
    public func deleteQueue(_ name: String) async throws -> UInt32 {
        try await messageCount(.deleteQueue(name))
    }

    /// Deletes an exchange.
    public func deleteExchange(_ name: String) async throws {
        _ = try await core.perform(.deleteExchange(name))
    }

    // MARK: Consuming

    /// Limits unacknowledged deliveries on this channel (`basic.qos`); 0 means no limit.
    public func setPrefetch(_ count: UInt16, global: Bool = false) async throws {
        _ = try await core.perform(.setPrefetch(count: count, global: global))
    }

    /// Starts consuming a queue with manual acknowledgements (`basic.consume`).
    ///
    /// - Parameter maxBatch: the most deliveries in one of ``AMQPConsumer/batches`` (at least 1; by
    ///   default a batch is everything read for the consumer in one turn of the I/O thread). A consumer
    ///   that cuts batches into chunks of its own passes its chunk size, so that it gets whole chunks
    ///   and need not copy parts of batches (each delivery copied is a retain and a release of every
    ///   reference it holds).
    public func consume(queue: String, consumerTag: String = "", exclusive: Bool = false,
                        arguments: AMQPTable = [:], maxBatch: Int = .max) async throws -> AMQPConsumer {
        let (stream, continuation) = AsyncThrowingStream<[AMQPDelivery], any Error>.makeStream()
        let reply = try await core.perform(.consume(Consumption(
            queue: queue, tag: consumerTag, exclusive: exclusive, arguments: arguments, maxBatch: max(1, maxBatch),
            deliveries: continuation)))
        guard case .consumerTag(let tag) = reply else { unexpected(reply, to: "consume") }
        return AMQPConsumer(tag: tag, stream: stream, connection: self)
    }

    /// Cancels a consumer (`basic.cancel`). Its sequence ends after the deliveries sent before `cancel-ok`.
    public func cancel(consumerTag: String) async throws {
        _ = try await core.perform(.cancel(consumerTag: consumerTag))
    }

    // MARK: Publishing

    /// Publishes a message and waits for the broker's publisher confirm.
    ///
    /// - Throws: ``AMQPError`` with `publishNacked` when the broker refused it, or a connection error:
    ///   then the message may or may not have been routed, so publish again (consumers must dedupe).
    public func publish(_ body: [UInt8], exchange: String = "", routingKey: String,
                        properties: AMQPProperties = AMQPProperties(), mandatory: Bool = false) async throws {
        _ = try await core.perform(.publish(OutgoingMessage(
            body: body, exchange: exchange, routingKey: routingKey, properties: properties, mandatory: mandatory)))
    }

    // MARK: Replies

    private func queueInfo(_ command: AMQPCommand) async throws -> AMQPQueueInfo {
        let reply = try await core.perform(command)
        guard case .queue(let info) = reply else { unexpected(reply, to: command.what) }
        return info
    }

    private func messageCount(_ command: AMQPCommand) async throws -> UInt32 {
        let reply = try await core.perform(command)
        guard case .messageCount(let count) = reply else { unexpected(reply, to: command.what) }
        return count
    }

    private func unexpected(_ reply: AMQPReply, to what: String) -> Never {
        preconditionFailure("owner thread answered '\(what)' with \(reply)")
    }
}
