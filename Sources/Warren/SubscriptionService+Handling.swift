import Logging
import Synchronization
import WarrenAMQP
import WarrenSystem

/// Handing deliveries to the handler and settling each with the broker (on Swift concurrency; the
/// AMQP calls only queue work for the connection's owner thread).
extension SubscriptionService {
    /// Runs the handler for each delivery with at most `concurrency` at once; returns when the
    /// consumer's sequence ends and every handler finished.
    func handle(_ consumer: AMQPConsumer, on connection: AMQPConnection) async throws {
        let limit = subscription.concurrency
        var handlerEnvironment = HandlerEnvironment(queue: subscription.topology.queue, publisher: connection, logger: logger,
                                                    attempt: { WarrenHeaders.failures(of: $0.properties) + 1 })
        handlerEnvironment.tracer = MessageTracer.current()
        let environment = handlerEnvironment
        // One task watches every chunk's handler timeout (see HandlerDeadlines).
        let deadlines = subscription.options.handlerTimeout.map(HandlerDeadlines.init)
        let watcher = deadlines.map { deadlines in Task { await deadlines.watch() } }
        defer { watcher?.cancel() }
        // Handlers on the connection's thread: this loop, the chunk tasks and the handlers run there
        // (see AMQPConnection.taskExecutor); otherwise on the cooperative pool.
        let executor = self.executor(of: connection)
        try await withTaskExecutorPreference(executor) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                var running = 0
                for try await batch in consumer.batches {
                    metrics.received.increment(by: Int64(batch.count))
                    // Spread the batch over at most `limit` tasks: under load a task runs a chunk of
                    // messages one after another instead of costing a task per message.
                    let chunkSize = max((batch.count + limit - 1) / limit, min(batch.count, subscription.minimumChunk))
                    for start in stride(from: 0, to: batch.count, by: chunkSize) {
                        let end = min(start + chunkSize, batch.count)
                        if running >= limit {
                            try await group.next()
                            running -= 1
                        }
                        running += 1
                        // The whole batch as it is, or a copy of its part (every delivery retained again;
                        // batches come at most `batchLimit` long, so a chunk handler's are not cut).
                        let chunk = start == 0 && end == batch.count ? batch : Array(batch[start..<end])
                        group.addTask { await self.process(chunk, environment, deadlines, on: connection) }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    /// The executor the subscription's handlers prefer (nil: the cooperative pool).
    func executor(of connection: AMQPConnection) -> (any TaskExecutor)? {
        switch subscription.options.handlerExecutor {
        case .cooperativePool: nil
        case .connectionThread: connection.taskExecutor
        }
    }

    private func process(_ chunk: [AMQPDelivery], _ environment: HandlerEnvironment, _ deadlines: HandlerDeadlines?,
                         on connection: AMQPConnection) async {
        guard gate.isOpen else {
            // Arrived after we decided to pause or stop, unhandled: straight back to the queue (the
            // consumer is being cancelled, so it cannot loop); a quorum queue counts one delivery.
            for delivery in chunk { delivery.nack(requeue: true) }
            metrics.requeued.increment(by: Int64(chunk.count))
            return
        }
        metrics.inFlight.increment(by: Double(chunk.count))
        // A chunk handler's messages are traced around the chunk (one handler call serves them all).
        let spans = subscription.tracesEachMessage ? nil : environment.tracer.map { tracer in
            chunk.map { tracer.consumerSpan(for: $0, queue: environment.queue, attempt: environment.attempt($0)) }
        }
        let started = MonotonicClock.now
        var (outcomes, timedOut) = await runHandler(chunk, environment, deadlines, executor: executor(of: connection))
        let share = (MonotonicClock.now - started).nanoseconds / Int64(chunk.count)
        metrics.inFlight.decrement(by: Double(chunk.count))
        if outcomes.count != chunk.count {
            // A bug in the handler, not in the messages: which outcome belongs to which delivery is
            // unknown, so none is trusted and the whole chunk counts as a failed attempt.
            let reason = "the chunk handler returned \(outcomes.count) outcomes for \(chunk.count) deliveries (it must return one per delivery, in order)"
            logger.error("handler bug: outcomes do not match deliveries; the chunk is retried", metadata: ["warren.reason": "\(reason)"])
            outcomes = Array(repeating: .retry(reason: reason), count: chunk.count)
        }
        if let spans, let tracer = environment.tracer {
            for (span, outcome) in zip(spans, outcomes) { tracer.end(span, outcome: outcome) }
        }
        // A message handler's time is shared among its messages; a batch handler's chunk is one call,
        // observed once (a histogram observation costs ~800 instructions: per message it was ~7 % of
        // a no-op message's cost, for figures that said nothing more).
        if subscription.tracesEachMessage {
            for _ in chunk { metrics.handlerDuration.recordNanoseconds(share) }
        } else {
            metrics.handlerDuration.recordNanoseconds(share * Int64(chunk.count))
        }
        // The plain acks first, together (one lock and one wake-up of the I/O thread for the chunk),
        // then whatever needs a copy published.
        if outcomes.allSatisfy({ $0 == .ack }) {
            AMQPDelivery.ack(chunk)
            metrics.acked.increment(by: Int64(chunk.count))
            return
        }
        let acked = zip(chunk, outcomes).compactMap { $1 == .ack ? $0 : nil }
        AMQPDelivery.ack(acked)
        metrics.acked.increment(by: Int64(acked.count))
        for (delivery, outcome) in zip(chunk, outcomes) where outcome != .ack {
            await settle(delivery, outcome, timedOut: timedOut, on: connection)
        }
    }

    /// Runs the handler under the subscription's timeout. Past it, the handler's task is cancelled and
    /// left behind (cancellation is cooperative: a handler that ignores it runs on, but its result is
    /// no longer waited for), and every delivery of the chunk is a failed attempt.
    private func runHandler(_ chunk: [AMQPDelivery], _ environment: HandlerEnvironment, _ deadlines: HandlerDeadlines?,
                            executor: (any TaskExecutor)?) async -> (outcomes: [MessageOutcome], timedOut: Bool) {
        let handler = subscription.handler
        guard let deadlines else { return (await handler(chunk, environment), false) }
        let race = HandlerRace()
        return await withCheckedContinuation { continuation in
            race.start(continuation)
            let work = Task(executorPreference: executor) { _ = race.finish(.done(await handler(chunk, environment))) }
            let id = deadlines.register(race, work: work)
            race.onFinish { deadlines.remove(id) }
        }.result(count: chunk.count, timeout: deadlines.timeout, logger: logger, metrics: metrics)
    }

    /// Carries out the outcome of one delivery: decides the settlement (pure), then acks, or publishes
    /// the copy (retry, requeue, dead letter) and acks once the broker confirmed it.
    func settle(_ delivery: AMQPDelivery, _ outcome: MessageOutcome, timedOut: Bool, on connection: AMQPConnection) async {
        let failures = WarrenHeaders.failures(of: delivery.properties)
        let settlement = Settlement.decide(outcome, failures: failures, timedOut: timedOut,
                                           topology: subscription.topology, retry: subscription.options.retry)
        switch settlement {
        case .ack:
            delivery.ack()
            metrics.acked.increment()
        case .delay(let queue, let copyFailures, let expiration, let why, let reason):
            var properties = WarrenHeaders.copy(of: delivery, failures: copyFailures)
            properties.expiration = String(expiration.wholeMilliseconds)
            var metadata = deliveryMetadata(delivery, reason, attempt: failures + 1)
            metadata["warren.retry.delay"] = "\(expiration.wholeMilliseconds) ms"
            do {
                try await connection.publish(delivery.body, exchange: "", routingKey: queue, properties: properties)
                delivery.ack()
            } catch {
                metadata["warren.error"] = "\(error)"
                logger.warning("could not publish the delayed copy; the message goes back to the queue at once", metadata: metadata)
                delivery.nack(requeue: true)
                metrics.requeued.increment()
                return
            }
            switch why {
            case .dependency:
                logger.debug("requeued a message", metadata: metadata)
                metrics.requeued.increment()
            case .failure, .timeout:
                logger.info("handler failed; the message will be delivered again after a delay", metadata: metadata)
                metrics.retried(why).increment()
            }
        case .deadLetter(let reason, let attempts, let why):
            var properties = WarrenHeaders.copy(of: delivery, failures: attempts)
            properties.headers[WarrenHeaders.reason] = .string(String(reason.prefix(4096)))
            properties.headers[WarrenHeaders.queue] = .string(subscription.topology.queue)
            var metadata = deliveryMetadata(delivery, reason, attempt: attempts)
            metadata["warren.dead_letter_queue"] = "\(subscription.topology.deadLetterQueue)"
            do {
                try await connection.publish(delivery.body, exchange: subscription.topology.deadLetterExchange,
                                             routingKey: delivery.originalRoutingKey, properties: properties)
                delivery.ack()
            } catch {
                // The broker's own dead-lettering still keeps it (without Warren's headers).
                metadata["warren.error"] = "\(error)"
                delivery.reject(requeue: false)
            }
            logger.warning(why == .exhausted ? "dead-lettered a message after repeated failures" : "dead-lettered a message",
                           metadata: metadata)
            metrics.deadLettered(why).increment()
        }
    }

    /// The reason, the message id when the publisher set one, and the attempt.
    private func deliveryMetadata(_ delivery: AMQPDelivery, _ reason: String, attempt: Int) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["warren.reason": "\(reason)", "warren.attempt": "\(attempt)"]
        if let id = delivery.properties.messageID { metadata["warren.message_id"] = "\(id)" }
        return metadata
    }
}

/// The handler timeouts of one consumer, watched by one task: each chunk registers its handler's task
/// and race, and the watcher ends the races past their deadline and cancels those handlers. (A timer
/// task per chunk cost two more task runs, and a 30-s dispatch timer left pending, for every chunk.)
final class HandlerDeadlines: Sendable {
    private struct Entry {
        let deadline: UInt64
        let race: HandlerRace
        let work: Task<Void, Never>
    }

    private struct State {
        var entries: [Int: Entry] = [:]
        var nextID = 0
    }

    let timeout: Duration
    /// How often the watcher looks: a twentieth of the timeout, within 5–250 ms (a 30-s timeout is
    /// then enforced within 250 ms).
    let tick: Duration
    private let state = Mutex(State())

    init(timeout: Duration) {
        self.timeout = timeout
        self.tick = min(max(timeout / 20, .milliseconds(5)), .milliseconds(250))
    }

    /// Watches `race` (whose handler runs in `work`) from now; returns the id to ``remove(_:)`` it with.
    func register(_ race: HandlerRace, work: Task<Void, Never>) -> Int {
        let deadline = MonotonicClock.nanoseconds() + UInt64(max(timeout.nanoseconds, 0))
        return state.withLock { state in
            defer { state.nextID += 1 }
            state.entries[state.nextID] = Entry(deadline: deadline, race: race, work: work)
            return state.nextID
        }
    }

    /// Stops watching a race that ended.
    func remove(_ id: Int) {
        state.withLock { _ = $0.entries.removeValue(forKey: id) }
    }

    /// Until cancelled: every ``tick``, times out the handlers past their deadline. At most
    /// `concurrency` entries are watched, so a scan is cheap.
    func watch() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: tick)
            let now = MonotonicClock.nanoseconds()
            let expired = state.withLock { state -> [Entry] in
                let ids = state.entries.compactMap { $0.value.deadline <= now ? $0.key : nil }
                return ids.compactMap { state.entries.removeValue(forKey: $0) }
            }
            for entry in expired where entry.race.finish(.timedOut) { entry.work.cancel() }
        }
    }
}

