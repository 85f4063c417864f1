import CRabbitMQ
import Glibc
import Logging
import WarrenSystem

/// A consumer's stream and the deliveries read for it in the current loop turn. Owner thread only.
final class ConsumerSink {
    let id: ConsumerID
    let channel: ChannelID
    /// Hand ``pending`` over once it holds this many (``AMQPConnection/consume(queue:consumerTag:exclusive:arguments:maxBatch:)``).
    let maxBatch: Int
    let continuation: AsyncThrowingStream<[AMQPDelivery], any Error>.Continuation
    /// Unchecked exclusivity: only the owner thread touches it, one access at a time (the dynamic
    /// check cost ~70 instructions per delivery).
    @exclusivity(unchecked) var pending: [AMQPDelivery] = []

    init(id: ConsumerID, channel: ChannelID, maxBatch: Int, continuation: AsyncThrowingStream<[AMQPDelivery], any Error>.Continuation) {
        self.id = id
        self.channel = channel
        self.maxBatch = maxBatch
        self.continuation = continuation
    }
}

/// The librabbitmq adapter: the one thread that owns a librabbitmq connection. Every C call on the
/// connection happens here; the protocol decisions are the ``ConnectionStateMachine``'s.
///
/// The adapter turns what librabbitmq reads into events for the state machine and performs the
/// actions it returns: send settlements, hand deliveries over, resume publishers, end consumers.
/// It also carries out the ``AMQPCommand``s queued by ``AMQPConnection``.
///
/// The loop: drain the inbox (settlements, then commands), read every frame that is ready
/// (bounded, so acks keep flowing under load) and hand each consumer its batch, then poll() the
/// socket and the wake-up pipe. Reading frames also lets librabbitmq send heartbeats.
///
/// Only the owner thread touches its state, so the properties used for every delivery are
/// `@exclusivity(unchecked)`: the run-time exclusivity check of each access (`swift_beginAccess`,
/// ~70 instructions) cost ~400 instructions per delivery, and none of these accesses can overlap
/// (the state machine and the string cache are plain values that call nothing back).
final class ConnectionOwner {
    let core: ConnectionCore
    /// The one channel this connection opens (``AMQPConnection`` has one).
    let channel: ChannelID = 1
    let policy: ConnectPolicy
    var conn: amqp_connection_state_t?
    /// The C state of a TLS socket; freed after the connection (whose SSL_CTX points at it).
    var tlsState: TLSSocketState?
    @exclusivity(unchecked) var machine = ConnectionStateMachine()
    /// The streams of the consumers the state machine knows, by id.
    var sinks: [ConsumerID: ConsumerSink] = [:]
    /// The publishers waiting for a confirm.
    var confirms: [ConfirmID: CheckedContinuation<AMQPReply, any Error>] = [:]
    /// Strings of the last delivery, reused while the bytes match.
    @exclusivity(unchecked) var reused = ReusedDeliveryStrings()
    /// The sink the last delivery went to (see ``sink(_:)``).
    @exclusivity(unchecked) var lastSink: ConsumerSink?
    /// Commands taken from the inbox that never ran because the connection failed first.
    private var orphans: [PendingCommand] = []
    var logger: Logger { core.logger }

    /// Frames handled per loop turn before the inbox is drained again.
    static let framesPerTurn = 256
    /// Jobs run per loop turn (at least; a batch taken is run whole) before the socket is read again.
    static let jobsPerTurn = 1024
    /// Frames read, and body bytes among them, since librabbitmq's buffers were last released.
    @exclusivity(unchecked) var unreleasedFrames = 0
    @exclusivity(unchecked) var unreleasedBodyBytes = 0
    /// Release the buffers after this many frames, or this many body bytes (see ``readFrames(limit:)``).
    static let framesPerRelease = 64
    static let bodyBytesPerRelease = 256 * 1024

    /// How long the frames of a message may take to follow its `basic.deliver`: the RPC timeout.
    let contentTimeout: timeval

    init(core: ConnectionCore) {
        self.core = core
        self.contentTimeout = timeval(tv_sec: max(1, Int(core.configuration.rpcTimeout.components.seconds)), tv_usec: 0)
        self.policy = ConnectPolicy(configuration: core.configuration)
    }

    /// Starts the owner thread of `core` and waits until it is connected.
    ///
    /// - Parameter startThread: starts a detached OS thread, returning 0 or a `pthread_create`
    ///   error; tests pass one that fails.
    /// - Throws: ``AMQPError`` when the thread cannot be started or the connection fails.
    static func start(
        core: ConnectionCore,
        startThread: (@escaping @Sendable () -> Void) -> Int32 = { startDetachedThread($0) }
    ) async throws {
        try await withCheckedThrowingContinuation { (connected: CheckedContinuation<Void, any Error>) in
            let rc = startThread { ConnectionOwner(core: core).run(connected: connected) }
            guard rc != 0 else { return }
            let error = AMQPError(.connectFailed, "could not start the connection's I/O thread (pthread_create: \(String(cString: strerror(rc))))")
            _ = core.stopAccepting()
            core.setState(.closed(error))
            connected.resume(throwing: error)
        }
    }

