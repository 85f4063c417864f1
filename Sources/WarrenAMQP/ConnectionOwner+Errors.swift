import CRabbitMQ

/// Turning librabbitmq's replies and status codes into ``AMQPError``s that say what failed.
extension ConnectionOwner {
    /// Checks an RPC reply; on failure the connection is dropped and the error thrown.
    func check(_ reply: amqp_rpc_reply_t, doing what: String) throws(AMQPError) {
        guard reply.reply_type != AMQP_RESPONSE_NORMAL else {
            noteInbound()
            return
        }
        let error = rpcError(reply, doing: what)
        fail(error)
        throw error
    }

    func rpcError(_ reply: amqp_rpc_reply_t, doing what: String) -> AMQPError {
        switch reply.reply_type {
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            return Self.statusError(reply.library_error, doing: what)
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            var error = closeError(reply.reply)
            error.message = "\(what): \(error.message)"
            return error
        default:
            return AMQPError(.protocolError, "\(what): no reply from the broker")
        }
    }

    /// Reads a `channel.close` / `connection.close`, answers it with close-ok, and describes it.
    func closeError(_ method: amqp_method_t) -> AMQPError {
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

    static func statusError(_ status: Int32, doing what: String) -> AMQPError {
        let code: AMQPError.Code = switch status {
        case AMQP_STATUS_TIMEOUT.rawValue: .rpcTimeout
        case AMQP_STATUS_HEARTBEAT_TIMEOUT.rawValue: .heartbeatTimeout
        case AMQP_STATUS_CONNECTION_CLOSED.rawValue, AMQP_STATUS_SOCKET_ERROR.rawValue,
             AMQP_STATUS_SOCKET_CLOSED.rawValue, AMQP_STATUS_TCP_ERROR.rawValue: .socketError
        default: .protocolError
        }
        return AMQPError(code, "\(what): \(statusText(status))")
    }

    static func statusText(_ status: Int32) -> String {
        String(cString: amqp_error_string2(status))
    }
}

/// A consumer's stream and the deliveries read for it in the current loop turn.
final class ConsumerSink {
    let continuation: AsyncThrowingStream<[AMQPDelivery], any Error>.Continuation
    var pending: [AMQPDelivery] = []

    init(continuation: AsyncThrowingStream<[AMQPDelivery], any Error>.Continuation) {
        self.continuation = continuation
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
