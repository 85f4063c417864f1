import Synchronization

/// An open/closed flag that tasks can wait on: consumption runs while it is open.
///
/// Readiness closes it when a check that gates consumption fails, and opens it when the check
/// passes again; shutdown closes it for good.
public final class Gate: Sendable {
    private struct State {
        var open: Bool
        var reason: String?
        var waiters: [Int: (wantOpen: Bool, continuation: CheckedContinuation<Void, Never>)] = [:]
        var nextID = 0
    }

    private let state: Mutex<State>

    /// A gate, open (consumption may run) or closed.
    public init(open: Bool = true) {
        state = Mutex(State(open: open))
    }

    /// Whether consumption may run.
    public var isOpen: Bool { state.withLock { $0.open } }

    /// Why the gate is closed, if it is.
    public var reason: String? { state.withLock { $0.open ? nil : $0.reason } }

    /// Opens or closes the gate and wakes the tasks waiting for that.
    public func set(open: Bool, reason: String? = nil) {
        let woken = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.open = open
            state.reason = reason
            let ready = state.waiters.filter { $0.value.wantOpen == open }
            for id in ready.keys { state.waiters.removeValue(forKey: id) }
            return ready.values.map(\.continuation)
        }
        for continuation in woken { continuation.resume() }
    }

    /// Returns once the gate is open (`true`) or closed (`false`), or the task is cancelled.
    public func wait(untilOpen wantOpen: Bool) async {
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.open == wantOpen || Task.isCancelled { return true }
                    state.waiters[id] = (wantOpen, continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.continuation.resume()
        }
    }
}
