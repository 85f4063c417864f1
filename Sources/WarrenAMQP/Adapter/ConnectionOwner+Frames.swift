import CRabbitMQ
import Glibc
import WarrenSystem

/// Reading: what librabbitmq received, turned into state machine events and their actions.
extension ConnectionOwner {
    /// Handles up to `limit` frames that are ready without blocking; returns how many it handled.
    /// The deliveries read are in their consumers' ``ConsumerSink/pending`` until
    /// ``handOverDeliveries()``.
    @discardableResult
    func readFrames(limit: Int) throws(AMQPError) -> Int {
        guard let conn else { return 0 }
        var zero = timeval(tv_sec: 0, tv_usec: 0)
        var handled = 0
        defer {
            // Once per batch, not per frame: the heartbeat deadline is only checked between batches.
            if handled > 0 { machine.received(at: MonotonicClock.nanoseconds()) }
            amqp_maybe_release_buffers(conn)
        }
        while handled < limit {
            var frame = amqp_frame_t()
            let rc = amqp_simple_wait_frame_noblock(conn, &frame, &zero)
            if rc == AMQP_STATUS_TIMEOUT.rawValue { break }
            guard rc == AMQP_STATUS_OK.rawValue else { throw AMQPError(status: rc, doing: "read from the broker") }
            handled += 1
            try handle(frame)
        }
        return handled
    }

    /// Handles the frames librabbitmq queued while it waited for an RPC reply, and hands the
    /// deliveries among them over.
    func handleQueuedFrames() throws(AMQPError) {
        guard let conn else { return }
        defer { handOverDeliveries() }
        while amqp_frames_enqueued(conn) != 0, try readFrames(limit: 1) == 1 {}
    }

    private func handle(_ frame: amqp_frame_t) throws(AMQPError) {
        guard frame.frame_type == AMQP_FRAME_METHOD else { return }
        let method = frame.payload.method
        switch method.id {
        case Method.basicDeliver:
            let fields = method.decoded.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            try deliver(fields, channel: frame.channel)
        case Method.basicAck:
            let ack = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            resolve(machine.acked(channel: frame.channel, sequence: ack.delivery_tag, multiple: ack.multiple != 0))
        case Method.basicNack:
            let nack = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            resolve(machine.nacked(channel: frame.channel, sequence: nack.delivery_tag, multiple: nack.multiple != 0))
        case Method.basicCancel:
            let cancel = method.decoded.assumingMemoryBound(to: amqp_basic_cancel_t.self).pointee
            let tag = CTable.string(cancel.consumer_tag)
            logger.warning("the broker cancelled a consumer", metadata: ["warren.amqp.consumer_tag": "\(tag)"])
            if let end = machine.brokerCancelled(channel: frame.channel, tag: tag) {
                finishConsumer(end.id, error: end.error)
            }
        case Method.channelClose, Method.connectionClose:
            throw closeError(method, channel: frame.channel)
        case Method.connectionBlocked:
            logger.warning("the broker blocked publishing on this connection (resource alarm)")
        case Method.connectionUnblocked:
            logger.info("the broker unblocked this connection")
        default:
            logger.debug("ignored an AMQP method", metadata: ["warren.amqp.method": "\(method.id)"])
        }
    }

    /// Reads the message of a `basic.deliver` and adds it to its consumer's batch. Hot path.
    private func deliver(_ fields: amqp_basic_deliver_t, channel: ChannelID) throws(AMQPError) {
        guard let conn else { return }
        var message = amqp_message_t()
        try check(amqp_read_message(conn, channel, &message, 0), doing: "read a message body")
        defer { amqp_destroy_message(&message) }
        let tag = consumerTag(fields.consumer_tag)
        let action = machine.delivered(channel: channel, deliveryTag: fields.delivery_tag, consumerTag: tag)
        guard case .handOver(let id) = action else { return }  // requeued: no consumer takes it
        guard let sink = sink(id) else {
            machine.handOverRefused(channel: channel, deliveryTags: CollectionOfOne(fields.delivery_tag))
            return
        }
        sink.pending.append(AMQPDelivery(
            body: CTable.array(message.body),
            properties: AMQPProperties(message.properties),
            deliveryTag: fields.delivery_tag,
            redelivered: fields.redelivered != 0,
            exchange: CTable.string(fields.exchange),
            routingKey: CTable.string(fields.routing_key),
            consumerTag: tag,
            channel: channel,
            core: core
        ))
    }

    /// The sink of consumer `id`; the last one found is kept at hand, as a run of deliveries is
    /// usually for one consumer.
    private func sink(_ id: ConsumerID) -> ConsumerSink? {
        if let last = lastSink, last.id == id { return last }
        lastSink = sinks[id]
        return lastSink
    }

    /// The consumer tag as a `String`, reusing the previous one when the bytes match (tags are long
    /// enough to cost an allocation each).
    private func consumerTag(_ bytes: amqp_bytes_t) -> String {
        if let cached = lastConsumerTag, bytes.len > 0, cached.utf8.count == bytes.len, let base = bytes.bytes,
           cached.utf8.withContiguousStorageIfAvailable({ memcmp($0.baseAddress!, base, bytes.len) == 0 }) == true {
            return cached
        }
        let tag = CTable.string(bytes)
        lastConsumerTag = tag
        return tag
    }
}
