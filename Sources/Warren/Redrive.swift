import WarrenAMQP

extension Topology {
    /// Moves dead letters from `<queue>.dead` back to `<queue>`, their attempts reset (Warren's and the
    /// broker's death headers removed), each published with a confirm before it is removed from the
    /// dead-letter queue: a failure half-way leaves duplicates, never a loss.
    ///
    /// - Parameter limit: at most this many; `nil`: the dead letters present when it starts (those
    ///   that die again meanwhile are not moved twice).
    /// - Returns: how many moved.
    public func redrive(on connection: AMQPConnection, limit: Int? = nil) async throws -> Int {
        let present = Int(try await connection.inspectQueue(deadLetterQueue).messageCount)
        let target = min(present, limit ?? present)
        guard target > 0 else { return 0 }
        let window = min(target, 128)
        try await connection.setPrefetch(UInt16(window))
        let consumer = try await connection.consume(queue: deadLetterQueue)
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
        try await consumer.cancel()
        return moved
    }
}