/// The race between a handler and its timeout: whichever finishes first wins, once.
final class HandlerRace: Sendable {
    enum Result: Sendable {
        case done([MessageOutcome])
        case timedOut

        func result(count: Int, timeout: Duration, logger: Logger, metrics: SubscriptionMetrics) -> (outcomes: [MessageOutcome], timedOut: Bool) {
            switch self {
            case .done(let outcomes):
                return (outcomes, false)
            case .timedOut:
                let reason = "the handler ran past its timeout (\(timeout.secondsText)) and was cancelled"
                logger.warning("handler timed out; its messages will be delivered again after a delay",
                               metadata: ["warren.reason": "\(reason)", "warren.messages": "\(count)"])
                metrics.handlerTimeouts.increment(by: Int64(count))
                return (Array(repeating: .retry(reason: reason), count: count), true)
            }
        }
    }

    private struct State {
        var continuation: CheckedContinuation<Result, Never>?
        var finished = false
        var onFinish: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())

    func start(_ continuation: CheckedContinuation<Result, Never>) {
        state.withLock { $0.continuation = continuation }
    }

    /// Runs `action` once the race is decided (at once if it already is).
    func onFinish(_ action: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            if state.finished { return true }
            state.onFinish = action
            return false
        }
        if now { action() }
    }

    /// Ends the race with `result`; false if it had already ended.
    @discardableResult
    func finish(_ result: Result) -> Bool {
        let (continuation, action) = state.withLock { state -> (CheckedContinuation<Result, Never>?, (@Sendable () -> Void)?) in
            guard !state.finished else { return (nil, nil) }
            state.finished = true
            defer { state.continuation = nil; state.onFinish = nil }
            return (state.continuation, state.onFinish)
        }
        guard let continuation else { return false }
        continuation.resume(returning: result)
        action?()
        return true
    }
}
