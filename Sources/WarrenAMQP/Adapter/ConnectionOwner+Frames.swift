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
            // The frames read live in librabbitmq's channel pools until released; everything was
            // copied out of them already. Releasing costs ~3,000 instructions whatever it frees, and
            // under load a turn reads a message or two: release every few dozen frames (or once the
            // bodies read add up), not every turn.
            unreleasedFrames += handled
            if unreleasedFrames >= Self.framesPerRelease || unreleasedBodyBytes >= Self.bodyBytesPerRelease {
                amqp_maybe_release_buffers(conn)
                unreleasedFrames = 0
                unreleasedBodyBytes = 0
            }
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
        let (properties, body) = try readContent(channel: channel)
        let tag = reused.consumerTag.string(fields.consumer_tag)
        let action = machine.delivered(channel: channel, deliveryTag: fields.delivery_tag, consumerTag: tag)
        guard case .handOver(let id) = action else { return }  // requeued: no consumer takes it
        guard let sink = sink(id) else {
            machine.handOverRefused(channel: channel, deliveryTags: CollectionOfOne(fields.delivery_tag))
            return
        }
        sink.pending.append(AMQPDelivery(
            body: body,
            properties: properties,
            deliveryTag: fields.delivery_tag,
            redelivered: fields.redelivered != 0,
            exchange: reused.exchange.string(fields.exchange),
            routingKey: reused.routingKey.string(fields.routing_key),
            consumerTag: tag,
            channel: channel,
            core: core
        ))
        if sink.pending.count >= sink.maxBatch { handOver(sink) }
    }

    /// Reads the content header and body frames that follow a `basic.deliver` on `channel`, straight
    /// into Swift values. (librabbitmq's `amqp_read_message` copies the properties into a fresh 4 KiB
    /// pool, `calloc`ed and zeroed for every message, and the body into a `malloc`ed buffer first:
    /// callgrind counted that as a third of a no-op message's instructions.) The frames follow the
    /// method at once; each wait is bounded by the RPC timeout, as a reply is.
    private func readContent(channel: ChannelID) throws(AMQPError) -> (AMQPProperties, [UInt8]) {
        let header = try nextFrame(on: channel, doing: "read a message header")
        guard header.frame_type == AMQP_FRAME_HEADER else {
            throw AMQPError(.protocolError, "expected a content header after basic.deliver, got frame type \(header.frame_type)")
        }
        let properties = AMQPProperties(header.payload.properties.decoded.assumingMemoryBound(to: amqp_basic_properties_t.self).pointee,
                                        contentTypes: &reused.contentType)
        let size = Int(header.payload.properties.body_size)
        unreleasedBodyBytes += size
        guard size > 0 else { return (properties, []) }
        var failure: AMQPError?
        let body = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            while count < size {
                let frame: amqp_frame_t
                do throws(AMQPError) {
                    frame = try nextFrame(on: channel, doing: "read a message body")
                } catch {
                    failure = error
                    return
                }
                let fragment = frame.payload.body_fragment
                guard frame.frame_type == AMQP_FRAME_BODY, fragment.len <= size - count else {
                    failure = AMQPError(.protocolError, "expected \(size - count) more body bytes, got frame type \(frame.frame_type) of \(fragment.len) bytes")
                    return
                }
                if fragment.len > 0, let bytes = fragment.bytes {
                    (buffer.baseAddress! + count).initialize(from: bytes.assumingMemoryBound(to: UInt8.self), count: fragment.len)
                }
                count += fragment.len
            }
        }
        if let failure { throw failure }
        return (properties, body)
    }

    /// The next frame, which must be on `channel`; waits at most the RPC timeout.
    private func nextFrame(on channel: ChannelID, doing what: String) throws(AMQPError) -> amqp_frame_t {
        guard let conn else { throw AMQPError(.connectionClosed, "connection is closed") }
        var timeout = contentTimeout
        var frame = amqp_frame_t()
        let rc = amqp_simple_wait_frame_noblock(conn, &frame, &timeout)
        guard rc == AMQP_STATUS_OK.rawValue else { throw AMQPError(status: rc, doing: what) }
        guard frame.channel == channel else {
            throw AMQPError(.protocolError, "\(what): a frame for channel \(frame.channel) arrived in the middle of a message on channel \(channel)")
        }
        return frame
    }

    /// The sink of consumer `id`; the last one found is kept at hand, as a run of deliveries is
    /// usually for one consumer.
    private func sink(_ id: ConsumerID) -> ConsumerSink? {
        if let last = lastSink, last.id == id { return last }
        lastSink = sinks[id]
        return lastSink
    }
}

/// The last `String` made from C bytes, given again while the bytes are the same. A delivery's
/// consumer tag, exchange, routing key and content type mostly repeat from one message to the next,
/// and a string over 15 bytes costs an allocation (and its release) for every message otherwise.
struct ReusedString {
    private var last: String?

    mutating func string(_ bytes: amqp_bytes_t) -> String {
        if let last, bytes.len > 0, last.utf8.count == bytes.len, let base = bytes.bytes,
           last.utf8.withContiguousStorageIfAvailable({ memcmp($0.baseAddress!, base, bytes.len) == 0 }) == true {
            return last
        }
        let made = CTable.string(bytes)
        last = made
        return made
    }
}

/// The strings the owner reuses from one delivery to the next.
struct ReusedDeliveryStrings {
    var consumerTag = ReusedString()
    var exchange = ReusedString()
    var routingKey = ReusedString()
    var contentType = ReusedString()
}
