import WarrenAMQP
import WarrenHealth

/// A failed dependency check, with a message fit for a probe body (no secrets).
public struct CheckFailure: Error, CustomStringConvertible {
    /// What failed, fit for a probe body (never a secret).
    public var description: String
    /// A check failure saying `description`.
    public init(_ description: String) { self.description = description }
}

extension HealthCheck {
    /// `rabbitmq` for one subscription; see ``rabbitmq(timeout:interval:_:)``.
    public static func rabbitmq(_ service: SubscriptionService, timeout: Duration = .milliseconds(800),
                                interval: Duration = .milliseconds(500)) -> HealthCheck {
        rabbitmq(timeout: timeout, interval: interval) { [service] }
    }

    /// `rabbitmq`: every subscription's connection is open and its consumer registered, proven by a
    /// round trip to the broker (a passive declare on the consumer's channel), not by a local flag. A
    /// subscription paused by its gate proves the round trip alone. The subscriptions are verified
    /// concurrently; the first failure names its queue.
    ///
    /// Slower defaults than Redis and Postgres (800 ms, every 500 ms): the round trip queues behind
    /// the deliveries the connection's owner thread is reading, and a broker that stops answering is
    /// also caught by the heartbeat and the socket, which pause consumption on their own.
    public static func rabbitmq(timeout: Duration = .milliseconds(800), interval: Duration = .milliseconds(500),
                                _ subscriptions: @escaping @Sendable () -> [SubscriptionService]) -> HealthCheck {
        // componentId: the broker(s) in use, host:port (never credentials), so a probe shows which
        // node of a cluster each worker is on.
        HealthCheck(name: "rabbitmq", kind: .readiness, timeout: timeout, interval: interval, componentID: {
            let endpoints = Set(subscriptions().compactMap { $0.current.connection?.connectedEndpoint.description })
            return endpoints.isEmpty ? nil : endpoints.sorted().joined(separator: ",")
        }) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for service in subscriptions() {
                    group.addTask { try await verify(service) }
                }
                try await group.waitForAll()
            }
        }
    }

    private static func verify(_ service: SubscriptionService) async throws {
        let queue = service.subscription.topology.queue
        let (connection, consumerTag) = service.current
        guard let connection, connection.state.isOpen else {
            throw CheckFailure("queue '\(queue)': not connected to the broker (\(service.phase.summary))")
        }
        let info: AMQPQueueInfo
        if let consumerTag {
            info = try await connection.verifyConsumer(consumerTag, queue: queue)
        } else if !service.gate.isOpen {
            info = try await connection.inspectQueue(queue)
        } else {
            throw CheckFailure("connected to \(connection.connectedEndpoint), but no consumer registered on queue '\(queue)' yet")
        }
        // The round trip tells the backlog for free: a gauge, so it shows without the broker's exporter.
        service.metrics.queueMessages.record(Int64(info.messageCount))
        service.metrics.queueConsumers.record(Int64(info.consumerCount))
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
