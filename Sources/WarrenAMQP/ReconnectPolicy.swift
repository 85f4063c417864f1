import WarrenSystem

/// Capped exponential backoff with jitter, for reconnecting to a broker.
///
/// Pure: it computes delays and never sleeps. Attempt `n` (from 0) waits a uniformly random time in
/// `[base·2ⁿ·(1−jitter), base·2ⁿ]`, capped at `maximum` ("equal jitter" when `jitter` is 0.5), so a
/// fleet of workers that lost the same broker does not reconnect in lockstep.
public struct ReconnectPolicy: Sendable, Equatable {
    /// The delay before the first retry, without jitter.
    public var initialDelay: Duration
    /// The longest delay between attempts.
    public var maximumDelay: Duration
    /// The fraction of each delay that is randomised, in 0...1.
    public var jitter: Double

    public init(initialDelay: Duration = .milliseconds(100), maximumDelay: Duration = .seconds(10), jitter: Double = 0.5) {
        precondition(initialDelay > .zero && maximumDelay >= initialDelay, "ReconnectPolicy: need 0 < initialDelay <= maximumDelay")
        precondition((0...1).contains(jitter), "ReconnectPolicy: jitter must be in 0...1")
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.jitter = jitter
    }

    /// The upper bound of the delay before retry number `attempt` (0-based): `initial·2^attempt`, capped.
    func ceiling(forAttempt attempt: Int) -> Duration {
        let initial = initialDelay.seconds
        let cap = maximumDelay.seconds
        let factor = Double(UInt64(1) << UInt64(min(max(attempt, 0), 62)))
        return .seconds(min(initial * factor, cap))
    }

    /// The delay before retry number `attempt` (0-based), with jitter drawn from `generator`.
    func delay<G: RandomNumberGenerator>(forAttempt attempt: Int, using generator: inout G) -> Duration {
        let ceiling = self.ceiling(forAttempt: attempt).seconds
        let floor = ceiling * (1 - jitter)
        let value = floor == ceiling ? ceiling : Double.random(in: floor...ceiling, using: &generator)
        return .seconds(value)
    }

    /// The delay before retry number `attempt` (0-based), with system randomness.
    public func delay(forAttempt attempt: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(forAttempt: attempt, using: &generator)
    }
}
