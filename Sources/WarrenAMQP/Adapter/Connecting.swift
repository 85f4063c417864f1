import CRabbitMQ
import Glibc
import WarrenSystem

/// Where to connect and over what. With ``Transport``, the one place a new kind of connection
/// changes: TLS is another transport (`amqp_ssl_socket_new` and its options), several brokers are
/// several endpoints.
struct ConnectPolicy: Sendable {
    typealias Endpoint = AMQPEndpoint

    /// The brokers to try, in order: the first that accepts the connection is used. Shuffled for
    /// each connection, so that a fleet of workers spreads over the brokers and a reconnect after
    /// a failure does not keep hitting the same broker first.
    var endpoints: [Endpoint]
    var transport: Transport

    init(configuration: AMQPConfiguration) {
        endpoints = configuration.shufflesEndpoints ? configuration.endpoints.shuffled() : configuration.endpoints
        transport = configuration.tls.map { .tls($0) } ?? .tcp
    }
}

/// How the bytes travel: makes the socket of a new librabbitmq connection (which owns it).
enum Transport: Sendable, CustomStringConvertible {
    case tcp
    case tls(AMQPTLSConfiguration)

    var description: String {
        switch self {
        case .tcp: "TCP"
        case .tls: "TLS"
        }
    }
}

/// The TLS state of one socket: C memory that must outlive the librabbitmq connection (its
/// SSL_CTX points at it), freed by the owner after `amqp_destroy_connection`.
final class TLSSocketState {
    let state: UnsafeMutablePointer<warren_tls_state>
    private var strings: [UnsafeMutablePointer<CChar>] = []

    init(_ tls: AMQPTLSConfiguration) {
        state = .allocate(capacity: 1)
        state.initialize(to: warren_tls_state(server_name: nil, disable_sni: tls.sendsServerName ? 0 : 1, verify_error: Int(X509_V_OK)))
        if let name = tls.serverName, tls.sendsServerName {
            state.pointee.server_name = UnsafePointer(cString(name))
        }
    }

    /// A C copy of `text` that lives as long as this state.
    func cString(_ text: String) -> UnsafeMutablePointer<CChar> {
        let copy = strdup(text)!
        strings.append(copy)
        return copy
    }

    deinit {
        for string in strings { free(string) }
        state.deinitialize(count: 1)
        state.deallocate()
    }
}

