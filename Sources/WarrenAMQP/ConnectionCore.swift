import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Work handed to a connection's owner thread.
struct OwnerTask: Sendable {
    /// Runs on the owner thread with the live connection.
    let run: @Sendable (ConnectionOwner) -> Void
    /// Called instead of `run` when the connection closed before the task could run.
    let fail: @Sendable (AMQPError) -> Void
}

/// What Swift tasks and the owner thread share: an inbox of outgoing work, the wake-up fd, the
/// observable state and the owner's liveness tick. Everything else belongs to the owner thread.
final class ConnectionCore: Sendable {
    struct Inbox {
        var settlements: [(tag: UInt64, settlement: AMQPSettlement)] = []
        var tasks: [OwnerTask] = []
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
    /// Read end of the pipe that wakes the owner from poll(); both ends close in deinit, so a late
    /// write is harmless.
    let wakeFD: Int32
    private let wakeWriteFD: Int32

    init(configuration: AMQPConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        var fds: [Int32] = [-1, -1]
        precondition(pipe(&fds) == 0, "pipe() failed: errno \(errno)")
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        self.wakeFD = fds[0]
        self.wakeWriteFD = fds[1]
        lastTick.store(monotonicNanoseconds(), ordering: .relaxed)
    }

    deinit {
        close(wakeFD)
        close(wakeWriteFD)
    }

    // MARK: Swift side

    /// Queues a settlement; dropped when the connection is closed (the broker requeues the message).
    func settle(_ tag: UInt64, _ settlement: AMQPSettlement) {
        let wake = inbox.withLock { inbox -> Bool in
            guard inbox.accepting else { return false }
            inbox.settlements.append((tag, settlement))
            return Self.markWake(&inbox)
        }
        if wake { signal() }
    }

    /// Queues work for the owner thread, or fails it at once when the connection is closed.
    func submit(_ task: OwnerTask) {
        let (accepted, wake) = inbox.withLock { inbox -> (Bool, Bool) in
            guard inbox.accepting else { return (false, false) }
            inbox.tasks.append(task)
            return (true, Self.markWake(&inbox))
        }
        if wake { signal() }
        if !accepted { task.fail(closedError()) }
    }

    /// Asks the owner to close the connection cleanly.
    func requestClose() {
        let wake = inbox.withLock { inbox -> Bool in
            guard inbox.accepting else { return false }
            inbox.closeRequested = true
            return Self.markWake(&inbox)
        }
        if wake { signal() }
    }

    func closedError() -> AMQPError {
        if case .closed(let reason?) = state {
            return AMQPError(.connectionClosed, "connection is closed: \(reason)")
        }
        return AMQPError(.connectionClosed, "connection is closed")
    }

    private static func markWake(_ inbox: inout Inbox) -> Bool {
        if inbox.wakePending { return false }
        inbox.wakePending = true
        return true
    }

    private func signal() {
        var byte: UInt8 = 1
        _ = write(wakeWriteFD, &byte, 1)
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
    func drainInbox() -> (settlements: [(tag: UInt64, settlement: AMQPSettlement)], tasks: [OwnerTask], close: Bool) {
        let (drained, wasWoken) = inbox.withLock { inbox in
            let woken = inbox.wakePending
            inbox.wakePending = false
            defer {
                inbox.settlements = []
                inbox.tasks = []
            }
            return ((inbox.settlements, inbox.tasks, inbox.closeRequested), woken)
        }
        if wasWoken {
            var buffer: (UInt64, UInt64) = (0, 0)
            while read(wakeFD, &buffer, 16) > 0 {}
        }
        return drained
    }

    /// Stops taking work; returns tasks that never ran so the owner can fail them.
    func stopAccepting() -> [OwnerTask] {
        inbox.withLock { inbox in
            inbox.accepting = false
            defer { inbox.tasks.removeAll() }
            return inbox.tasks
        }
    }
}
