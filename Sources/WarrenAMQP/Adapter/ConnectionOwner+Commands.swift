import CRabbitMQ

/// What became of a command.
enum CommandOutcome {
    /// Done: resume the caller with this.
    case replied(AMQPReply)
    /// This command failed; the connection is fine.
    case refused(AMQPError)
    /// Published: the caller is resumed when the broker confirms it.
    case awaitingConfirm(ConfirmID)
    /// The command failed and took the connection down with it (a failed RPC, a socket error).
    case connectionFailed(AMQPError)
}

/// Carrying out ``AMQPCommand``s: the synchronous librabbitmq RPCs and `basic.publish`.
extension ConnectionOwner {
    func execute(_ command: AMQPCommand) -> CommandOutcome {
        guard let conn else { return .refused(core.closedError()) }
        let arena = CTable.Arena()
        let what = command.what
        switch command {
        case .declareExchange(let exchange):
            _ = amqp_exchange_declare(conn, channel, arena.bytes(exchange.name), arena.bytes(exchange.type),
                                      exchange.passive ? 1 : 0,
                                      exchange.durable ? 1 : 0, exchange.autoDelete ? 1 : 0, exchange.isInternal ? 1 : 0,
                                      arena.table(exchange.arguments))
            return outcome(doing: what) { .done }
        case .declareQueue(let queue):
            return declare(queue, doing: what, conn, arena)
        case .bindQueue(let queue, let exchange, let routingKey, let arguments):
            _ = amqp_queue_bind(conn, channel, arena.bytes(queue), arena.bytes(exchange), arena.bytes(routingKey),
                                arena.table(arguments))
            return outcome(doing: what) { .done }
        case .purgeQueue(let name):
            let ok = amqp_queue_purge(conn, channel, arena.bytes(name))
            return outcome(doing: what) { .messageCount(ok?.pointee.message_count ?? 0) }
        case .deleteQueue(let name):
            let ok = amqp_queue_delete(conn, channel, arena.bytes(name), 0, 0)
            return outcome(doing: what) { .messageCount(ok?.pointee.message_count ?? 0) }
        case .deleteExchange(let name):
            _ = amqp_exchange_delete(conn, channel, arena.bytes(name), 0)
            return outcome(doing: what) { .done }
        case .setPrefetch(let count, let global):
            _ = amqp_basic_qos(conn, channel, 0, count, global ? 1 : 0)
            return outcome(doing: what) {
                machine.prefetchSet(channel: channel, count: count)
                return .done
            }
        case .consume(let consumption):
            return consume(consumption, doing: what, conn, arena)
        case .cancel(let tag):
            machine.cancelRequested(channel: channel, tag: tag)
            _ = amqp_basic_cancel(conn, channel, arena.bytes(tag))
            if let error = rpcError(doing: what) { return .connectionFailed(error) }
            // The deliveries sent before cancel-ok were queued by librabbitmq during the RPC.
            do { try handleQueuedFrames() } catch { return .connectionFailed(error) }
            if let end = machine.cancelOk(channel: channel, tag: tag) { finishConsumer(end.id, error: end.error) }
            return .replied(.done)
        case .verifyConsumer(let tag, let queue):
            let declared = declare(.passive(queue), doing: what, conn, arena)
            guard case .replied = declared else { return declared }
            // A basic.cancel or channel.close sent before the reply was queued during the RPC.
            do { try handleQueuedFrames() } catch { return .connectionFailed(error) }
            guard machine.isConsumerRegistered(channel: channel, tag: tag) else {
                return .refused(AMQPError(.consumerCancelledByBroker, "consumer '\(tag)' is not registered on queue '\(queue)'"))
            }
            return declared
        case .publish(let message):
            return publish(message, conn, arena)
        }
    }

    private func declare(_ queue: QueueDeclaration, doing what: String, _ conn: amqp_connection_state_t,
                         _ arena: CTable.Arena) -> CommandOutcome {
        let ok = amqp_queue_declare(conn, channel, arena.bytes(queue.name), queue.passive ? 1 : 0, queue.durable ? 1 : 0,
                                    queue.exclusive ? 1 : 0, queue.autoDelete ? 1 : 0, arena.table(queue.arguments))
        return outcome(doing: what) {
            guard let ok else { return .queue(AMQPQueueInfo(name: queue.name, messageCount: 0, consumerCount: 0)) }
            return .queue(AMQPQueueInfo(name: CTable.string(ok.pointee.queue), messageCount: ok.pointee.message_count,
                                        consumerCount: ok.pointee.consumer_count))
        }
    }

    private func consume(_ consumption: Consumption, doing what: String, _ conn: amqp_connection_state_t,
                         _ arena: CTable.Arena) -> CommandOutcome {
        let ok = amqp_basic_consume(conn, channel, arena.bytes(consumption.queue), arena.bytes(consumption.tag),
                                    0, 0, consumption.exclusive ? 1 : 0, arena.table(consumption.arguments))
        if let error = rpcError(doing: what) { return .connectionFailed(error) }
        let tag = ok.map { CTable.string($0.pointee.consumer_tag) } ?? consumption.tag
        guard let id = machine.consumeOk(channel: channel, tag: tag) else { return .refused(core.closedError()) }
        sinks[id] = ConsumerSink(id: id, channel: channel, maxBatch: consumption.maxBatch, continuation: consumption.deliveries)
        return .replied(.consumerTag(tag))
    }

    private func publish(_ message: OutgoingMessage, _ conn: amqp_connection_state_t, _ arena: CTable.Arena) -> CommandOutcome {
        var properties = message.properties.cValue(arena: arena)
        let rc = message.body.withUnsafeBytes { raw in
            amqp_basic_publish(conn, channel, arena.bytes(message.exchange), arena.bytes(message.routingKey),
                               message.mandatory ? 1 : 0, 0, &properties,
                               amqp_bytes_t(len: raw.count, bytes: UnsafeMutableRawPointer(mutating: raw.baseAddress)))
        }
        guard rc == AMQP_STATUS_OK.rawValue else { return .connectionFailed(AMQPError(status: rc, doing: "publish")) }
        guard let id = machine.published(channel: channel) else { return .refused(core.closedError()) }
        return .awaitingConfirm(id)
    }

    /// The outcome of the RPC just made: `reply()` (read while librabbitmq's reply is still valid)
    /// when it succeeded.
    private func outcome(doing what: String, _ reply: () -> AMQPReply) -> CommandOutcome {
        if let error = rpcError(doing: what) { return .connectionFailed(error) }
        return .replied(reply())
    }
}
