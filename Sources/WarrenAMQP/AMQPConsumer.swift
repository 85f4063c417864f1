/// The deliveries of one `basic.consume`, as an `AsyncSequence`.
///
/// The sequence ends normally after ``cancel()`` (once what the broker sent before `cancel-ok` has been
/// handed over) and throws when the connection is lost or the broker cancels the consumer.
public struct AMQPConsumer: AsyncSequence, Sendable {
    public typealias Element = AMQPDelivery

    /// The consumer tag (server-generated when none was given).
    public let tag: String
    let stream: AsyncThrowingStream<AMQPDelivery, any Error>
    let connection: AMQPConnection

    /// Sends `basic.cancel`: no new deliveries; the sequence ends after those already sent.
    public func cancel() async throws {
        try await connection.cancel(consumerTag: tag)
    }

    public func makeAsyncIterator() -> AsyncThrowingStream<AMQPDelivery, any Error>.Iterator {
        stream.makeAsyncIterator()
    }
}
