import CRabbitMQ
import WarrenSystem

/// Where to connect and over what. With ``Transport``, the one place a new kind of connection
/// changes: TLS is another transport (`amqp_ssl_socket_new` and its options), several brokers are
/// several endpoints, tried in order.
struct ConnectPolicy: Sendable {
    struct Endpoint: Sendable, Equatable {
        var host: String
        var port: Int
    }

    /// The brokers to try, in order: the first that accepts the TCP connection is used.
    var endpoints: [Endpoint]
    var transport: Transport

    init(configuration: AMQPConfiguration) {
        endpoints = [Endpoint(host: configuration.host, port: configuration.port)]
        transport = .tcp
    }
}

/// How the bytes travel: makes the socket of a new librabbitmq connection (which owns it).
enum Transport: Sendable {
    case tcp

    func makeSocket(on conn: amqp_connection_state_t) -> OpaquePointer? {
        switch self {
        case .tcp: amqp_tcp_socket_new(conn)
        }
    }
}

/// Opening: socket, login, channel in confirm mode.
extension ConnectionOwner {
    /// Connects to the first endpoint that answers, logs in, opens the channel with publisher
    /// confirms; returns what the state machine says to do next.
    func open() throws(AMQPError) -> ConnectionStateMachine.OpenAction {
        var failure = AMQPError(.connectFailed, "no broker to connect to")
        var connected = false
        for endpoint in policy.endpoints where !connected {
            do {
                try connect(to: endpoint)
                connected = true
            } catch {
                destroy()
                failure = error
            }
        }
        guard connected, let conn else { throw failure }
        try login(conn)
        _ = amqp_channel_open(conn, channel)
        try check(amqp_get_rpc_reply(conn), doing: "open channel")
        _ = amqp_confirm_select(conn, channel)
        try check(amqp_get_rpc_reply(conn), doing: "enable publisher confirms")
        let heartbeat = Int(amqp_get_heartbeat(conn))
        logger.debug("AMQP connection open", metadata: [
            "warren.amqp.url": "\(core.configuration.redactedURL)",
            "warren.amqp.heartbeat": "\(heartbeat)",
        ])
        return machine.opened(heartbeatSeconds: heartbeat, channels: [channel], at: MonotonicClock.nanoseconds())
    }

    private func connect(to endpoint: ConnectPolicy.Endpoint) throws(AMQPError) {
        let config = core.configuration
        guard let conn = amqp_new_connection() else {
            throw AMQPError(.connectFailed, "could not allocate an AMQP connection")
        }
        self.conn = conn
        guard let socket = policy.transport.makeSocket(on: conn) else {
            throw AMQPError(.connectFailed, "could not create a \(policy.transport) socket")
        }
        var connectTimeout = config.connectTimeout.timevalValue
        let rc = amqp_socket_open_noblock(socket, endpoint.host, Int32(endpoint.port), &connectTimeout)
        guard rc == AMQP_STATUS_OK.rawValue else {
            throw AMQPError(.connectFailed, "could not connect to \(endpoint.host):\(endpoint.port): \(AMQPError.statusText(rc)); is RabbitMQ running there?")
        }
        _ = amqp_set_handshake_timeout(conn, &connectTimeout)
        var rpcTimeout = config.rpcTimeout.timevalValue
        _ = amqp_set_rpc_timeout(conn, &rpcTimeout)
    }

    private func login(_ conn: amqp_connection_state_t) throws(AMQPError) {
        let config = core.configuration
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
        let reply = warren_amqp_login_plain(
            conn, config.virtualHost, 0, 131_072, Int32(config.heartbeat), &properties,
            config.username, config.password
        )
        guard reply.reply_type != AMQP_RESPONSE_NORMAL else { return }
        var error = replyError(reply, doing: "login to vhost '\(config.virtualHost)' as '\(config.username)'")
        if error.replyCode == 403 || error.replyCode == 530 {
            error.code = error.replyCode == 403 ? .authenticationFailed : error.code
        } else if error.code != .connectionClosedByBroker {
            error.code = .handshakeFailed
        }
        throw error
    }
}
