/// How a subscription retries a message whose handler failed: through the broker, after a delay
/// that doubles from ``initialDelay`` up to ``maximumDelay``, at most ``maxAttempts`` times in all.
///
/// A failed message is not put back with `nack(requeue:)` (that would come straight back, as fast as
/// the worker can take it). Warren publishes a copy, with publisher confirms, to a delay queue
/// `<queue>.retry.<ms>ms` whose message TTL dead-letters it back to the work queue, and acks the
/// original only once the copy is confirmed: a crash in between gives a duplicate, never a loss. The
/// copy carries the failed attempts so far in header `x-warren-attempts`, so the count is exact on
/// classic and quorum queues, across restarts and replicas.
///
/// A message put back because a dependency is down (``MessageOutcome/requeue(reason:)``) goes through
/// the first delay queue too, with its attempt count unchanged: never hot, never an attempt, and,
/// being a new message each time, never near a quorum queue's delivery limit.
public struct RetryPolicy: Sendable, Equatable {
    /// Handler attempts in all, the first included; after the last failure the message is
    /// dead-lettered. 1 means no retry.
    public var maxAttempts: Int
    /// The delay before the second attempt (and before a requeued message comes back).
    public var initialDelay: Duration
    /// The longest delay.
    public var maximumDelay: Duration
    /// Each delay is shortened by a random share up to this (0.2: 0–20 % shorter), so that messages
    /// that failed together do not all come back at once.
    public var jitter: Double

    /// A policy; the defaults are `event-worker`'s (`MAX_ATTEMPTS` 5, `RETRY_DELAY` 1 s,
    /// `RETRY_DELAY_MAX` 60 s).
    public init(maxAttempts: Int = 5, initialDelay: Duration = .seconds(1), maximumDelay: Duration = .seconds(60),
                jitter: Double = 0.2) {
        precondition(maxAttempts > 0, "RetryPolicy: maxAttempts must be positive")
        precondition(initialDelay > .zero && maximumDelay >= initialDelay, "RetryPolicy: 0 < initialDelay <= maximumDelay")
        precondition((0..<1).contains(jitter), "RetryPolicy: jitter must be in 0..<1")
        self.maxAttempts = maxAttempts
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.jitter = jitter
    }

    /// The delay queue's delay after `failures` failed attempts (1 for the first failure), before jitter:
    /// `initialDelay × 2^(failures−1)`, at most `maximumDelay`, in whole milliseconds.
    public func delay(afterFailures failures: Int) -> Duration {
        let initial = initialDelay.wholeMilliseconds
        let cap = maximumDelay.wholeMilliseconds
        var delay = initial
        for _ in 1..<max(1, failures) where delay < cap { delay *= 2 }
        return .milliseconds(min(delay, cap))
    }

    /// Every delay the policy uses (one delay queue each), shortest first: the requeue delay and each
    /// retry's.
    public var delays: [Duration] {
        var delays = [delay(afterFailures: 1)]
        for failures in 1..<max(1, maxAttempts) where !delays.contains(delay(afterFailures: failures)) {
            delays.append(delay(afterFailures: failures))
        }
        return delays
    }

    /// `delay` shortened by up to ``jitter`` of itself; `random` is uniform in 0..<1.
    func jittered(_ delay: Duration, random: Double = Double.random(in: 0..<1)) -> Duration {
        let millis = delay.wholeMilliseconds
        return .milliseconds(max(1, millis - Int64(Double(millis) * jitter * random)))
    }
}

extension Duration {
    /// Whole milliseconds, at least 1 (TTLs and delay-queue names).
    var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return max(1, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }
}
