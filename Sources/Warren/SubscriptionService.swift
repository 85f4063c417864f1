import CoreMetrics
import Logging
import Synchronization
import WarrenAMQP
import WarrenSystem

/// Runs a ``Subscription`` against a broker and keeps it running.
///
/// Connects, declares the topology, sets the prefetch and consumes, handing deliveries to the handler
/// with bounded concurrency. When the connection is lost it reconnects with capped, jittered backoff
/// and does it all again; deliveries of the dead connection are not settled on the new one (the
/// broker has requeued them). While ``gate`` is closed the consumer is cancelled and messages stay in
/// the queue. ``stop()`` closes the gate for good, lets in-flight handlers finish and closes.
public final class SubscriptionService: Sendable {
    /// Where the service is, for readiness and metrics.
    public enum Phase: Sendable, Equatable {
        case connecting(attempt: Int)
        case consuming
        case paused(reason: String)
        case disconnected(reason: String)
        case stopped
    }

    private struct State {
        var connection: AMQPConnection?
        var consumerTag: String?
        var phase: Phase = .connecting(attempt: 0)
        var everConnected = false
        var stopping = false
    }

    /// What it consumes.
    public let subscription: Subscription
    /// The broker it connects to.
    public let configuration: AMQPConfiguration
    /// Backoff between connection attempts.
    public let reconnectPolicy: ReconnectPolicy
    /// Open while consumption may run; readiness and shutdown close it.
    public let gate = Gate()
    private let state = Mutex(State())
    private let connected = Gate(open: false)
    /// Opens once on ``stop()``: wakes a paused service so it can finish.
    private let stopped = Gate(open: false)
    /// Called each time a consumer is registered (e.g. to re-check readiness at once).
    private let consumingObserver = Mutex<(@Sendable () -> Void)?>(nil)
    /// Handler failures per message, for bounded redelivery on classic queues.
    private let failures = FailureLedger()
    private let logger: Logger
    private let metrics: SubscriptionMetrics

    /// - Parameter metricsFactory: where the queue's metrics go (see ``WarrenMetrics``); by default the
    ///   bootstrapped `MetricsSystem`.
    public init(subscription: Subscription, configuration: AMQPConfiguration,
                reconnectPolicy: ReconnectPolicy = ReconnectPolicy(), logger: Logger,
                metricsFactory: any MetricsFactory = MetricsSystem.factory) {
        self.subscription = subscription
        self.configuration = configuration
        self.reconnectPolicy = reconnectPolicy
        self.metrics = SubscriptionMetrics(queue: subscription.topology.queue, factory: metricsFactory)
        var logger = logger
        logger[metadataKey: "warren.queue"] = "\(subscription.topology.queue)"
        self.logger = logger
    }

    // MARK: Observing

    /// The current phase.
    public var phase: Phase { state.withLock { $0.phase } }

    /// The live connection and, while consuming, the consumer tag: what the `rabbitmq` check verifies.
    public var current: (connection: AMQPConnection?, consumerTag: String?) {
        state.withLock { ($0.connection, $0.consumerTag) }
    }

    /// Calls `observer` each time a consumer is registered with the broker.
    public func onConsuming(_ observer: @escaping @Sendable () -> Void) {
        consumingObserver.withLock { $0 = observer }
    }

    /// True once the first connect and topology declaration succeeded.
    public var hasStarted: Bool { state.withLock { $0.everConnected } }

    /// Returns once the first connect and topology declaration succeeded (or the task is cancelled).
    public func waitUntilStarted() async { await connected.wait(untilOpen: true) }

    // MARK: Running

