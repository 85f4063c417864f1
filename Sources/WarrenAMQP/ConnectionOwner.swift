import CRabbitMQ
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The one thread that owns a librabbitmq connection. Every C call on the connection happens here.
///
/// The loop: drain the inbox (settlements, then tasks), read every frame that is ready (bounded, so acks
/// keep flowing under load), then poll() the socket and the wake-up fd. Reading frames also lets
/// librabbitmq send heartbeats; a broker that sends nothing for the negotiated heartbeat timeout
/// (RabbitMQ sends every half timeout) is declared dead.
final class ConnectionOwner {
    let core: ConnectionCore
    let channel: amqp_channel_t = 1
    private(set) var conn: amqp_connection_state_t?
    private var logger: Logger { core.logger }

    private var coalescer = AckCoalescer()
    private var consumers: [String: ConsumerSink] = [:]
    private var lastConsumerTag: String?
    private var confirms: [UInt64: CheckedContinuation<Void, any Error>] = [:]
    private var nextPublishSequence: UInt64 = 1
    private var heartbeatNanos: UInt64 = 0
    private var lastInbound: UInt64 = 0

    /// Records that the broker just sent something. Replies to synchronous requests are read inside
    /// librabbitmq's RPC call, not by the frame loop, so the RPC path reports them here: without it a
    /// worker whose only traffic is readiness round trips (the broker then sends no heartbeats) was
    /// declared dead every heartbeat timeout.
    func noteInbound() {
        lastInbound = monotonicNanoseconds()
    }

    /// Frames handled per loop turn before the inbox is drained again.
    private static let framesPerTurn = 256
    /// Longest poll() sleep: bounds heartbeat sending, heartbeat checks and the liveness tick.
    private static let maxPollMillis: UInt64 = 100

    init(core: ConnectionCore) {
        self.core = core
    }

    // MARK: Lifecycle

    /// Connects, reports through `connected`, then loops until the connection ends.
    func run(connected: CheckedContinuation<Void, any Error>) {
        do {
            try open()
        } catch {
            destroy()
            finish(reason: error)
            connected.resume(throwing: error)
            return
        }
        core.setState(.open)
        connected.resume()
        var reason: AMQPError?
        do {
            try loop()
        } catch {
            reason = error
        }
        if let reason {
            logger.warning("AMQP connection lost", metadata: ["warren.amqp.error": "\(reason)"])
        }
        destroy()
        finish(reason: reason)
    }

    private func open() throws(AMQPError) {
        let config = core.configuration
        guard let conn = amqp_new_connection() else {
            throw AMQPError(.connectFailed, "could not allocate an AMQP connection")
        }
        self.conn = conn
        guard let socket = amqp_tcp_socket_new(conn) else {
            throw AMQPError(.connectFailed, "could not create a TCP socket")
        }
        var connectTimeout = config.connectTimeout.timeval
        let rc = amqp_socket_open_noblock(socket, config.host, Int32(config.port), &connectTimeout)
        guard rc == AMQP_STATUS_OK.rawValue else {
            throw AMQPError(.connectFailed, "could not connect to \(config.host):\(config.port): \(Self.statusText(rc)); is RabbitMQ running there?")
        }
        _ = amqp_set_handshake_timeout(conn, &connectTimeout)
        var rpcTimeout = config.rpcTimeout.timeval
        _ = amqp_set_rpc_timeout(conn, &rpcTimeout)

        let arena = CTable.Arena()
        var clientProperties: AMQPTable = [
            "product": "Warren",
            "capabilities": .table([
                "consumer_cancel_notify": true,
                "publisher_confirms": true,
                "basic.nack": true,
                "connection.blocked": true,
                "authentication_failure_close": true,
            ]),
        ]
        if let name = config.connectionName { clientProperties["connection_name"] = .string(name) }
        var properties = arena.table(clientProperties)
        let login = warren_amqp_login_plain(
            conn, config.virtualHost, 0, 131_072, Int32(config.heartbeat), &properties,
            config.username, config.password
        )
        if login.reply_type != AMQP_RESPONSE_NORMAL {
            var error = rpcError(login, doing: "login to vhost '\(config.virtualHost)' as '\(config.username)'")
            if error.replyCode == 403 || error.replyCode == 530 {
                error.code = error.replyCode == 403 ? .authenticationFailed : error.code
            } else if error.code != .connectionClosedByBroker {
                error.code = .handshakeFailed
            }
            throw error
        }
        heartbeatNanos = UInt64(amqp_get_heartbeat(conn)) * 1_000_000_000
        lastInbound = monotonicNanoseconds()

        _ = amqp_channel_open(conn, channel)
        try check(amqp_get_rpc_reply(conn), doing: "open channel")
        _ = amqp_confirm_select(conn, channel)
        try check(amqp_get_rpc_reply(conn), doing: "enable publisher confirms")
        logger.debug("AMQP connection open", metadata: [
            "warren.amqp.url": "\(config.redactedURL)",
            "warren.amqp.heartbeat": "\(heartbeatNanos / 1_000_000_000)",
        ])
    }

