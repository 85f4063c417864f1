import Warren
import WarrenAMQP

extension Settings {
    /// The subscription `event-worker run` consumes: `QUEUE` with the ingest job's chunk handler, or
    /// one that acks everything (`HANDLER=noop`).
    func subscription(job: IngestJob) -> Subscription {
        let handler: @Sendable ([AMQPDelivery]) async -> [MessageOutcome] = switch self.handler {
        case .ingest: job.handle
        case .noop: { deliveries in Array(repeating: .ack, count: deliveries.count) }
        }
        return Subscription(
            Topology(queue: queue, queueType: queueType),
            options: SubscriptionOptions(prefetch: prefetch, concurrency: concurrency, retry: retry,
                                         handlerTimeout: handlerTimeout,
                                         handlerExecutor: handlerThread == .connection ? .connectionThread : .cooperativePool),
            batchHandler: handler)
    }
}
