#ifndef WARREN_CRABBITMQ_SHIM_H
#define WARREN_CRABBITMQ_SHIM_H

#include <string.h>
#include <pthread.h>
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/// `amqp_login_with_properties` is variadic (its SASL arguments), which Swift cannot call.
/// This wrapper fixes the method to PLAIN with a username and a password.
static inline amqp_rpc_reply_t warren_amqp_login_plain(
    amqp_connection_state_t state, const char *vhost, int channel_max,
    int frame_max, int heartbeat, const amqp_table_t *properties,
    const char *user, const char *password) {
    return amqp_login_with_properties(state, vhost, channel_max, frame_max,
                                      heartbeat, properties,
                                      AMQP_SASL_METHOD_PLAIN, user, password);
}

/// glibc declares `pthread_setname_np` only under _GNU_SOURCE, which Swift's Glibc module is not
/// built with. Names the calling thread (15 bytes at most), for `top -H`, perf and tests.
extern int pthread_setname_np(pthread_t thread, const char *name);
static inline void warren_name_this_thread(const char *name) { (void)pthread_setname_np(pthread_self(), name); }

// MARK: TLS
//
// librabbitmq 0.11's OpenSSL socket sends the connect host as SNI and, when asked, checks it with
// X509_check_host (DNS names only, so never an IP address in the SAN); it keeps the verify result
// to itself. These helpers work on its SSL_CTX (amqp_ssl_socket_get_context) instead: the peer is
// verified during the handshake (SSL_VERIFY_PEER) against the expected name or IP (the
// X509_VERIFY_PARAM, inherited by the SSL), the first verify error is recorded in a
// `warren_tls_state` that the caller owns, and the SNI can be replaced or left out.
// No static variables: Swift may compile these functions into several object files.

/// Owned by the caller (one per socket), stored as the SSL_CTX's app data.
typedef struct {
    /// The SNI to send instead of the connect host; NULL: keep librabbitmq's.
    const char *server_name;
    /// Send no SNI at all.
    int disable_sni;
    /// The first X509 verify error seen during the handshake (X509_V_OK when none).
    long verify_error;
} warren_tls_state;

static inline warren_tls_state *warren_tls_state_of(const SSL *ssl) {
    return (warren_tls_state *)SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
}

static int warren_tls_verify_callback(int preverify_ok, X509_STORE_CTX *store) {
    if (!preverify_ok) {
        SSL *ssl = (SSL *)X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
        warren_tls_state *state = ssl ? warren_tls_state_of(ssl) : NULL;
        if (state && state->verify_error == X509_V_OK) state->verify_error = X509_STORE_CTX_get_error(store);
    }
    return preverify_ok;
}

static void warren_tls_info_callback(const SSL *ssl, int where, int ret) {
    (void)ret;
    if (!(where & SSL_CB_HANDSHAKE_START)) return;
    warren_tls_state *state = warren_tls_state_of(ssl);
    if (!state) return;
    // Before the ClientHello is written: replace (or drop) the SNI librabbitmq set.
    if (state->disable_sni) {
        SSL_set_tlsext_host_name((SSL *)ssl, NULL);
    } else if (state->server_name) {
        SSL_set_tlsext_host_name((SSL *)ssl, state->server_name);
    }
}

/// A passphrase callback that has none: an encrypted keyfile fails to load at once ("bad decrypt")
/// instead of OpenSSL prompting on the terminal or stdin, which would block the owner thread.
static int warren_tls_no_passphrase(char *buf, int size, int rwflag, void *userdata) {
    (void)buf; (void)size; (void)rwflag; (void)userdata;
    return 0;
}

/// Attaches `state` to the socket's context; verifies the peer during the handshake when
/// `verify_peer` is non-zero, against `expected_name` (an IP address or a DNS name) when not NULL.
/// Returns 1 on success, 0 when OpenSSL refused the name.
static inline int warren_tls_configure(amqp_socket_t *socket, warren_tls_state *state,
                                       int verify_peer, const char *expected_name) {
    SSL_CTX *ctx = (SSL_CTX *)amqp_ssl_socket_get_context(socket);
    SSL_CTX_set_app_data(ctx, state);
    SSL_CTX_set_info_callback(ctx, warren_tls_info_callback);
    SSL_CTX_set_default_passwd_cb(ctx, warren_tls_no_passphrase);
    if (!verify_peer) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return 1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, warren_tls_verify_callback);
    if (!expected_name) return 1;
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, expected_name) == 1) return 1;
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return X509_VERIFY_PARAM_set1_host(param, expected_name, strlen(expected_name));
}

/// Uses the system's default trust store (OpenSSL's default paths). Returns 1 on success.
static inline int warren_tls_use_default_trust(amqp_socket_t *socket) {
    return SSL_CTX_set_default_verify_paths((SSL_CTX *)amqp_ssl_socket_get_context(socket));
}

/// Takes the oldest error of this thread's OpenSSL queue: its library and reason codes and its
/// reason string; 0 when the queue is empty. `data` gets the extra text (e.g. "Verify error:...").
static inline unsigned long warren_tls_next_error(int *lib, int *reason, const char **data) {
    const char *text = NULL;
    int flags = 0;
    unsigned long code = ERR_get_error_all(NULL, NULL, NULL, &text, &flags);
    *lib = code ? ERR_GET_LIB(code) : 0;
    *reason = code ? ERR_GET_REASON(code) : 0;
    *data = (code && text && (flags & ERR_TXT_STRING)) ? text : NULL;
    return code;
}

static inline void warren_tls_clear_errors(void) { ERR_clear_error(); }

#endif
