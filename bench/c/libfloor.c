/*
 * bench/c/libfloor.c — the memory floor of the C libraries an ingest worker is built on, for
 * bench/run's RSS rows: what librabbitmq, hiredis and libpq (with OpenSSL, and what Debian's libpq
 * links: GSSAPI, LDAP, GnuTLS...) cost a process that holds the connections an idle ingest worker
 * holds, in C, with nothing else (no runtime, no event loop, no HTTP server, one thread):
 *
 *   - an AMQP connection with a consumer registered on QUEUE (prefetch PREFETCH), from $AMQP_URL;
 *   - a Redis connection from $REDIS_URL (redis://host[:port][/db]), PING once a second;
 *   - a Postgres connection from $DATABASE_URL, `SELECT 1` once a second. sslmode is `disable`
 *     unless the URL sets it, as event-worker's default (libpq's own default, `prefer`, would
 *     negotiate TLS with a server that has it, and map more of libcrypto).
 *
 *   libfloor QUEUE PREFETCH
 *
 * Prints "ready" on stdout once all three answered, then runs until SIGTERM / SIGINT (exit 0).
 * Deliveries are neither read nor acknowledged (the harness gives it one): they stay unacked until
 * the connection closes.
 * Any failure: one line on stderr, exit 1.
 */
#define _GNU_SOURCE
#include "common.h"

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <signal.h>
#include <unistd.h>

static volatile sig_atomic_t stopping = 0;

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

/* redis://host[:port][/db] (no user, password or TLS: the bench's instance has none). */
static redisContext *redis_connect(const char *url) {
    char host[256] = "127.0.0.1";
    int port = 6379;
    /* The URL is never printed: it could hold a password. */
    if (url == NULL || strncmp(url, "redis://", 8) != 0 || strchr(url, '@') != NULL ||
        sscanf(url + 8, "%255[^:/]:%d", host, &port) < 1)
        die("REDIS_URL must be redis://host[:port][/db] (no user, password or TLS)");
    struct timeval timeout = {.tv_sec = 5, .tv_usec = 0};
    redisContext *r = redisConnectWithTimeout(host, port, timeout);
    if (r == NULL || r->err) die("connecting to Redis at %s:%d: %s", host, port, r ? r->errstr : "out of memory");
    return r;
}

static void redis_ping(redisContext *r) {
    redisReply *reply = redisCommand(r, "PING");
    if (reply == NULL) die("Redis PING: %s", r->errstr);
    if (reply->type != REDIS_REPLY_STATUS) die("Redis PING: unexpected reply type %d", reply->type);
    freeReplyObject(reply);
}

static PGconn *postgres_connect(const char *url) {
    if (url == NULL || *url == '\0') die("DATABASE_URL is not set");
    /* With expand_dbname the URL's own parameters override the keywords before it. */
    const char *keys[] = {"sslmode", "dbname", NULL};
    const char *values[] = {"disable", url, NULL};
    PGconn *pg = PQconnectdbParams(keys, values, 1);
    if (pg == NULL || PQstatus(pg) != CONNECTION_OK)
        die("connecting to Postgres: %s", pg ? PQerrorMessage(pg) : "out of memory");
    return pg;
}

static void postgres_select(PGconn *pg) {
    PGresult *res = PQexec(pg, "SELECT 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) die("Postgres SELECT 1: %s", PQerrorMessage(pg));
    PQclear(res);
}

int main(int argc, char **argv) {
    bench_init(argc, argv);
    if (argc != 3) die("usage: %s QUEUE PREFETCH", argv[0]);
    const char *queue = argv[1];
    uint64_t prefetch = parse_count(argv[2], "PREFETCH");
    if (prefetch > UINT16_MAX) die("PREFETCH must be at most %u", UINT16_MAX);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    amqp_connection_state_t conn = bench_connect(NULL);
    amqp_basic_qos(conn, BENCH_CHANNEL, 0, (uint16_t)prefetch, 0);
    check_reply(amqp_get_rpc_reply(conn), "basic.qos");
    amqp_basic_consume(conn, BENCH_CHANNEL, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "basic.consume");

    redisContext *redis = redis_connect(getenv("REDIS_URL"));
    redis_ping(redis);
    PGconn *pg = postgres_connect(getenv("DATABASE_URL"));
    postgres_select(pg);
    printf("ready\n");
    fflush(stdout);

    while (!stopping) {
        sleep(1); /* interrupted by the signal */
        if (stopping) break;
        redis_ping(redis);
        postgres_select(pg);
    }
    PQfinish(pg);
    redisFree(redis);
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
    return 0;
}