    private func loop() throws(AMQPError) {
        var fds = [
            pollfd(fd: amqp_get_sockfd(conn), events: Int16(POLLIN), revents: 0),
            pollfd(fd: core.wakeFD, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            core.lastTick.store(monotonicNanoseconds(), ordering: .relaxed)
            let (settlements, tasks, closeRequested) = core.drainInbox()
            for item in settlements where !coalescer.settle(item.tag, item.settlement) {
                logger.debug("dropped a settlement for an unknown delivery tag", metadata: ["warren.amqp.delivery_tag": "\(item.tag)"])
            }
            try flushSettlements()
            for task in tasks {
                task.run(self)
                if conn == nil { throw lostError ?? AMQPError(.protocolError, "connection failed during a request") }
            }
            try flushSettlements()
            if closeRequested {
                closeCleanly()
                return
            }

            let handled = try readFrames(limit: Self.framesPerTurn)
            if handled == Self.framesPerTurn { continue }  // more may be buffered: drain the inbox and go on

            try checkHeartbeat()
            fds[0].revents = 0
            fds[1].revents = 0
            let rc = poll(&fds, 2, Int32(pollTimeoutMillis()))
            if rc < 0 && errno != EINTR {
                throw AMQPError(.socketError, "poll() failed: errno \(errno)")
            }
            if fds[0].revents != 0 { lastInbound = monotonicNanoseconds() }
        }
    }

    private func pollTimeoutMillis() -> UInt64 {
        guard heartbeatNanos > 0 else { return Self.maxPollMillis }
        let deadline = lastInbound + heartbeatNanos
        let now = monotonicNanoseconds()
        let remaining = deadline > now ? (deadline - now) / 1_000_000 + 1 : 0
        return min(remaining, Self.maxPollMillis)
    }

    private func checkHeartbeat() throws(AMQPError) {
        guard heartbeatNanos > 0 else { return }
        let silent = monotonicNanoseconds() &- lastInbound
        if silent > heartbeatNanos {
            throw AMQPError(.heartbeatTimeout, "no data from the broker for \(silent / 1_000_000) ms (heartbeat timeout \(heartbeatNanos / 1_000_000_000) s): it is hung or unreachable")
        }
    }

    /// Error that made a task drop the connection (a failed RPC), if any.
    private var lostError: AMQPError?

    /// Marks the connection as failed from inside a task; the loop then ends with `error`.
    func fail(_ error: AMQPError) {
        lostError = error
        destroy()
    }

    private func closeCleanly() {
        guard let conn else { return }
        _ = amqp_channel_close(conn, channel, AMQP_REPLY_SUCCESS)
        _ = amqp_connection_close(conn, AMQP_REPLY_SUCCESS)
        logger.debug("AMQP connection closed")
    }

    private func destroy() {
        guard let conn else { return }
        amqp_destroy_connection(conn)
        self.conn = nil
    }

    /// Publishes the end to everyone waiting: state, consumers, confirms, queued tasks.
    private func finish(reason: AMQPError?) {
        let pending = core.stopAccepting()
        core.setState(.closed(reason))
        let error = reason.map { AMQPError($0.code, "connection closed: \($0.message)", replyCode: $0.replyCode) }
            ?? AMQPError(.connectionClosed, "connection closed")
        for (_, consumer) in consumers {
            // Deliveries not handed over yet are dropped: the broker requeues them with the connection.
            if let reason { consumer.continuation.finish(throwing: AMQPError(reason.code, "consumer stopped: \(reason.message)", replyCode: reason.replyCode)) } else { consumer.continuation.finish() }
        }
        consumers.removeAll()
        for (_, confirm) in confirms { confirm.resume(throwing: error) }
        confirms.removeAll()
        for task in pending { task.fail(error) }
    }

    // MARK: Settlements

    private func flushSettlements() throws(AMQPError) {
        guard let conn else { return }
        for command in coalescer.flush() {
            let rc: Int32
            switch command {
            case .ack(let tag, let multiple):
                rc = amqp_basic_ack(conn, channel, tag, multiple ? 1 : 0)
            case .nack(let tag, let multiple, let requeue):
                rc = amqp_basic_nack(conn, channel, tag, multiple ? 1 : 0, requeue ? 1 : 0)
            case .reject(let tag, let requeue):
                rc = amqp_basic_reject(conn, channel, tag, requeue ? 1 : 0)
            }
            guard rc == AMQP_STATUS_OK.rawValue else {
                throw Self.statusError(rc, doing: "send \(command)")
            }
        }
    }

    // MARK: Frames

    /// Handles up to `limit` frames that are ready without blocking; returns how many it handled.
    @discardableResult
    func readFrames(limit: Int) throws(AMQPError) -> Int {
        guard let conn else { return 0 }
        var zero = timeval(tv_sec: 0, tv_usec: 0)
        var handled = 0
        defer {
            handOverDeliveries()
            amqp_maybe_release_buffers(conn)
        }
        while handled < limit {
            var frame = amqp_frame_t()
            let rc = amqp_simple_wait_frame_noblock(conn, &frame, &zero)
            if rc == AMQP_STATUS_TIMEOUT.rawValue { break }
            guard rc == AMQP_STATUS_OK.rawValue else { throw Self.statusError(rc, doing: "read from the broker") }
            lastInbound = monotonicNanoseconds()
            handled += 1
            try handle(frame)
        }
        return handled
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
            resolveConfirms(upTo: ack.delivery_tag, multiple: ack.multiple != 0, error: nil)
        case Method.basicNack:
            let nack = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            resolveConfirms(upTo: nack.delivery_tag, multiple: nack.multiple != 0,
                            error: AMQPError(.publishNacked, "the broker refused the message (basic.nack)"))
        case Method.basicCancel:
            let cancel = method.decoded.assumingMemoryBound(to: amqp_basic_cancel_t.self).pointee
            let tag = CTable.string(cancel.consumer_tag)
            logger.warning("the broker cancelled a consumer", metadata: ["warren.amqp.consumer_tag": "\(tag)"])
            consumers.removeValue(forKey: tag)?.continuation.finish(throwing: AMQPError(
                .consumerCancelledByBroker, "the broker cancelled consumer '\(tag)' (queue deleted, or its leader moved)"))
        case Method.channelClose, Method.connectionClose:
            throw closeError(method)
        case Method.connectionBlocked:
            logger.warning("the broker blocked publishing on this connection (resource alarm)")
        case Method.connectionUnblocked:
            logger.info("the broker unblocked this connection")
        default:
            logger.debug("ignored an AMQP method", metadata: ["warren.amqp.method": "\(method.id)"])
        }
    }

