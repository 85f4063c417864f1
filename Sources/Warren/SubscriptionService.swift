import CoreMetrics
import Logging
import Synchronization
import WarrenAMQP
import WarrenSystem

/// Runs a ``Subscription`` against a broker and keeps it running.
///
/// Connects, declares the topology, sets the prefetch and consumes, handing deliveries to the handler
/// with bounded concurrency. When the connection is lost it reconnects with capped, jittered backoff
/// (with several brokers, the list is shuffled once; each attempt tries all of them, starting with
/// the one after the broker last used or last tried first, so the backoff applies once the whole
/// list failed; logs name the broker in use)
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
        /// The topology was declared in full on some connection and has not been found missing since.
        var topologyDeclared = false
        var stopping = false
        /// Where in ``endpointOrder`` the next connection attempt starts.
        var nextEndpoint = 0
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
    /// The brokers in the order this service goes through them (shuffled once, so that a fleet of
    /// workers spreads over the brokers).
    private let endpointOrder: [AMQPEndpoint]
    private let connected = Gate(open: false)
    /// Opens once on ``stop()``: wakes a paused service so it can finish.
    private let stopped = Gate(open: false)
    /// Called each time a consumer is registered (e.g. to re-check readiness at once).
    private let consumingObserver = Mutex<(@Sendable () -> Void)?>(nil)
    let logger: Logger
    let metrics: SubscriptionMetrics

    /// - Parameter metricsFactory: where the queue's metrics go (see ``WarrenMetrics``); by default the
    ///   bootstrapped `MetricsSystem`.
    public init(subscription: Subscription, configuration: AMQPConfiguration,
                reconnectPolicy: ReconnectPolicy = ReconnectPolicy(), logger: Logger,
                metricsFactory: any MetricsFactory = MetricsSystem.factory) {
        self.subscription = subscription
        self.configuration = configuration
        self.reconnectPolicy = reconnectPolicy
        self.endpointOrder = configuration.shufflesEndpoints ? configuration.endpoints.shuffled() : configuration.endpoints
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
            var current: AMQPConnection?
            do {
                let connection = try await connect()
                current = connection
                attempt = 0
                try await serve(connection)
                if isStopping || Task.isCancelled {
                    await connection.close()
                    break
                }
                if case .closed(let reason) = connection.state {
                    throw reason ?? AMQPError(.connectionClosed, "connection closed")
                }
            } catch {
                // Still open (e.g. the broker cancelled our consumer: the queue was deleted): close it
                // before the next, or each loss would leak a connection and its owner thread.
                if let current, current.state.isOpen { await current.close() }
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
                await sleepUnlessStopped(for: delay)
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
        // Start with the next broker in the rotation; after a failure of the whole list, the
        // next attempt starts one further.
        var configuration = self.configuration
        let start = state.withLock { state in
            defer { state.nextEndpoint += 1 }
            return state.nextEndpoint % endpointOrder.count
        }
        configuration.endpoints = Array(endpointOrder[start...] + endpointOrder[..<start])
        configuration.shufflesEndpoints = false
        let connection = try await AMQPConnection.connect(configuration: configuration, logger: logger)
        // Connected: the next attempt (after this connection is lost) starts after this broker.
        if let used = endpointOrder.firstIndex(of: connection.connectedEndpoint) {
            state.withLock { $0.nextEndpoint = used + 1 }
        }
        do {
            // After a reconnect the durable topology is normally still there: a passive declare of the
            // work queue (a read on the node we reached) proves it, and the full declaration is skipped.
            // The full one binds queues, a cluster-wide metadata write, which on RabbitMQ 3.x waits for
            // every node the cluster still counts as up: with one node hung (not crashed), until the
            // others write it off (net_ticktime, about 60 s), though the surviving nodes could serve us
            // at once. Anything found missing (404 on a passive declare: the work, dead-letter or delay
            // queues, the exchanges) gets the full declaration on the next attempt; other failures
            // (a timeout on a hung node) keep trying the cheap check.
            if state.withLock({ $0.topologyDeclared }) {
                do {
                    try await subscription.topology.verify(on: connection, retry: subscription.options.retry)
                } catch let error as AMQPError where error.replyCode == 404 {
                    state.withLock { $0.topologyDeclared = false }
                    throw error
                }
            } else {
                try await subscription.topology.declare(on: connection, retry: subscription.options.retry)
                state.withLock { $0.topologyDeclared = true }
            }
            try await connection.setPrefetch(subscription.prefetch)
        } catch {
            await connection.close()
            throw error
        }
        state.withLock { $0.connection = connection; $0.everConnected = true }
        connected.set(open: true)
        logger.info("connected to the broker", metadata: [
            "warren.amqp.url": "\(configuration.redactedURL)",
            "warren.amqp.endpoint": "\(connection.connectedEndpoint)",
            "warren.amqp.tls": "\(connection.isTLS)",
        ])
        return connection
    }

    /// Consumes on `connection` whenever the gate is open, until the connection closes or we stop.
    private func serve(_ connection: AMQPConnection) async throws {
        while connection.state.isOpen && !isStopping && !Task.isCancelled {
            if !gate.isOpen {
                setPhase(.paused(reason: gate.reason ?? "paused"))
                await waitForGateOrClose(connection)
                continue
            }
            let consumer = try await connection.consume(queue: subscription.topology.queue, maxBatch: subscription.batchLimit)
            setPhase(.consuming) { $0.consumerTag = consumer.tag }
            logger.info("consuming", metadata: ["warren.consumer_tag": "\(consumer.tag)"])
            consumingObserver.withLock { $0 }?()
            defer { state.withLock { $0.consumerTag = nil } }
            let pauser = Task {
                await gate.wait(untilOpen: false)
                guard !Task.isCancelled else { return }
                do {
                    try await consumer.cancel()
                } catch {
                    // A consumer we cannot cancel would keep delivering into a closed gate: drop the
                    // connection instead (the broker requeues; the reconnect waits for the gate).
                    await connection.close()
                }
            }
            defer { pauser.cancel() }
            try await handle(consumer, on: connection)
        }
    }

    /// Sleeps for `delay`, or less when ``stop()`` is called meanwhile (SIGTERM during a broker outage
    /// must not wait out the backoff).
    private func sleepUnlessStopped(for delay: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: delay) }
            group.addTask { await self.stopped.wait(untilOpen: true) }
            await group.next()
            group.cancelAll()
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
}
