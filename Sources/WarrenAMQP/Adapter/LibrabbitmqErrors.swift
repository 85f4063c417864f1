import CRabbitMQ
import WarrenSystem

/// librabbitmq's status codes as errors that say what failed.
extension AMQPError {
    /// An `AMQP_STATUS_*` code from librabbitmq, while doing `what`.
    init(status: Int32, doing what: String) {
        let code: AMQPError.Code = switch status {
        case AMQP_STATUS_TIMEOUT.rawValue: .rpcTimeout
        case AMQP_STATUS_HEARTBEAT_TIMEOUT.rawValue: .heartbeatTimeout
        case AMQP_STATUS_CONNECTION_CLOSED.rawValue, AMQP_STATUS_SOCKET_ERROR.rawValue,
             AMQP_STATUS_SOCKET_CLOSED.rawValue, AMQP_STATUS_TCP_ERROR.rawValue: .socketError
        default: .protocolError
        }
        self.init(code, "\(what): \(Self.statusText(status))")
    }

    static func statusText(_ status: Int32) -> String {
        String(cString: amqp_error_string2(status))
    }
}

/// Replies from the broker: checked, and answered when they close something.
extension ConnectionOwner {
    /// Checks a reply and throws what went wrong. A normal reply counts as traffic from the broker:
    /// replies to requests are read inside librabbitmq's RPC calls, not by the frame loop, and a
    /// worker whose only traffic is readiness round trips (the broker then sends no heartbeats)
    /// would otherwise be declared dead every heartbeat timeout.
    func check(_ reply: amqp_rpc_reply_t, doing what: String) throws(AMQPError) {
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else { throw replyError(reply, doing: what) }
        machine.received(at: MonotonicClock.nanoseconds())
    }

    /// Checks the reply of the RPC just made on ``channel``; nil when it succeeded.
    func rpcError(doing what: String) -> AMQPError? {
        guard let conn else { return core.closedError() }
        do throws(AMQPError) {
            try check(amqp_get_rpc_reply(conn), doing: what)
            return nil
        } catch {
            return error
        }
    }

    /// What a failed reply means; a `channel.close` or `connection.close` from the broker is answered.
    func replyError(_ reply: amqp_rpc_reply_t, doing what: String) -> AMQPError {
        switch reply.reply_type {
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            return AMQPError(status: reply.library_error, doing: what)
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            var error = closeError(reply.reply, channel: channel)
            error.message = "\(what): \(error.message)"
            return error
        default:
            return AMQPError(.protocolError, "\(what): no reply from the broker")
        }
    }

    /// Reads a `channel.close` / `connection.close`, answers it with close-ok, and describes it.
    func closeError(_ method: amqp_method_t, channel: ChannelID) -> AMQPError {
        if method.id == Method.connectionClose {
            let close = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            var ok = amqp_connection_close_ok_t(dummy: 0)
            if let conn { _ = amqp_send_method(conn, 0, Method.connectionCloseOk, &ok) }
            return AMQPError(.connectionClosedByBroker, "broker closed the connection: \(CTable.string(close.reply_text))", replyCode: close.reply_code)
        }
        if method.id == Method.channelClose {
            let close = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            var ok = amqp_channel_close_ok_t(dummy: 0)
            if let conn { _ = amqp_send_method(conn, channel, Method.channelCloseOk, &ok) }
            return AMQPError(.channelClosedByBroker, "broker closed the channel: \(CTable.string(close.reply_text))", replyCode: close.reply_code)
        }
        return AMQPError(.protocolError, "unexpected method \(method.id) from the broker")
    }
}

/// Method ids (librabbitmq defines them as casts, which Swift does not import).
enum Method {
    static let connectionClose: amqp_method_number_t = 0x000A_0032
    static let connectionCloseOk: amqp_method_number_t = 0x000A_0033
    static let connectionBlocked: amqp_method_number_t = 0x000A_003C
    static let connectionUnblocked: amqp_method_number_t = 0x000A_003D
    static let channelClose: amqp_method_number_t = 0x0014_0028
    static let channelCloseOk: amqp_method_number_t = 0x0014_0029
    static let basicCancel: amqp_method_number_t = 0x003C_001E
    static let basicDeliver: amqp_method_number_t = 0x003C_003C
    static let basicAck: amqp_method_number_t = 0x003C_0050
    static let basicNack: amqp_method_number_t = 0x003C_0078
}