    private func deliver(_ deliver: amqp_basic_deliver_t, channel: amqp_channel_t) throws(AMQPError) {
        guard let conn else { return }
        var message = amqp_message_t()
        let reply = amqp_read_message(conn, channel, &message, 0)
        try check(reply, doing: "read a message body")
        defer { amqp_destroy_message(&message) }
        let tag = consumerTag(deliver.consumer_tag)
        coalescer.delivered(deliver.delivery_tag)
        let delivery = AMQPDelivery(
            body: CTable.array(message.body),
            properties: Self.properties(message.properties),
            deliveryTag: deliver.delivery_tag,
            redelivered: deliver.redelivered != 0,
            exchange: CTable.string(deliver.exchange),
            routingKey: CTable.string(deliver.routing_key),
            consumerTag: tag,
            core: core
        )
        guard let consumer = consumers[tag] else {
            // No one to take it (the consumer was cancelled): give it back to the queue.
            coalescer.settle(deliver.delivery_tag, .nack(requeue: true))
            return
        }
        consumer.pending.append(delivery)
    }

    /// The consumer tag as a `String`, reusing the previous one when the bytes match (tags are long
    /// enough to cost an allocation each).
    private func consumerTag(_ bytes: amqp_bytes_t) -> String {
        if let cached = lastConsumerTag, bytes.len > 0, cached.utf8.count == bytes.len,
           let base = bytes.bytes, cached.utf8.withContiguousStorageIfAvailable({ memcmp($0.baseAddress!, base, bytes.len) == 0 }) == true {
            return cached
        }
        let tag = CTable.string(bytes)
        lastConsumerTag = tag
        return tag
    }

