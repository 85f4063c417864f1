import WarrenAMQP

/// What becomes of a delivery once its handler decided: derived from the outcome, the failed attempts
/// so far (header `x-warren-attempts`) and the retry policy alone — no I/O, unit-tested as such.
/// ``SubscriptionService`` carries it out on the connection that delivered the message.
enum Settlement: Equatable {
    /// Why a message is put back.
    enum DelayReason: String, Equatable {
        /// The handler failed (counted as an attempt).
        case failure
        /// The handler ran past its timeout (counted as an attempt).
        case timeout
        /// A dependency is down (not an attempt).
        case dependency
    }

    /// Why a message is dead-lettered.
    enum DeadLetterReason: String, Equatable {
        /// The message itself is wrong: undecodable, refused by the handler, unstorable.
        case invalid
        /// Its attempts ran out.
        case exhausted
    }

    /// Done: ack.
    case ack
    /// Publish a copy to delay queue `queue` carrying `failures` failed attempts and expiring after
    /// `expiration`; once the broker confirmed it, ack the original.
    case delay(queue: String, failures: Int, expiration: Duration, why: DelayReason, reason: String)
    /// Publish a copy to the dead-letter exchange with `reason` and `attempts` in its headers; once the
    /// broker confirmed it, ack the original.
    case deadLetter(reason: String, attempts: Int, why: DeadLetterReason)

    /// The settlement of `outcome` for a message that failed `failures` times before this attempt.
    /// - Parameters:
    ///   - timedOut: the outcome is a retry because the handler ran past its timeout.
    ///   - random: uniform in 0..<1, for the jitter; drawn only for a delay (the system generator is a
    ///     `getrandom` system call: per ack it was ~10 % of a no-op message's CPU).
    static func decide(_ outcome: MessageOutcome, failures: Int, timedOut: Bool = false, topology: Topology,
                       retry: RetryPolicy, random: @autoclosure () -> Double = Double.random(in: 0..<1)) -> Settlement {
        let attempt = failures + 1
        switch outcome {
        case .ack:
            return .ack
        case .deadLetter(let reason):
            return .deadLetter(reason: reason, attempts: attempt, why: .invalid)
        case .requeue(let reason):
            let delay = retry.delay(afterFailures: 1)
            return .delay(queue: topology.retryQueue(delay: delay), failures: failures,
                          expiration: retry.jittered(delay, random: random()), why: .dependency, reason: reason)
        case .retry(let reason):
            guard attempt < retry.maxAttempts else {
                return .deadLetter(reason: "gave up after \(attempt) attempts: \(reason)", attempts: attempt, why: .exhausted)
            }
            let delay = retry.delay(afterFailures: attempt)
            return .delay(queue: topology.retryQueue(delay: delay), failures: attempt,
                          expiration: retry.jittered(delay, random: random()), why: timedOut ? .timeout : .failure, reason: reason)
        }
    }
}

/// The headers Warren writes on the copies it publishes.
enum WarrenHeaders {
    /// Failed handler attempts so far (an integer; absent: none).
    static let attempts = "x-warren-attempts"
    /// Why a message was dead-lettered.
    static let reason = "x-warren-reason"
    /// The exchange and routing key a dead letter was first published with, and the queue it failed in.
    static let originalExchange = "x-warren-original-exchange"
    static let originalRoutingKey = "x-warren-original-routing-key"
    static let queue = "x-warren-queue"
    /// The headers of a failure (a redriven message starts over without them; it keeps its original routing).
    static let written: [String] = [attempts, reason, queue]
    /// Headers the broker adds on dead-lettering, which a copy must not carry into its next life.
    static let brokerDeathHeaders: [String] = [
        "x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
        "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason", "x-delivery-count",
    ]

    /// The failed attempts a delivery carries.
    static func failures(of properties: AMQPProperties) -> Int {
        guard let value = properties.headers[attempts] else { return 0 }
        switch value {
        case .int(let n): return max(0, Int(n))
        default: return value.stringValue.flatMap { Int($0) }.map { max(0, $0) } ?? 0
        }
    }

    /// `properties` for a copy of `delivery`: the broker's death headers dropped, the attempts set, and
    /// where the message was first published kept (a delay queue dead-letters the copy back through
    /// the default exchange, which would otherwise be all a retry knows of its routing).
    static func copy(of delivery: AMQPDelivery, failures: Int) -> AMQPProperties {
        var properties = delivery.properties
        for header in brokerDeathHeaders { properties.headers.removeValue(forKey: header) }
        properties.headers[attempts] = .int(Int64(failures))
        properties.headers[originalExchange] = .string(delivery.originalExchange)
        properties.headers[originalRoutingKey] = .string(delivery.originalRoutingKey)
        properties.expiration = nil
        return properties
    }
}

extension AMQPDelivery {
    /// The exchange the message was first published to, before any of Warren's delay queues.
    var originalExchange: String {
        properties.headers[WarrenHeaders.originalExchange]?.stringValue ?? exchange
    }

    /// The routing key the message was first published with, before any of Warren's delay queues.
    var originalRoutingKey: String {
        properties.headers[WarrenHeaders.originalRoutingKey]?.stringValue ?? routingKey
    }
}
