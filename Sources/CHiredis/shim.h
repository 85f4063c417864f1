#ifndef WARREN_CHIREDIS_SHIM_H
#define WARREN_CHIREDIS_SHIM_H

#include <string.h>
#include <hiredis/hiredis.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

// MARK: TLS for rediss://
//
// Debian 12's hiredis (0.14) has no TLS, so WarrenRedis uses hiredis only to encode commands and
// parse replies and does the socket I/O itself, through OpenSSL for rediss://. These helpers wrap
// what Swift cannot call (OpenSSL's function-like macros) and record the first certificate
// verification error, which OpenSSL's error queue reports only as "certificate verify failed".
// Static functions only and no static variables: Swift may compile them into several object files.

/// Owned by the caller (one per connection), stored as the SSL's app data.
typedef struct {
    /// The first X509 verify error seen during the handshake (X509_V_OK when none).
    long verify_error;
    /// Non-zero when the server's own certificate had expired. OpenSSL checks the name before the
    /// validity dates and stops at the first error, so an expired certificate for another name
    /// would otherwise be reported as a name mismatch only.
    int leaf_expired;
} warren_redis_tls_state;

static inline int warren_redis_tls_verify_callback(int preverify_ok, X509_STORE_CTX *store) {
    if (!preverify_ok) {
        SSL *ssl = (SSL *)X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
        warren_redis_tls_state *state = ssl ? (warren_redis_tls_state *)SSL_get_app_data(ssl) : NULL;
        if (state && state->verify_error == X509_V_OK) {
            state->verify_error = X509_STORE_CTX_get_error(store);
            X509 *leaf = X509_STORE_CTX_get0_cert(store);
            if (leaf && X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) state->leaf_expired = 1;
        }
    }
    return preverify_ok;
}

/// A passphrase callback that has none: an encrypted key fails to load at once ("bad decrypt")
/// instead of OpenSSL prompting on the terminal or stdin, which would block the owner thread.
static int warren_redis_no_passphrase(char *buf, int size, int rwflag, void *userdata) {
    (void)buf; (void)size; (void)rwflag; (void)userdata;
    return 0;
}

/// A client context: TLS 1.2 or later; the peer is verified during the handshake when
/// `verify_peer` is non-zero. NULL when OpenSSL cannot make one.
static inline SSL_CTX *warren_redis_tls_context(int verify_peer) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) return NULL;
    SSL_CTX_set_default_passwd_cb(ctx, warren_redis_no_passphrase);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    // Writes are retried from a buffer that Swift may have moved, and a large command may go out
    // in several records.
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(ctx, verify_peer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                       verify_peer ? warren_redis_tls_verify_callback : NULL);
    return ctx;
}

/// A new SSL on the connected socket `fd` with `state` attached. The server's certificate must be
/// valid for `host` (an IP address or a DNS name) when `verify_peer` is non-zero; a DNS name is
/// also sent as SNI (an IP address never is). NULL when OpenSSL refused (the error queue says why).
static inline SSL *warren_redis_tls_new(SSL_CTX *ctx, int fd, warren_redis_tls_state *state,
                                        int verify_peer, const char *host) {
    X509_VERIFY_PARAM *param = NULL;  // declared before the first goto
    SSL *ssl = SSL_new(ctx);
    if (!ssl) return NULL;
    SSL_set_app_data(ssl, state);
    if (SSL_set_fd(ssl, fd) != 1) goto fail;
    param = SSL_get0_param(ssl);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1) return ssl;
    ERR_clear_error();  // set1_ip_asc's "not an IP address" is expected for a name
    if (SSL_set_tlsext_host_name(ssl, host) != 1) goto fail;
    if (verify_peer) {
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (X509_VERIFY_PARAM_set1_host(param, host, strlen(host)) != 1) goto fail;
    }
    return ssl;
fail:
    SSL_free(ssl);
    return NULL;
}

/// Takes the oldest error of this thread's OpenSSL queue: its library and reason codes; 0 when
/// the queue is empty. `data` gets the extra text (e.g. "Verify error:...") when there is one.
static inline unsigned long warren_redis_tls_next_error(int *lib, int *reason, const char **data) {
    const char *text = NULL;
    int flags = 0;
    unsigned long code = ERR_get_error_all(NULL, NULL, NULL, &text, &flags);
    *lib = code ? ERR_GET_LIB(code) : 0;
    *reason = code ? ERR_GET_REASON(code) : 0;
    *data = (code && text && (flags & ERR_TXT_STRING)) ? text : NULL;
    return code;
}

#endif
