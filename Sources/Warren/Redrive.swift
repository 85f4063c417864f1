import Synchronization
import WarrenAMQP

extension Topology {
    /// Moves dead letters from `<queue>.dead` back to `<queue>`, their attempts reset (Warren's and the
    /// broker's death headers removed), each published with a confirm before it is removed from the
    /// dead-letter queue: a failure half-way leaves duplicates, never a loss.
    ///
    /// - Parameter limit: at most this many; `nil`: the dead letters present when it starts (those
    ///   that die again meanwhile are not moved twice). Fewer when some leave the dead-letter queue
    ///   by other means meanwhile: it returns once the queue has nothing left for it.
    /// - Returns: how many moved.
    public func redrive(on connection: AMQPConnection, limit: Int? = nil) async throws -> Int {
        let present = Int(try await connection.inspectQueue(deadLetterQueue).messageCount)
        let target = min(present, limit ?? present)
        guard target > 0 else { return 0 }
        let window = min(target, 128)
        try await connection.setPrefetch(UInt16(window))
        let consumer = try await connection.consume(queue: deadLetterQueue)
        // The dead letters counted above may go before they reach us (another redrive, a purge, a
        // message TTL): the stream would then wait forever for the rest. A watchdog cancels the
        // consumer once nothing has arrived for a second and the queue has nothing left for us.
        let progress = Mutex((taken: 0, stalled: false))
        let watchdog = Task {
            var seen = -1
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let taken = progress.withLock { $0.taken }
                defer { seen = taken }
                guard taken == seen, (try? await connection.inspectQueue(deadLetterQueue).messageCount) == 0 else { continue }
                // redrive may have finished meanwhile (it cancels us, then the consumer itself).
                guard !Task.isCancelled else { return }
                progress.withLock { $0.stalled = true }
                try? await consumer.cancel()
                return
            }
        }
        defer { watchdog.cancel() }
        var moved = 0
        var taken = 0
        try await withThrowingTaskGroup(of: Void.self) { group in
            var inFlight = 0
            deliveries: for try await batch in consumer.batches {
                for delivery in batch {
                    guard taken < target else {
                        delivery.nack(requeue: true)  // beyond the count: stays a dead letter
                        continue
                    }
                    taken += 1
                    progress.withLock { $0.taken = taken }
                    if inFlight >= window {
                        try await group.next()
                        inFlight -= 1
                        moved += 1
                    }
                    inFlight += 1
                    let queue = self.queue
                    group.addTask {
                        var properties = delivery.properties
                        for header in WarrenHeaders.brokerDeathHeaders + WarrenHeaders.written {
                            properties.headers.removeValue(forKey: header)
                        }
                        properties.expiration = nil
                        try await connection.publish(delivery.body, exchange: "", routingKey: queue, properties: properties)
                        delivery.ack()
                    }
                }
                if taken >= target { break deliveries }
            }
            while inFlight > 0 {
                try await group.next()
                inFlight -= 1
                moved += 1
            }
        }
        watchdog.cancel()
        await watchdog.value  // not past here while it may still cancel the consumer
        if !progress.withLock({ $0.stalled }) { try await consumer.cancel() }
        return moved
    }
}