    // MARK: Lifecycle

    /// Connects, reports through `connected`, then loops until the connection ends.
    func run(connected: CheckedContinuation<Void, any Error>) {
        core.ownerThread.store(UInt(pthread_self()), ordering: .relaxed)
        warren_name_this_thread("warren-amqp")
        let opened: ConnectionStateMachine.OpenAction
        do {
            opened = try open()
        } catch {
            destroy()
            finish(machine.failed(error))
            connected.resume(throwing: error)
            return
        }
        core.setState(.open)
        connected.resume()
        var reason: AMQPError?
        switch opened {
        case .ready:
            do {
                try loop()
            } catch {
                reason = error
                logger.warning("AMQP connection lost", metadata: ["warren.amqp.error": "\(error)"])
            }
        case .closeConnection(let channels):
            closeCleanly(settlements: [], channels: channels)
        }
        destroy()
        finish(reason.map { machine.failed($0) } ?? machine.closeCompleted())
        core.ownerThread.store(0, ordering: .relaxed)
    }

    private func loop() throws(AMQPError) {
        var fds = [
            pollfd(fd: amqp_get_sockfd(conn), events: Int16(POLLIN), revents: 0),
            pollfd(fd: core.wake.readFD, events: Int16(POLLIN), revents: 0),
        ]
        // Set after a turn that read the socket dry and then ran jobs: the next turn sends what the
        // jobs queued and polls without reading first (a read would cost a recv() finding nothing;
        // poll() returns at once if data came meanwhile). Never two turns in a row.
        var skipRead = false
        while true {
            let now = MonotonicClock.nanoseconds()
            core.lastTick.store(now, ordering: .relaxed)
            let (settlements, commands, closeRequested) = core.drainInbox()
            for item in settlements where !machine.settle(channel: item.channel, deliveryTag: item.deliveryTag, item.settlement) {
                logger.debug("dropped a settlement for an unknown delivery tag", metadata: ["warren.amqp.delivery_tag": "\(item.deliveryTag)"])
            }
            // Acks wait a little for more (see ConnectionStateMachine.dueSettlements(at:)).
            try send(machine.dueSettlements(at: now))
            try run(commands)
            try send(machine.dueSettlements(at: now))
            if closeRequested {
                if case .closeConnection(let settlements, let channels) = machine.closeRequested() {
                    closeCleanly(settlements: settlements, channels: channels)
                }
                return
            }

            var handled = 0
            if !skipRead {
                handled = try readFrames(limit: Self.framesPerTurn)
                handOverDeliveries()
            }
            // Tasks running on this thread (handlers of a subscription that prefers the connection
            // as executor) go on now; what they queue (acks, publishes) is drained next turn.
            let ranJobs = runJobs()
            skipRead = ranJobs && !skipRead && handled < Self.framesPerTurn
            if handled == Self.framesPerTurn || ranJobs { continue }  // more may be buffered: drain the inbox and go on

            switch machine.poll(at: MonotonicClock.nanoseconds()) {
            case .heartbeatTimeout(let error):
                throw error
            case .poll(let milliseconds):
                fds[0].revents = 0
                fds[1].revents = 0
                let rc = poll(&fds, 2, milliseconds)
                if rc < 0 && errno != EINTR {
                    throw AMQPError(.socketError, "poll() failed: errno \(errno)")
                }
                if fds[0].revents != 0 { machine.received(at: MonotonicClock.nanoseconds()) }
            }
        }
    }

    /// Runs the jobs of tasks that prefer this connection as their executor, and the jobs those
    /// queue, up to ``jobsPerTurn`` before the socket is read again; whether any ran.
    private func runJobs() -> Bool {
        var ran = 0
        while ran < Self.jobsPerTurn {
            let jobs = core.takeJobs()
            if jobs.isEmpty { break }
            let executor = core.asUnownedTaskExecutor()
            for job in jobs { job.runSynchronously(on: executor) }
            ran += jobs.count
        }
        return ran > 0
    }

