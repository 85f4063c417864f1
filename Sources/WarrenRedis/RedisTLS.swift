import CHiredis
import Glibc
import WarrenSystem

/// The OpenSSL side of a `rediss://` connection: its `SSL_CTX` and `SSL`, and the first
/// certificate verification error recorded during the handshake.
///
/// One context per connection: the certificate files are read at each connect, so a rotated
/// client certificate or CA is picked up on the next reconnect. Used only on the owner thread.
final class RedisTLSSession {
    let context: OpaquePointer
    let ssl: OpaquePointer
    private let state: UnsafeMutablePointer<warren_redis_tls_state>
    private var freed = false

    /// Sets up TLS on the connected `socket` as configured (nothing is sent yet).
    init(socket: Int32, configuration: RedisConfiguration, tls: RedisTLSConfiguration) throws(RedisError) {
        ERR_clear_error()
        guard let context = warren_redis_tls_context(tls.verifyPeer ? 1 : 0) else {
            throw RedisError(.tlsFailed, "TLS: OpenSSL could not create a context: \(Self.drainErrorText() ?? "out of memory?")")
        }
        do throws(RedisError) {
            try Self.load(tls, into: context)
        } catch {
            SSL_CTX_free(context)
            throw error
        }
        let state = UnsafeMutablePointer<warren_redis_tls_state>.allocate(capacity: 1)
        state.initialize(to: warren_redis_tls_state(verify_error: Int(X509_V_OK), leaf_expired: 0))
        guard let ssl = warren_redis_tls_new(context, socket, state, tls.verifyPeer ? 1 : 0, configuration.host) else {
            let detail = Self.drainErrorText() ?? "unknown error"
            SSL_CTX_free(context)
            state.deallocate()
            throw RedisError(.tlsFailed, "TLS to Redis at \(configuration.endpoint): OpenSSL refused the host '\(configuration.host)' for the certificate check or SNI (\(detail))")
        }
        self.context = context
        self.ssl = ssl
        self.state = state
    }

    private static func load(_ tls: RedisTLSConfiguration, into context: OpaquePointer) throws(RedisError) {
        if let file = tls.caCertificateFile {
            guard SSL_CTX_load_verify_locations(context, file, nil) == 1 else {
                throw RedisError(.tlsFailed, "TLS: ssl_ca_certs \(file) could not be loaded (\(drainErrorText() ?? "no certificate in it")); it must be a PEM file of CA certificates")
            }
        } else if tls.verifyPeer {
            guard SSL_CTX_set_default_verify_paths(context) == 1 else {
                throw RedisError(.tlsFailed, "TLS: the system trust store could not be loaded (\(drainErrorText() ?? "unknown error")); set ssl_ca_certs to the CA that signed the server's certificate")
            }
        }
        if let certificate = tls.certificateFile, let key = tls.keyFile {
            guard SSL_CTX_use_certificate_chain_file(context, certificate) == 1,
                  SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) == 1,
                  SSL_CTX_check_private_key(context) == 1
            else {
                throw RedisError(.tlsFailed, "TLS: ssl_certfile \(certificate) / ssl_keyfile \(key) could not be loaded (\(drainErrorText() ?? "unknown error")); they must be PEM files, and the key must match the certificate")
            }
        }
    }

    /// Frees the SSL and its context. Idempotent.
    func free() {
        guard !freed else { return }
        freed = true
        SSL_free(ssl)
        SSL_CTX_free(context)
        state.deallocate()
    }

    deinit { free() }

    /// The first certificate verification error of the handshake (`X509_V_OK` when none).
    var verifyError: Int { state.pointee.verify_error }
    /// Whether the server's own certificate had expired (also when another error came first).
    var leafExpired: Bool { state.pointee.leaf_expired != 0 }

    /// Runs the client handshake by `deadline`.
    func handshake(on transport: RedisTransport, deadline: MonotonicClock.Instant) throws(RedisIOFailure) {
        while true {
            ERR_clear_error()
            let result = SSL_connect(ssl)
            if result == 1 { return }
            try transport.wait(for: try retryEvents(after: result), until: deadline)
        }
    }

    /// After an `SSL_*` call returned `result` (not a success): the poll events to wait for before
    /// retrying it, or the failure.
    func retryEvents(after result: Int32) throws(RedisIOFailure) -> Int16 {
        let code = errno
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ: return Int16(POLLIN)
        case SSL_ERROR_WANT_WRITE: return Int16(POLLOUT)
        case SSL_ERROR_ZERO_RETURN: throw .closed
        case SSL_ERROR_SYSCALL:
            let errors = Self.drainErrors()
            if !errors.isEmpty { throw .tls(errors) }
            throw code == 0 ? .closed : .system(code)
        default:
            let errors = Self.drainErrors()
            // OpenSSL 3 reports an EOF without close_notify as an SSL error; it is a closed connection.
            if errors.count == 1, errors[0].lib == ERR_LIB_SSL, errors[0].reason == SSL_R_UNEXPECTED_EOF_WHILE_READING {
                throw .closed
            }
            throw .tls(errors)
        }
    }

    /// This thread's OpenSSL errors, oldest first; the queue is emptied.
    static func drainErrors() -> [OpenSSLError] {
        var errors: [OpenSSLError] = []
        while true {
            var lib: Int32 = 0, reason: Int32 = 0
            var data: UnsafePointer<CChar>?
            let code = warren_redis_tls_next_error(&lib, &reason, &data)
            guard code != 0 else { break }
            var text = ERR_reason_error_string(code).map { String(cString: $0) } ?? "error \(code)"
            if let data { text += " (\(String(cString: data)))" }
            errors.append(OpenSSLError(lib: lib, reason: reason, text: text))
        }
        return errors
    }

    private static func drainErrorText() -> String? {
        let texts = drainErrors().map(\.text)
        return texts.isEmpty ? nil : texts.joined(separator: "; ")
    }
}
