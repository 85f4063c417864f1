import Glibc
import Logging
import Synchronization
import WarrenSystem

/// What Swift tasks and the owner thread share: an inbox of outgoing work, the wake-up pipe, the
/// observable state and the owner's liveness tick. Everything else belongs to the owner thread.
final class ConnectionCore: Sendable {
    /// A settlement queued by ``AMQPDelivery``.
    struct QueuedSettlement {
        let channel: ChannelID
        let deliveryTag: UInt64
        let settlement: AMQPSettlement
    }

    struct Inbox {
        var settlements: [QueuedSettlement] = []
        var commands: [PendingCommand] = []
        /// Jobs of tasks that run on the owner thread (see ``enqueue(_:)``).
        var jobs: [UnownedJob] = []
        var closeRequested = false
        /// The wake-up pipe was written and the owner has not yet drained: no need to write again.
        var wakePending = false
        /// False once the owner thread stopped taking work.
        var accepting = true
    }

    struct Observed {
        var state: AMQPConnectionState = .connecting
        var observers: [Int: AsyncStream<AMQPConnectionState>.Continuation] = [:]
        var nextObserverID = 0
    }

    let configuration: AMQPConfiguration
    let logger: Logger
    let inbox = Mutex(Inbox())
    let observed = Mutex(Observed())
    /// Monotonic ns of the owner loop's last iteration (for the liveness watchdog).
    let lastTick = Atomic<UInt64>(0)
    /// While the owner is inside a synchronous RPC: monotonic ns by which librabbitmq's RPC timeout
    /// will have returned it to its loop; 0 otherwise. Waiting on a hung broker is a bounded wait,
    /// not a stalled thread (see ``AMQPConnection/lastIOTick``).
    let boundedCallDeadline = Atomic<UInt64>(0)
    let wake: WakePipe
    /// The broker the owner connected to (set before `connect` returns).
    let endpoint = Mutex<AMQPEndpoint?>(nil)
    /// The owner thread's `pthread_self()` (0 before it starts): work queued from the owner thread
    /// itself needs no wake-up, it is taken before the thread polls again.
    let ownerThread = Atomic<UInt>(0)

    /// - Throws: ``AMQPError`` when the wake-up pipe cannot be made.
    init(configuration: AMQPConfiguration, logger: Logger) throws(AMQPError) {
        self.configuration = configuration
        self.logger = logger
        self.wake = try WakePipe()
        lastTick.store(MonotonicClock.nanoseconds(), ordering: .relaxed)
    }

    // MARK: Swift side

    /// Queues a settlement; dropped when the connection is closed (the broker requeues the message).
    func settle(channel: ChannelID, _ deliveryTag: UInt64, _ settlement: AMQPSettlement) {
        let wake = inbox.withLock { inbox -> Bool in
            guard inbox.accepting else { return false }
            inbox.settlements.append(QueuedSettlement(channel: channel, deliveryTag: deliveryTag, settlement: settlement))
            return markWake(&inbox)
        }
        if wake { self.wake.signal() }
    }

    /// Queues an ack for each of `deliveries` (all of this connection) under one lock.
    func acknowledge(_ deliveries: ArraySlice<AMQPDelivery>) {
        let wake = inbox.withLock { inbox -> Bool in
            guard inbox.accepting else { return false }
            // By index, reading two fields in place: `for delivery in` copies each delivery (a retain
            // and a release of every reference it holds, ~800 instructions a message).
            for index in deliveries.indices {
                inbox.settlements.append(QueuedSettlement(channel: deliveries[index].channel,
                                                          deliveryTag: deliveries[index].deliveryTag, settlement: .ack))
            }
            return markWake(&inbox)
        }
        if wake { self.wake.signal() }
    }

    /// Queues a command for the owner thread, or fails it at once when the connection is closed.
    func submit(_ command: PendingCommand) {
        let (accepted, wake) = inbox.withLock { inbox -> (Bool, Bool) in
            guard inbox.accepting else { return (false, false) }
            inbox.commands.append(command)
            return (true, markWake(&inbox))
        }
        if wake { self.wake.signal() }
        if !accepted { command.reply.resume(throwing: closedError()) }
    }

    /// Sends `command` to the owner thread and waits for its reply.
    func perform(_ command: AMQPCommand) async throws -> AMQPReply {
        try await withCheckedThrowingContinuation { reply in
            submit(PendingCommand(command: command, reply: reply))
        }
    }

