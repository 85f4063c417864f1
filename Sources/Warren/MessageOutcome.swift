/// What a handler decided about a message, and so how it is settled with the broker.
public enum MessageOutcome: Sendable, Equatable {
    /// Done: acknowledge, the broker forgets it.
    case ack
    /// The message itself is bad (not JSON, wrong shape, a value that cannot be stored): it goes to
    /// `<queue>.dead` at once with `reason` in header `x-warren-reason`, logged once; never retried.
    case deadLetter(reason: String)
    /// A dependency the handler needs is down: back to the queue after the first retry delay, not
    /// counted as an attempt, never dead-lettered; consumption pauses until readiness passes again.
    case requeue(reason: String)
    /// The handler failed: delivered again after a growing delay (``RetryPolicy``), up to the
    /// subscription's attempts, then dead-lettered.
    case retry(reason: String)
}
