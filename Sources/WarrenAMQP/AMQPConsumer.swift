/// The deliveries of one `basic.consume`, as an `AsyncSequence`.
///
/// The sequence ends normally after ``cancel()`` (once what the broker sent before `cancel-ok` has been
/// handed over) and throws when the connection is lost or the broker cancels the consumer.
///
/// The owner thread hands deliveries over in batches (everything read in one turn of its loop), so a
/// busy consumer costs one task wake-up per batch, not one per message.
public struct AMQPConsumer: AsyncSequence, Sendable {
    public typealias Element = AMQPDelivery

    /// The consumer tag (server-generated when none was given).
    public let tag: String
    let stream: AsyncThrowingStream<[AMQPDelivery], any Error>
    let connection: AMQPConnection

    /// Sends `basic.cancel`: no new deliveries; the sequence ends after those already sent.
    public func cancel() async throws {
        try await connection.cancel(consumerTag: tag)
    }

    /// The same deliveries in the batches the I/O thread handed over (never empty), for consumers
    /// that dispatch work in chunks.
    public var batches: AsyncThrowingStream<[AMQPDelivery], any Error> { stream }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: stream.makeAsyncIterator())
    }

    /// Iterates deliveries one by one out of the batches.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<[AMQPDelivery], any Error>.Iterator
        var batch: [AMQPDelivery] = []
        var index = 0

        public mutating func next() async throws -> AMQPDelivery? {
            while index == batch.count {
                guard let next = try await base.next() else { return nil }
                batch = next
                index = 0
            }
            defer { index += 1 }
            return batch[index]
        }
    }
}
