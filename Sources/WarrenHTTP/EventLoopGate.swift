import NIOCore
import Synchronization

/// Lets tasks on Swift's cooperative pool hand work back to the server's event loop only while
/// that loop is alive. An async handler can outlive the server (it ignored cancellation, or the
/// shutdown timeout passed): scheduling on a shut-down loop is an error in SwiftNIO, so the server
/// closes the gate before it shuts the loop down, and late results are dropped.
final class EventLoopGate: Sendable {
    private let isOpen = Mutex(true)

    /// Runs `work` on `loop` unless the gate is closed; returns whether it was scheduled.
    @discardableResult
    func execute(on loop: any EventLoop, _ work: @escaping @Sendable () -> Void) -> Bool {
        self.isOpen.withLock { isOpen in
            guard isOpen else { return false }
            loop.execute(work)
            return true
        }
    }

    /// Closes the gate for good.
    func close() {
        self.isOpen.withLock { $0 = false }
    }
}