    /// Asks the owner to close the connection cleanly.
    func requestClose() {
        let wake = inbox.withLock { inbox -> Bool in
            guard inbox.accepting else { return false }
            inbox.closeRequested = true
            return markWake(&inbox)
        }
        if wake { self.wake.signal() }
    }

    func closedError() -> AMQPError {
        if case .closed(let reason?) = state {
            return AMQPError(.connectionClosed, "connection is closed: \(reason)")
        }
        return AMQPError(.connectionClosed, "connection is closed")
    }

    /// Whether the caller must write the wake-up pipe (called under the inbox lock). Not from the
    /// owner thread: it drains the inbox again before it polls.
    private func markWake(_ inbox: inout Inbox) -> Bool {
        if inbox.wakePending || isOwnerThread { return false }
        inbox.wakePending = true
        return true
    }

    // MARK: State

    var state: AMQPConnectionState { observed.withLock { $0.state } }

    func setState(_ state: AMQPConnectionState) {
        let isFinal: Bool
        if case .closed = state { isFinal = true } else { isFinal = false }
        // Yield outside the lock: finishing a stream runs its onTermination, which takes the lock.
        let observers = observed.withLock { observed in
            observed.state = state
            defer { if isFinal { observed.observers.removeAll() } }
            return Array(observed.observers.values)
        }
        for continuation in observers {
            continuation.yield(state)
            if isFinal { continuation.finish() }
        }
    }

    func stateUpdates() -> AsyncStream<AMQPConnectionState> {
        let (stream, continuation) = AsyncStream<AMQPConnectionState>.makeStream(bufferingPolicy: .bufferingNewest(8))
        let id: Int? = observed.withLock { observed in
            continuation.yield(observed.state)
            if case .closed = observed.state { return nil }
            let id = observed.nextObserverID
            observed.nextObserverID += 1
            observed.observers[id] = continuation
            return id
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            self?.observed.withLock { _ = $0.observers.removeValue(forKey: id) }
        }
        return stream
    }

    // MARK: Owner side

    /// Takes everything queued so far; the next enqueue writes the wake-up pipe again.
    func drainInbox() -> (settlements: [QueuedSettlement], commands: [PendingCommand], close: Bool) {
        let (drained, wasWoken) = inbox.withLock { inbox in
            let woken = inbox.wakePending
            inbox.wakePending = false
            defer {
                inbox.settlements = []
                inbox.commands = []
            }
            return ((inbox.settlements, inbox.commands, inbox.closeRequested), woken)
        }
        if wasWoken { wake.drain() }
        return drained
    }

    /// Takes the jobs queued for the owner thread.
    func takeJobs() -> [UnownedJob] {
        inbox.withLock { inbox in
            guard !inbox.jobs.isEmpty else { return [] }
            defer { inbox.jobs = [] }
            return inbox.jobs
        }
    }

    var isOwnerThread: Bool { ownerThread.load(ordering: .relaxed) == UInt(pthread_self()) }

    /// Stops taking work; returns the commands that never ran, for the owner to fail. Jobs queued
    /// for the owner thread, and any queued from now on, go to the global concurrent executor.
    func stopAccepting() -> [PendingCommand] {
        let (commands, jobs) = inbox.withLock { inbox in
            inbox.accepting = false
            defer {
                inbox.commands.removeAll()
                inbox.jobs.removeAll()
            }
            return (inbox.commands, inbox.jobs)
        }
        for job in jobs { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
        return commands
    }
}

/// Tasks that prefer the connection as their executor (`withTaskExecutorPreference`,
/// `Task(executorPreference:)`) run on its owner thread, between its reads of the socket: a
/// delivery is handed over, handled and acknowledged in one turn of the owner's loop, with no thread
/// woken (see ``AMQPConnection/taskExecutor``). Once the connection has closed they run on the
/// global concurrent executor.
extension ConnectionCore: TaskExecutor {
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let (accepted, wake) = inbox.withLock { inbox -> (Bool, Bool) in
            guard inbox.accepting else { return (false, false) }
            inbox.jobs.append(job)
            return (true, markWake(&inbox))
        }
        if wake { self.wake.signal() }
        if !accepted { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
    }
}
