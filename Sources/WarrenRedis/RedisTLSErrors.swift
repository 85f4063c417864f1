import CHiredis
import Glibc

/// What a TLS failure means, in words that say what to change (as `WarrenAMQP` does for amqps://).
extension RedisTLSSession {
    /// The error for a failed handshake.
    func handshakeError(_ failure: RedisIOFailure, _ configuration: RedisConfiguration,
                        _ tls: RedisTLSConfiguration) -> RedisError {
        let prefix = "TLS to Redis at \(configuration.endpoint)"
        if let error = verifyFailure(prefix, configuration, tls) { return error }
        let errors: [OpenSSLError]
        switch failure {
        case .timeout:
            // A plain Redis port never answers a ClientHello (it waits for the end of a command
            // line), so from here it looks just like a frozen server.
            return RedisError(.timeout, "Redis at \(configuration.endpoint) did not complete the TLS handshake within \(configuration.connectTimeout.secondsText): the server is frozen or overloaded, or it does not speak TLS there (a plain Redis port never answers a TLS handshake): use redis:// for a plain port, or the server's TLS port (tls-port)")
        case .closed, .system, .notRedisProtocol:
            let seen = Self.describe(failure)
            return RedisError(.tlsFailed, "\(prefix): the server closed the connection during the TLS handshake (\(seen)); if that is a plain Redis port use redis://, otherwise check the server's TLS settings (tls-port, tls-cert-file)")
        case .tls(let list): errors = list
        }
        if let error = clientCertificateFailure(prefix, errors, tls) { return error }
        let detail = Self.describe(failure)
        if errors.contains(where: { $0.lib == ERR_LIB_SSL && Self.notTLSReasons.contains($0.reason) }) {
            return RedisError(.tlsFailed, "\(prefix): the server does not speak TLS there (OpenSSL: \(detail)); it looks like a plain Redis port: use redis:// for it, or the server's TLS port (tls-port)")
        }
        return RedisError(.tlsFailed, "\(prefix): the TLS handshake failed (OpenSSL: \(detail)); if the port is a plain Redis port use redis://, otherwise check the server's TLS settings")
    }

    /// The error for a failure of the first command after the handshake, when it is about TLS; nil
    /// otherwise. With TLS 1.3 the client's handshake ends before the server has checked the
    /// client certificate, so a missing or refused one surfaces here, on the first read.
    func firstReplyError(_ failure: RedisIOFailure, _ configuration: RedisConfiguration,
                         _ tls: RedisTLSConfiguration) -> RedisError? {
        let prefix = "TLS to Redis at \(configuration.endpoint)"
        switch failure {
        case .timeout, .notRedisProtocol:
            return nil
        case .tls(let errors):
            return clientCertificateFailure(prefix, errors, tls)
        case .closed, .system(ECONNRESET), .system(EPIPE):
            // The server's alert was lost to a reset (our command crossed it) or never sent.
            let seen = Self.describe(failure)
            if tls.certificateFile == nil {
                return RedisError(.tlsFailed, "\(prefix): the server closed the connection right after the TLS handshake (\(seen)): it most likely requires a client certificate (tls-auth-clients) and none is configured; set ssl_certfile and ssl_keyfile")
            }
            return RedisError(.tlsFailed, "\(prefix): the server closed the connection right after the TLS handshake (\(seen)): it most likely refused the client certificate; check that it trusts the CA that signed ssl_certfile (tls-ca-cert-file)")
        case .system:
            return nil
        }
    }

