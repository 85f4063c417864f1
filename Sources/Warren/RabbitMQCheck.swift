import WarrenAMQP
import WarrenHealth

/// A failed dependency check, with a message fit for a probe body (no secrets).
public struct CheckFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension HealthCheck {
    /// `rabbitmq`: the connection is open and our consumer is registered, proven by a round trip to
    /// the broker (a passive declare on the consumer's channel), not by a local flag. While consumption
    /// is paused by the gate, the round trip alone is checked.
    public static func rabbitmq(_ service: SubscriptionService, timeout: Duration = .milliseconds(800),
                                interval: Duration = .milliseconds(500)) -> HealthCheck {
        let queue = service.subscription.topology.queue
        return HealthCheck(name: "rabbitmq", kind: .readiness, timeout: timeout, interval: interval) {
            let (connection, consumerTag) = service.current
            guard let connection, connection.state.isOpen else {
                throw CheckFailure("not connected to the broker (\(service.phase.summary))")
            }
            if let consumerTag {
                try await connection.verifyConsumer(consumerTag, queue: queue)
            } else if !service.gate.isOpen {
                _ = try await connection.inspectQueue(queue)
            } else {
                throw CheckFailure("connected, but no consumer registered on queue '\(queue)' yet")
            }
        }
    }
}

extension SubscriptionService.Phase {
    /// A short human description.
    public var summary: String {
        switch self {
        case .connecting(let attempt): attempt == 0 ? "connecting" : "reconnecting, attempt \(attempt + 1)"
        case .consuming: "consuming"
        case .paused(let reason): "paused: \(reason)"
        case .disconnected(let reason): "disconnected: \(reason)"
        case .stopped: "stopped"
        }
    }
}