    /// Yields each consumer's batch of deliveries; a consumer whose sequence is gone gets them requeued.
    private func handOverDeliveries() {
        for consumer in consumers.values where !consumer.pending.isEmpty {
            let batch = consumer.pending
            consumer.pending.removeAll(keepingCapacity: true)
            if case .terminated = consumer.continuation.yield(batch) {
                for delivery in batch { coalescer.settle(delivery.deliveryTag, .nack(requeue: true)) }
            }
        }
    }

    private func resolveConfirms(upTo tag: UInt64, multiple: Bool, error: AMQPError?) {
        let tags = multiple ? confirms.keys.filter { $0 <= tag } : [tag]
        for t in tags {
            guard let continuation = confirms.removeValue(forKey: t) else { continue }
            if let error { continuation.resume(throwing: error) } else { continuation.resume() }
        }
    }

    // MARK: Operations (called from tasks, on this thread)

    func register(consumer tag: String, _ continuation: AsyncThrowingStream<[AMQPDelivery], any Error>.Continuation) {
        consumers[tag] = ConsumerSink(continuation: continuation)
    }

    /// Ends a consumer's stream after handing it what arrived before `cancel-ok`.
    func unregister(consumer tag: String) throws(AMQPError) {
        try handleQueuedFrames()
        handOverDeliveries()
        consumers.removeValue(forKey: tag)?.continuation.finish()
    }

    /// Handles the frames librabbitmq queued while it waited for an RPC reply.
    func handleQueuedFrames() throws(AMQPError) {
        guard let conn else { return }
        while amqp_frames_enqueued(conn) != 0, try readFrames(limit: 1) == 1 {}
    }

    /// True while consumer `tag` is registered (not cancelled by us or by the broker).
    func hasConsumer(_ tag: String) -> Bool { consumers[tag] != nil }

    func publish(body: [UInt8], exchange: String, routingKey: String, properties: AMQPProperties,
                 mandatory: Bool, confirm: CheckedContinuation<Void, any Error>) {
        guard let conn else {
            confirm.resume(throwing: core.closedError())
            return
        }
        let arena = CTable.Arena()
        var props = Self.cProperties(properties, arena: arena)
        let rc = body.withUnsafeBytes { raw in
            amqp_basic_publish(conn, channel, arena.bytes(exchange), arena.bytes(routingKey), mandatory ? 1 : 0, 0,
                               &props, amqp_bytes_t(len: raw.count, bytes: UnsafeMutableRawPointer(mutating: raw.baseAddress)))
        }
        guard rc == AMQP_STATUS_OK.rawValue else {
            let error = Self.statusError(rc, doing: "publish")
            confirm.resume(throwing: error)
            fail(error)
            return
        }
        confirms[nextPublishSequence] = confirm
        nextPublishSequence += 1
    }
}