    /// The server's certificate failed verification (recorded by the verify callback).
    private func verifyFailure(_ prefix: String, _ configuration: RedisConfiguration,
                               _ tls: RedisTLSConfiguration) -> RedisError? {
        let verifyError = verifyError
        guard verifyError != Int(X509_V_OK) else { return nil }
        let reason = String(cString: X509_verify_cert_error_string(verifyError))
        switch Int32(verifyError) {
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
             X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
             X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, X509_V_ERR_CERT_UNTRUSTED:
            let trust = tls.caCertificateFile.map { "the CA file \($0)" } ?? "the system trust store"
            return RedisError(.tlsFailed, "\(prefix): the server's certificate is not signed by a trusted CA (OpenSSL: \(reason)); it is not trusted by \(trust): set ssl_ca_certs to the CA that signed it")
        case X509_V_ERR_HOSTNAME_MISMATCH where leafExpired, X509_V_ERR_IP_ADDRESS_MISMATCH where leafExpired:
            return RedisError(.tlsFailed, "\(prefix): the server's certificate has expired, and it is not valid for '\(configuration.host)' either (OpenSSL: \(reason), certificate has expired); renew the server's certificate for a name or address you connect by (or check this machine's clock)")
        case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH:
            return RedisError(.tlsFailed, "\(prefix): the server's certificate is not valid for '\(configuration.host)' (the name is not in its subjectAltName; OpenSSL: \(reason)); connect by a name or address the certificate lists")
        case X509_V_ERR_CERT_HAS_EXPIRED:
            return RedisError(.tlsFailed, "\(prefix): the server's certificate has expired (OpenSSL: \(reason)); renew the server's certificate (or check this machine's clock)")
        case X509_V_ERR_CERT_NOT_YET_VALID:
            return RedisError(.tlsFailed, "\(prefix): the server's certificate is not valid yet (OpenSSL: \(reason)); check this machine's clock")
        default:
            return RedisError(.tlsFailed, "\(prefix): the server's certificate was refused (OpenSSL: \(reason))")
        }
    }

    /// The server's alert says it wanted a client certificate, or refused ours.
    private func clientCertificateFailure(_ prefix: String, _ errors: [OpenSSLError],
                                          _ tls: RedisTLSConfiguration) -> RedisError? {
        let detail = errors.map(\.text).joined(separator: "; ")
        if errors.contains(where: { $0.lib == ERR_LIB_SSL && Self.certificateRequiredReasons.contains($0.reason) }) {
            if tls.certificateFile == nil {
                return RedisError(.tlsFailed, "\(prefix): the server requires a client certificate (tls-auth-clients) and none is configured; set ssl_certfile and ssl_keyfile (OpenSSL: \(detail))")
            }
            return RedisError(.tlsFailed, "\(prefix): the server refused the client certificate (OpenSSL: \(detail)); check that it trusts the CA that signed ssl_certfile (tls-ca-cert-file)")
        }
        if errors.contains(where: { $0.lib == ERR_LIB_SSL && Self.clientCertificateRefusedReasons.contains($0.reason) }) {
            return RedisError(.tlsFailed, "\(prefix): the server refused the client certificate (OpenSSL: \(detail)); check that it trusts the CA that signed ssl_certfile (tls-ca-cert-file) and that the certificate has not expired")
        }
        return nil
    }

    static func describe(_ failure: RedisIOFailure) -> String {
        switch failure {
        case .timeout: "timed out"
        case .closed: "end of stream"
        case .system(let code): String(cString: strerror(code))
        case .tls(let errors): errors.isEmpty ? "no OpenSSL error" : errors.map(\.text).joined(separator: "; ")
        case .notRedisProtocol(let reason, _): reason
        }
    }

    /// Alerts that say the server wanted a client certificate (TLS 1.3's certificate_required;
    /// TLS 1.2 servers send handshake_failure).
    static let certificateRequiredReasons: Set<Int32> = [
        SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED, SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE,
    ]
    /// Alerts that say the server refused the client certificate we sent.
    static let clientCertificateRefusedReasons: Set<Int32> = [
        SSL_R_TLSV1_ALERT_UNKNOWN_CA, SSL_R_SSLV3_ALERT_BAD_CERTIFICATE, SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED,
        SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN, SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE, SSL_R_TLSV1_ALERT_DECRYPT_ERROR,
    ]
    /// What OpenSSL says when the other end answered something that is not TLS.
    static let notTLSReasons: Set<Int32> = [
        SSL_R_WRONG_VERSION_NUMBER, SSL_R_PACKET_LENGTH_TOO_LONG, SSL_R_RECORD_LENGTH_MISMATCH,
        SSL_R_UNEXPECTED_RECORD, SSL_R_HTTP_REQUEST, SSL_R_UNKNOWN_PROTOCOL,
    ]
}