    /// Consumes until ``stop()`` or cancellation, reconnecting as needed.
    public func run() async {
        var attempt = 0
        while !isStopping && !Task.isCancelled {
            setPhase(.connecting(attempt: attempt))
            do {
                let connection = try await connect()
                attempt = 0
                try await serve(connection)
                if isStopping {
                    await connection.close()
                    break
                }
                if case .closed(let reason) = connection.state {
                    throw reason ?? AMQPError(.connectionClosed, "connection closed")
                }
            } catch {
                let reason = "\(error)"
                setPhase(.disconnected(reason: reason)) { $0.connection = nil; $0.consumerTag = nil }
                if isStopping { break }
                let delay = reconnectPolicy.delay(forAttempt: attempt)
                // One line per attempt: the first after a loss says so, the others say why the last failed.
                logger.warning(attempt == 0 && hasStarted ? "broker connection lost; reconnecting" : "could not connect to the broker; retrying",
                               metadata: [
                                   "warren.reason": "\(reason)", "warren.reconnect.attempt": "\(attempt + 1)",
                                   "warren.reconnect.delay": "\(delay)",
                               ])
                metrics.reconnects.increment()
                attempt += 1
                try? await Task.sleep(for: delay)
            }
        }
        setPhase(.stopped) { $0.connection = nil; $0.consumerTag = nil }
    }

    /// Stops consuming: no new deliveries; `run()` returns once in-flight handlers are done.
    public func stop() {
        state.withLock { $0.stopping = true }
        stopped.set(open: true)
        gate.set(open: false, reason: "shutting down")
    }

    private var isStopping: Bool { state.withLock { $0.stopping } }

    /// Sets the phase (and whatever `update` changes with it) and the consumer-state gauges, under
    /// one lock so that the gauges follow the phases in order.
    private func setPhase(_ phase: Phase, _ update: (inout State) -> Void = { _ in }) {
        state.withLock { state in
            update(&state)
            if state.phase.consumerState != phase.consumerState { metrics.setState(phase.consumerState) }
            state.phase = phase
        }
    }

    private func connect() async throws -> AMQPConnection {
        let connection = try await AMQPConnection.connect(configuration: configuration, logger: logger)
        do {
            try await subscription.topology.declare(on: connection)
            try await connection.setPrefetch(subscription.prefetch)
        } catch {
            await connection.close()
            throw error
        }
        state.withLock { $0.connection = connection; $0.everConnected = true }
        connected.set(open: true)
        logger.info("connected to the broker", metadata: ["warren.amqp.url": "\(configuration.redactedURL)"])
        return connection
    }

    /// Consumes on `connection` whenever the gate is open, until the connection closes or we stop.
    private func serve(_ connection: AMQPConnection) async throws {
        while connection.state.isOpen && !isStopping {
            if !gate.isOpen {
                setPhase(.paused(reason: gate.reason ?? "paused"))
                await waitForGateOrClose(connection)
                continue
            }
            let consumer = try await connection.consume(queue: subscription.topology.queue)
            setPhase(.consuming) { $0.consumerTag = consumer.tag }
            logger.info("consuming", metadata: ["warren.consumer_tag": "\(consumer.tag)"])
            consumingObserver.withLock { $0 }?()
            defer { state.withLock { $0.consumerTag = nil } }
            let pauser = Task {
                await gate.wait(untilOpen: false)
                guard !Task.isCancelled else { return }
                try? await consumer.cancel()
            }
            defer { pauser.cancel() }
            try await handle(consumer, on: connection)
        }
    }

