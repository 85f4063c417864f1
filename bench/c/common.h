/*
 * bench/c/common.h — helpers shared by the bench programs (consumer.c, publisher.c):
 * fatal errors, RPC-reply checks, connecting from an AMQP URL, argument parsing and
 * a monotonic clock. Header-only (static inline) so each program stays one `cc` call.
 *
 * Written against librabbitmq 0.11 (Debian librabbitmq-dev: <amqp.h>, <amqp_tcp_socket.h>).
 */
#ifndef WARREN_BENCH_COMMON_H
#define WARREN_BENCH_COMMON_H

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Used when neither a URL argument nor AMQP_URL is given. */
#define BENCH_DEFAULT_URL "amqp://guest:guest@127.0.0.1:5672/%2F"

/* The one channel each program uses. */
#define BENCH_CHANNEL 1

/* How long to wait for a frame from the broker before giving up (seconds). */
#define BENCH_IDLE_TIMEOUT_S 30

/* Program name for messages; set from argv[0] by bench_init(). */
static const char *bench_prog = "bench";

static inline void bench_init(int argc, char **argv) {
    (void)argc;
    if (argv[0] != NULL) {
        const char *slash = strrchr(argv[0], '/');
        bench_prog = slash != NULL ? slash + 1 : argv[0];
    }
}

/* Print "prog: error: ..." to stderr and exit 1. */
__attribute__((noreturn, format(printf, 1, 2)))
static inline void die(const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "%s: error: ", bench_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* Die if a librabbitmq status code (AMQP_STATUS_*, 0 = OK) reports an error. */
static inline void check_status(int status, const char *what) {
    if (status != AMQP_STATUS_OK) die("%s: %s", what, amqp_error_string2(status));
}

/* Die with the reply text of a connection.close / channel.close method. */
__attribute__((noreturn))
static inline void die_closed(const amqp_method_t *method, const char *what) {
    if (method->id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *m = method->decoded;
        die("%s: broker closed the connection: %u %.*s", what, m->reply_code,
            (int)m->reply_text.len, (const char *)m->reply_text.bytes);
    }
    if (method->id == AMQP_CHANNEL_CLOSE_METHOD) {
        const amqp_channel_close_t *m = method->decoded;
        die("%s: broker closed the channel: %u %.*s", what, m->reply_code,
            (int)m->reply_text.len, (const char *)m->reply_text.bytes);
    }
    die("%s: unexpected method 0x%08x from the broker", what, (unsigned)method->id);
}

/* Die unless an RPC reply (amqp_get_rpc_reply(), amqp_login(), ...) is normal. */
static inline void check_reply(amqp_rpc_reply_t r, const char *what) {
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return;
    case AMQP_RESPONSE_NONE:
        die("%s: no RPC reply from the library", what);
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        die("%s: %s", what, amqp_error_string2(r.library_error));
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        die_closed(&r.reply, what);
    }
    die("%s: unknown reply type %d", what, (int)r.reply_type);
}

/* Parse a positive decimal count; `what` names it in the error message. */
static inline uint64_t parse_count(const char *s, const char *what) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v == 0)
        die("%s must be a positive integer, not '%s'", what, s);
    return (uint64_t)v;
}

/* Seconds on the monotonic clock. */
static inline double now_seconds(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) die("clock_gettime: %s", strerror(errno));
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Connect, log in and open BENCH_CHANNEL. `url` may be NULL: then $AMQP_URL, then
 * BENCH_DEFAULT_URL. The URL is parsed by librabbitmq's own amqp_parse_url()
 * (amqp://user:pass@host:port/vhost, vhost percent-decoded, so %2F is "/").
 */
static inline amqp_connection_state_t bench_connect(const char *url) {
    if (url == NULL || *url == '\0') url = getenv("AMQP_URL");
    if (url == NULL || *url == '\0') url = BENCH_DEFAULT_URL;

    /* amqp_parse_url() parses in place and points `info` into the buffer. */
    char *buf = strdup(url);
    if (buf == NULL) die("out of memory");
    struct amqp_connection_info info;
    amqp_default_connection_info(&info);
    if (amqp_parse_url(buf, &info) != AMQP_STATUS_OK) die("cannot parse AMQP URL '%s'", url);
    if (info.ssl) die("amqps:// is not supported by this benchmark ('%s')", url);

    amqp_connection_state_t conn = amqp_new_connection();
    if (conn == NULL) die("amqp_new_connection failed");
    amqp_socket_t *sock = amqp_tcp_socket_new(conn);
    if (sock == NULL) die("amqp_tcp_socket_new failed");

    int status = amqp_socket_open(sock, info.host, info.port);
    if (status != AMQP_STATUS_OK)
        die("connecting to %s:%d: %s (is the broker running?)", info.host, info.port,
            amqp_error_string2(status));

    /* librabbitmq 0.11 does not announce consumer_cancel_notify, so by default the
     * broker cancels a consumer silently when its queue is deleted. Ask for the
     * basic.cancel (the library merges this into its own capabilities table). */
    amqp_table_entry_t cap_entries[1];
    cap_entries[0].key = amqp_cstring_bytes("consumer_cancel_notify");
    cap_entries[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    cap_entries[0].value.value.boolean = 1;
    amqp_table_entry_t prop_entries[1];
    prop_entries[0].key = amqp_cstring_bytes("capabilities");
    prop_entries[0].value.kind = AMQP_FIELD_KIND_TABLE;
    prop_entries[0].value.value.table = (amqp_table_t){.num_entries = 1, .entries = cap_entries};
    const amqp_table_t props = {.num_entries = 1, .entries = prop_entries};

    /* channel_max 0 = library default, default frame size, heartbeats off. */
    check_reply(amqp_login_with_properties(conn, info.vhost, 0, AMQP_DEFAULT_FRAME_SIZE, 0, &props,
                                           AMQP_SASL_METHOD_PLAIN, info.user, info.password),
                "login");
    amqp_channel_open(conn, BENCH_CHANNEL);
    check_reply(amqp_get_rpc_reply(conn), "channel.open");

    free(buf);
    return conn;
}

/* Close the channel and the connection cleanly, then free the connection. */
static inline void bench_close(amqp_connection_state_t conn) {
    check_reply(amqp_channel_close(conn, BENCH_CHANNEL, AMQP_REPLY_SUCCESS), "channel.close");
    check_reply(amqp_connection_close(conn, AMQP_REPLY_SUCCESS), "connection.close");
    check_status(amqp_destroy_connection(conn), "amqp_destroy_connection");
}

#endif /* WARREN_BENCH_COMMON_H */