    /// Carries out commands in order; stops at the first that breaks the connection.
    private func run(_ commands: [PendingCommand]) throws(AMQPError) {
        // Each command is at most one RPC, bounded by the RPC timeout (plus a second for the
        // frames handled around it): the liveness watchdog must not take that wait for a stall.
        let bound = UInt64(max(core.configuration.rpcTimeout.nanoseconds, 0)) + 1_000_000_000
        defer { core.boundedCallDeadline.store(0, ordering: .relaxed) }
        for (index, pending) in commands.enumerated() {
            core.boundedCallDeadline.store(MonotonicClock.nanoseconds() + bound, ordering: .relaxed)
            switch execute(pending.command) {
            case .replied(let reply):
                pending.reply.resume(returning: reply)
            case .refused(let error):
                pending.reply.resume(throwing: error)
            case .awaitingConfirm(let id):
                confirms[id] = pending.reply
            case .connectionFailed(let error):
                pending.reply.resume(throwing: error)
                orphans = Array(commands[(index + 1)...])
                throw error
            }
        }
    }

    /// Sends the final settlements, closes the channels and the connection. Errors are ignored:
    /// the connection is going away either way.
    private func closeCleanly(settlements: [ConnectionStateMachine.Settlement], channels: [ChannelID]) {
        guard let conn else { return }
        try? send(settlements)
        for channel in channels { _ = amqp_channel_close(conn, channel, AMQP_REPLY_SUCCESS) }
        _ = amqp_connection_close(conn, AMQP_REPLY_SUCCESS)
        logger.debug("AMQP connection closed")
    }

    func destroy() {
        guard let conn else { return }
        amqp_destroy_connection(conn)
        self.conn = nil
        tlsState = nil
    }

    /// Publishes the end to everyone waiting: state, consumers, confirms, queued commands.
    private func finish(_ shutdown: ConnectionStateMachine.Shutdown?) {
        let unrun = core.stopAccepting() + orphans
        orphans = []
        let shutdown = shutdown ?? .init(reason: nil, consumers: [], confirms: [])
        core.setState(.closed(shutdown.reason))
        for id in shutdown.consumers {
            finishConsumer(id, error: shutdown.consumerError)
        }
        for id in shutdown.confirms {
            confirms.removeValue(forKey: id)?.resume(throwing: shutdown.requestError)
        }
        for command in unrun {
            command.reply.resume(throwing: shutdown.requestError)
        }
        // Nothing is left unless the state machine lost track of something; never leave a waiter hanging.
        for id in Array(sinks.keys) { finishConsumer(id, error: shutdown.consumerError) }
        for publisher in confirms.values { publisher.resume(throwing: shutdown.requestError) }
        confirms.removeAll()
    }

    // MARK: Actions

    /// Sends settlement commands.
    func send(_ settlements: [ConnectionStateMachine.Settlement]) throws(AMQPError) {
        guard let conn, !settlements.isEmpty else { return }
        for settlement in settlements {
            let rc: Int32 = switch settlement.command {
            case .ack(let tag, let multiple):
                amqp_basic_ack(conn, settlement.channel, tag, multiple ? 1 : 0)
            case .nack(let tag, let multiple, let requeue):
                amqp_basic_nack(conn, settlement.channel, tag, multiple ? 1 : 0, requeue ? 1 : 0)
            case .reject(let tag, let requeue):
                amqp_basic_reject(conn, settlement.channel, tag, requeue ? 1 : 0)
            }
            guard rc == AMQP_STATUS_OK.rawValue else {
                throw AMQPError(status: rc, doing: "send \(settlement.command)")
            }
        }
    }

    /// Yields each consumer's batch of deliveries.
    func handOverDeliveries() {
        for sink in sinks.values where !sink.pending.isEmpty {
            handOver(sink)
        }
    }

    /// Yields `sink`'s batch; a consumer whose sequence is gone gets it requeued.
    func handOver(_ sink: ConsumerSink) {
        let batch = sink.pending
        sink.pending.removeAll(keepingCapacity: true)
        if case .terminated = sink.continuation.yield(batch) {
            machine.handOverRefused(channel: sink.channel, deliveryTags: batch.lazy.map(\.deliveryTag))
        }
    }

    /// Ends a consumer's sequence after handing it what was read for it.
    func finishConsumer(_ id: ConsumerID, error: AMQPError?) {
        guard let sink = sinks.removeValue(forKey: id) else { return }
        if lastSink === sink { lastSink = nil }
        if !sink.pending.isEmpty { handOver(sink) }
        if let error { sink.continuation.finish(throwing: error) } else { sink.continuation.finish() }
    }

    /// Resumes the publishers of confirmed (or refused) messages.
    func resolve(_ confirmation: ConnectionStateMachine.Confirmation) {
        for sequence in confirmation.sequences {
            guard let publisher = confirms.removeValue(forKey: ConfirmID(channel: confirmation.channel, sequence: sequence)) else {
                continue
            }
            if let error = confirmation.error { publisher.resume(throwing: error) } else { publisher.resume(returning: .done) }
        }
    }
}