    private func waitForGateOrClose(_ connection: AMQPConnection) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.gate.wait(untilOpen: true) }
            group.addTask { await self.stopped.wait(untilOpen: true) }
            group.addTask {
                for await state in connection.stateUpdates() { if case .closed = state { return } }
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// Runs the handler for each delivery with at most `concurrency` at once; returns when the
    /// consumer's sequence ends and every handler finished.
    private func handle(_ consumer: AMQPConsumer, on connection: AMQPConnection) async throws {
        let limit = subscription.concurrency
        let failures = self.failures
        let environment = HandlerEnvironment(queue: subscription.topology.queue, publisher: connection, logger: logger,
                                             attempt: { failures.attempt(of: $0) })
        try await withThrowingTaskGroup(of: Void.self) { group in
            var running = 0
            for try await batch in consumer.batches {
                metrics.received.increment(by: Int64(batch.count))
                // Spread the batch over at most `limit` tasks: under load a task runs a chunk of
                // messages one after another instead of costing a task per message.
                let chunkSize = max((batch.count + limit - 1) / limit, min(batch.count, subscription.minimumChunk))
                for start in stride(from: 0, to: batch.count, by: chunkSize) {
                    let chunk = batch[start..<min(start + chunkSize, batch.count)]
                    if running >= limit {
                        try await group.next()
                        running -= 1
                    }
                    running += 1
                    group.addTask { await self.process(Array(chunk), environment) }
                }
            }
            try await group.waitForAll()
        }
    }

    private func process(_ chunk: [AMQPDelivery], _ environment: HandlerEnvironment) async {
        guard gate.isOpen else {
            for delivery in chunk { delivery.nack(requeue: true) }  // arrived after we decided to pause
            metrics.requeued.increment(by: Int64(chunk.count))
            return
        }
        metrics.inFlight.increment(by: Double(chunk.count))
        let started = MonotonicClock.now
        var outcomes = await subscription.handler(chunk, environment)
        let share = (MonotonicClock.now - started).nanoseconds / Int64(chunk.count)
        metrics.inFlight.decrement(by: Double(chunk.count))
        if outcomes.count != chunk.count {
            // A bug in the handler, not in the messages: which outcome belongs to which delivery is
            // unknown, so none is trusted and the whole chunk counts as a failed attempt.
            let reason = "the chunk handler returned \(outcomes.count) outcomes for \(chunk.count) deliveries (it must return one per delivery, in order)"
            logger.error("handler bug: outcomes do not match deliveries; the chunk is retried", metadata: ["warren.reason": "\(reason)"])
            outcomes = Array(repeating: .retry(reason: reason), count: chunk.count)
        }
        for (delivery, outcome) in zip(chunk, outcomes) {
            metrics.handlerDuration.recordNanoseconds(share)
            settle(delivery, outcome)
        }
    }

    private func settle(_ delivery: AMQPDelivery, _ outcome: MessageOutcome) {
        switch outcome {
        case .ack:
            failures.forget(delivery)
            delivery.ack()
            metrics.acked.increment()
        case .deadLetter(let reason):
            logger.warning("dead-lettered a message", metadata: deliveryMetadata(delivery, reason, deadLetter: true))
            delivery.reject(requeue: false)
            metrics.deadLettered.increment()
        case .requeue(let reason):
            logger.debug("requeued a message", metadata: deliveryMetadata(delivery, reason))
            delivery.nack(requeue: true)
            metrics.requeued.increment()
        case .retry(let reason):
            if failures.attempt(of: delivery) >= subscription.maxAttempts {
                failures.forget(delivery)
                logger.warning("dead-lettered a message after repeated failures", metadata: deliveryMetadata(
                    delivery, "gave up after \(subscription.maxAttempts) attempts: \(reason)", deadLetter: true))
                delivery.reject(requeue: false)
                metrics.deadLettered.increment()
            } else {
                logger.info("handler failed; the message will be redelivered", metadata: deliveryMetadata(delivery, reason))
                failures.recordFailure(delivery)
                delivery.nack(requeue: true)
                metrics.retried.increment()
            }
        }
    }

    /// The reason, the message id when the publisher set one, the attempt and, for a dead letter, where it went.
    private func deliveryMetadata(_ delivery: AMQPDelivery, _ reason: String, deadLetter: Bool = false) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["warren.reason": "\(reason)", "warren.attempt": "\(failures.attempt(of: delivery))"]
        if deadLetter { metadata["warren.dead_letter_queue"] = "\(subscription.topology.deadLetterQueue)" }
        if let id = delivery.properties.messageID { metadata["warren.message_id"] = "\(id)" }
        return metadata
    }
}
