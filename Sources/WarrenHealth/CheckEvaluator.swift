import Synchronization
import WarrenSystem

/// Runs one check's probe under its timeout, without ever piling probes up.
///
/// A probe stuck in a blocking C call cannot be cancelled; when it times out, the evaluator keeps its
/// task and, on the next evaluation, waits for that same task (under the timeout again) instead of
/// starting another one. So a hung dependency costs one stuck call, not one per interval.
final class CheckEvaluator: Sendable {
    let check: HealthCheck
    private let inFlight = Mutex<(task: Task<Void, any Error>, since: UInt64)?>(nil)

    init(check: HealthCheck) {
        self.check = check
    }

    func evaluate() async -> HealthCheckResult {
        let start = MonotonicClock.nanoseconds()
        let (task, since) = inFlight.withLock { current in
            if let current { return current }
            let task = Task { try await check.probe() }
            current = (task, start)
            return (task, start)
        }
        let outcome = await Self.race(task, timeout: check.timeout)
        let end = MonotonicClock.nanoseconds()
        let elapsedMs = Double(end - since) / 1_000_000
        let duration = Duration.nanoseconds(Int64(end - since))
        switch outcome {
        case .finished(let result):
            inFlight.withLock { current in if current?.since == since { current = nil } }
            let component = check.componentID?()
            switch result {
            case .success:
                return HealthCheckResult(status: .pass, observedValue: (elapsedMs * 1000).rounded() / 1000, observedUnit: "ms",
                                         componentID: component, duration: duration, measuredAt: end)
            case .failure(let error):
                return HealthCheckResult(status: .fail, observedValue: (elapsedMs * 1000).rounded() / 1000, observedUnit: "ms",
                                         output: "\(error)", componentID: component, duration: duration, measuredAt: end)
            }
        case .timedOut:
            let what = since == start ? "no answer within \(Int(check.timeout.milliseconds)) ms"
                : "still waiting for an answer after \(Int(elapsedMs)) ms"
            return HealthCheckResult(status: .fail, observedValue: elapsedMs.rounded(), observedUnit: "ms", output: what,
                                     duration: duration, measuredAt: end)
        }
    }

    private enum Outcome: Sendable {
        case finished(Result<Void, any Error>)
        case timedOut
    }

    /// Waits for `task` or `timeout`, whichever comes first; the task is left running.
    private static func race(_ task: Task<Void, any Error>, timeout: Duration) async -> Outcome {
        await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
            let resumed = Once()
            let timer = Task {
                try? await Task.sleep(for: timeout)
                if resumed.claim() { continuation.resume(returning: .timedOut) }
            }
            Task {
                let result = await task.result
                if resumed.claim() {
                    timer.cancel()
                    continuation.resume(returning: .finished(result))
                }
            }
        }
    }
}

/// A flag that exactly one caller can claim.
final class Once: Sendable {
    private let flag = Atomic<Bool>(false)
    func claim() -> Bool { !flag.exchange(true, ordering: .acquiringAndReleasing) }
}