/// Opening: socket, login, channel in confirm mode.
extension ConnectionOwner {
    /// Opens the connection on the first endpoint that goes all the way: socket, login, the channel
    /// with publisher confirms; returns what the state machine says to do next.
    ///
    /// An endpoint that accepts the TCP connection but never answers the handshake (a hung node: the
    /// kernel still accepts into the listen backlog) is given up after the handshake timeout and the
    /// next one is tried, as one that refuses the connection is: otherwise a single hung broker
    /// first in the list fails the whole attempt.
    func open() throws(AMQPError) -> ConnectionStateMachine.OpenAction {
        var failures: [AMQPError] = []
        var connected = false
        for endpoint in policy.endpoints where !connected {
            do throws(AMQPError) {
                // Set first: login's error messages name the endpoint.
                core.endpoint.withLock { $0 = endpoint }
                try connect(to: endpoint)
                guard let conn else { throw AMQPError(.connectFailed, "could not allocate an AMQP connection") }
                try login(conn)
                _ = amqp_channel_open(conn, channel)
                try check(amqp_get_rpc_reply(conn), doing: "open channel")
                _ = amqp_confirm_select(conn, channel)
                try check(amqp_get_rpc_reply(conn), doing: "enable publisher confirms")
                connected = true
            } catch {
                destroy()
                failures.append(error)
                if policy.endpoints.count > 1 {
                    logger.info("could not connect to a broker; trying the next", metadata: [
                        "warren.amqp.endpoint": "\(endpoint)", "warren.amqp.error": "\(error)",
                    ])
                }
            }
        }
        guard connected, let conn else {
            guard var failure = failures.last else { throw AMQPError(.connectFailed, "no broker to connect to") }
            if failures.count > 1 {
                failure.message = "none of the \(failures.count) brokers accepted the connection: "
                    + failures.map(\.message).joined(separator: "; ")
            }
            throw failure
        }
        let heartbeat = Int(amqp_get_heartbeat(conn))
        logger.debug("AMQP connection open", metadata: [
            "warren.amqp.url": "\(core.configuration.redactedURL)",
            "warren.amqp.endpoint": "\(core.endpoint.withLock { $0 }.map { "\($0)" } ?? "?")",
            "warren.amqp.transport": "\(policy.transport)",
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
        let socket: OpaquePointer
        switch policy.transport {
        case .tcp:
            guard let tcp = amqp_tcp_socket_new(conn) else {
                throw AMQPError(.connectFailed, "could not create a TCP socket")
            }
            socket = tcp
        case .tls(let tls):
            socket = try makeTLSSocket(conn, tls, endpoint: endpoint)
        }
        var connectTimeout = config.connectTimeout.timevalValue
        // OpenSSL's error queue is read after a TLS failure only. Not touched over plain TCP: the
        // first call sets up OpenSSL's per-thread error state, which maps ~1.2 MB more of
        // libcrypto's code into a worker that never uses it (FOOTPRINT.md).
        if case .tls = policy.transport { warren_tls_clear_errors() }
        let rc = amqp_socket_open_noblock(socket, endpoint.host, Int32(endpoint.port), &connectTimeout)
        guard rc == AMQP_STATUS_OK.rawValue else {
            if case .tls(let tls) = policy.transport, let error = tlsError(status: rc, endpoint: endpoint, tls) {
                throw error
            }
            throw AMQPError(.connectFailed, "could not connect to \(endpoint): \(AMQPError.statusText(rc)); is RabbitMQ running there?")
        }
        _ = amqp_set_handshake_timeout(conn, &connectTimeout)
        var rpcTimeout = config.rpcTimeout.timevalValue
        _ = amqp_set_rpc_timeout(conn, &rpcTimeout)
    }

    private func makeTLSSocket(_ conn: amqp_connection_state_t, _ tls: AMQPTLSConfiguration,
                               endpoint: ConnectPolicy.Endpoint) throws(AMQPError) -> OpaquePointer {
        guard let socket = amqp_ssl_socket_new(conn) else {
            throw AMQPError(.tlsFailed, "could not create a TLS socket (OpenSSL initialisation failed)")
        }
        let state = TLSSocketState(tls)
        tlsState = state
        // librabbitmq's own checks are replaced by OpenSSL's, during the handshake (see shim.h).
        amqp_ssl_socket_set_verify_peer(socket, 0)
        amqp_ssl_socket_set_verify_hostname(socket, 0)
        let expected = tls.verifyPeer ? state.cString(tls.serverName ?? endpoint.host) : nil
        guard warren_tls_configure(socket, state.state, tls.verifyPeer ? 1 : 0, expected) == 1 else {
            throw AMQPError(.tlsFailed, "TLS: '\(tls.serverName ?? endpoint.host)' cannot be checked against a certificate (not a valid host name or IP address)")
        }
        if let ca = tls.caCertificateFile {
            guard amqp_ssl_socket_set_cacert(socket, ca) == AMQP_STATUS_OK.rawValue else {
                throw AMQPError(.tlsFailed, "TLS: cacertfile \(ca) could not be loaded: \(drainOpenSSLErrors() ?? "not a PEM certificate file?")")
            }
        } else if warren_tls_use_default_trust(socket) != 1 {
            throw AMQPError(.tlsFailed, "TLS: the system trust store could not be loaded (\(drainOpenSSLErrors() ?? "unknown error")); set cacertfile")
        }
        if let cert = tls.certificateFile, let key = tls.keyFile {
            guard amqp_ssl_socket_set_key(socket, cert, key) == AMQP_STATUS_OK.rawValue else {
                throw AMQPError(.tlsFailed, "TLS: certfile \(cert) / keyfile \(key) could not be loaded: \(drainOpenSSLErrors() ?? "not PEM files, or the key does not match the certificate?")")
            }
        }
        return socket
    }

    /// Takes this thread's OpenSSL errors as text (oldest first), or nil when there are none.
    func drainOpenSSLErrors() -> String? {
        let texts = openSSLErrors().map(\.text)
        return texts.isEmpty ? nil : texts.joined(separator: "; ")
    }

    /// The OpenSSL errors of this thread as (library, reason, text), oldest first; the queue is emptied.
    private func openSSLErrors() -> [(lib: Int32, reason: Int32, text: String)] {
        var errors: [(Int32, Int32, String)] = []
        while true {
            var lib: Int32 = 0, reason: Int32 = 0
            var data: UnsafePointer<CChar>?
            let code = warren_tls_next_error(&lib, &reason, &data)
            guard code != 0 else { break }
            var text = ERR_reason_error_string(code).map { String(cString: $0) } ?? "error \(code)"
            if let data { text += " (\(String(cString: data)))" }
            errors.append((lib, reason, text))
        }
        return errors
    }

    /// What went wrong in a TLS handshake (or right after it, where TLS 1.3 reports a refused client
    /// certificate), from the recorded verify error and the OpenSSL error queue; nil when nothing
    /// points at TLS.
    func tlsError(status: Int32, endpoint: ConnectPolicy.Endpoint, _ tls: AMQPTLSConfiguration,
                  afterHandshake: Bool = false) -> AMQPError? {
        let verifyError = tlsState?.state.pointee.verify_error ?? Int(X509_V_OK)
        let errors = openSSLErrors()
        let detail = errors.map(\.text).joined(separator: "; ")
        let name = tls.serverName ?? endpoint.host
        let prefix = "TLS to \(endpoint)"
        if verifyError != Int(X509_V_OK) {
            let reason = String(cString: X509_verify_cert_error_string(verifyError))
            switch Int32(verifyError) {
            case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
                 X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
                 X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, X509_V_ERR_CERT_UNTRUSTED:
                let trust = tls.caCertificateFile.map { "the CA file \($0)" } ?? "the system trust store"
                return AMQPError(.tlsFailed, "\(prefix): the broker's certificate is not signed by a trusted CA (OpenSSL: \(reason)); it is not trusted by \(trust): set cacertfile to the CA that signed it")
            case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH:
                return AMQPError(.tlsFailed, "\(prefix): the broker's certificate is not valid for '\(name)' (the name is not in its subjectAltName; OpenSSL: \(reason)); connect by a name the certificate lists, or set server_name_indication to one")
            case X509_V_ERR_CERT_HAS_EXPIRED:
                return AMQPError(.tlsFailed, "\(prefix): the broker's certificate has expired (OpenSSL: \(reason)); renew the broker's certificate (or check this machine's clock)")
            case X509_V_ERR_CERT_NOT_YET_VALID:
                return AMQPError(.tlsFailed, "\(prefix): the broker's certificate is not valid yet (OpenSSL: \(reason)); check this machine's clock")
            default:
                return AMQPError(.tlsFailed, "\(prefix): the broker's certificate was refused (OpenSSL: \(reason))")
            }
        }
        if errors.contains(where: { $0.lib == ERR_LIB_SSL && Self.certificateRequiredReasons.contains($0.reason) }) {
            if tls.certificateFile == nil {
                return AMQPError(.tlsFailed, "\(prefix): the broker requires a client certificate and none is configured; set certfile and keyfile (OpenSSL: \(detail))")
            }
            return AMQPError(.tlsFailed, "\(prefix): the broker refused the client certificate (OpenSSL: \(detail)); check that the broker trusts the CA that signed certfile")
        }
        if errors.contains(where: { $0.lib == ERR_LIB_SSL && Self.clientCertificateRefusedReasons.contains($0.reason) }) {
            return AMQPError(.tlsFailed, "\(prefix): the broker refused the client certificate (OpenSSL: \(detail)); check that the broker trusts the CA that signed certfile and that it has not expired")
        }
        if errors.contains(where: { $0.lib == ERR_LIB_SSL && Self.notTLSReasons.contains($0.reason) }) {
            return AMQPError(.tlsFailed, "\(prefix): the server does not speak TLS there (OpenSSL: \(detail)); it looks like a plain AMQP port: use amqp:// for it, or the broker's TLS port (5671 by default)")
        }
        if afterHandshake, Self.droppedStatuses.contains(status) {
            // TLS 1.3 ends the client's handshake before the broker has checked the client's
            // certificate; when the broker's alert is lost to a reset (our write came first), all
            // that is left is a connection dropped right after the handshake.
            let seen = detail.isEmpty ? AMQPError.statusText(status) : detail
            if tls.certificateFile == nil {
                return AMQPError(.tlsFailed, "\(prefix): the broker closed the connection right after the TLS handshake (\(seen)): it most likely requires a client certificate and none is configured; set certfile and keyfile")
            }
            return AMQPError(.tlsFailed, "\(prefix): the broker closed the connection right after the TLS handshake (\(seen)): it most likely refused the client certificate; check that the broker trusts the CA that signed certfile")
        }
        switch status {
        case AMQP_STATUS_SSL_ERROR.rawValue, AMQP_STATUS_SSL_CONNECTION_FAILED.rawValue,
             AMQP_STATUS_SSL_PEER_VERIFY_FAILED.rawValue, AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED.rawValue:
            let text = detail.isEmpty ? AMQPError.statusText(status) : detail
            return AMQPError(.tlsFailed, "\(prefix): the TLS handshake failed (OpenSSL: \(text)); if the port is a plain AMQP port use amqp://, otherwise check the broker's TLS settings")
        default:
            return nil
        }
    }

    /// Alerts that say the broker wanted a client certificate (TLS 1.3's certificate_required;
    /// TLS 1.2 brokers send handshake_failure).
    static let certificateRequiredReasons: Set<Int32> = [
        SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED, SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE,
    ]
    /// What librabbitmq reports when the other end dropped the connection.
    static let droppedStatuses: Set<Int32> = [
        AMQP_STATUS_SSL_ERROR.rawValue, AMQP_STATUS_CONNECTION_CLOSED.rawValue,
        AMQP_STATUS_SOCKET_ERROR.rawValue, AMQP_STATUS_SOCKET_CLOSED.rawValue,
    ]
    /// Alerts that say the broker refused the client certificate we sent.
    static let clientCertificateRefusedReasons: Set<Int32> = [
        SSL_R_TLSV1_ALERT_UNKNOWN_CA, SSL_R_SSLV3_ALERT_BAD_CERTIFICATE, SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED,
        SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN, SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE, SSL_R_TLSV1_ALERT_DECRYPT_ERROR,
    ]
    /// What OpenSSL says when the other end answered something that is not TLS.
    static let notTLSReasons: Set<Int32> = [
        SSL_R_WRONG_VERSION_NUMBER, SSL_R_PACKET_LENGTH_TOO_LONG, SSL_R_RECORD_LENGTH_MISMATCH,
        SSL_R_UNEXPECTED_RECORD, SSL_R_HTTP_REQUEST, SSL_R_UNKNOWN_PROTOCOL,
    ]

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
        if case .tls = policy.transport { warren_tls_clear_errors() }
        let reply = warren_amqp_login_plain(
            conn, config.virtualHost, 0, 131_072, Int32(config.heartbeat), &properties,
            config.username, config.password
        )
        guard reply.reply_type != AMQP_RESPONSE_NORMAL else { return }
        let endpoint = core.endpoint.withLock { $0 } ?? config.endpoints[0]
        // TLS 1.3: a broker refuses the client certificate after the client's handshake is done,
        // so it shows up here, on the first read.
        if reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION, case .tls(let tls) = policy.transport,
           let error = tlsError(status: reply.library_error, endpoint: endpoint, tls, afterHandshake: true) {
            throw error
        }
        var error = replyError(reply, doing: "login to vhost '\(config.virtualHost)' as '\(config.username)'")
        if error.replyCode == 403 || error.replyCode == 530 {
            error.code = error.replyCode == 403 ? .authenticationFailed : error.code
        } else if error.code != .connectionClosedByBroker {
            error.code = .handshakeFailed
            if case .tcp = policy.transport, reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION {
                error.message += "; the broker at \(endpoint) did not answer the AMQP handshake: if that is a TLS port, use amqps://"
            }
        }
        throw error
    }
}
