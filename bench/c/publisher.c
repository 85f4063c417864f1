/*
 * bench/c/publisher.c — prefills a queue for bench/consume, fast.
 *
 *   publisher [-r] [-t] [-o OFFSET] QUEUE N [AMQP_URL]
 *                       (URL default: $AMQP_URL, then amqp://guest:guest@127.0.0.1:5672/%2F)
 *     -r   delete QUEUE first (dropping whatever it holds), then declare it afresh;
 *          with -t, QUEUE.dead too
 *     -t   declare Warren's topology, exactly as event-worker does (Sources/Warren/Topology.swift):
 *          fanout exchange QUEUE.dlx, queue QUEUE.dead bound to it, and QUEUE with
 *          x-queue-type=classic and x-dead-letter-exchange=QUEUE.dlx, so that the worker's
 *          own declare is equivalent and does not fail with 406 PRECONDITION_FAILED
 *     -o   number the messages OFFSET+1 .. OFFSET+N (default 0): the event ids derive from
 *          the number, so publishing a range again yields the same events (duplicates)
 *
 * Declares QUEUE (durable, classic: without -t, the 3.10 default type and no
 * arguments that could clash with an existing queue's), then publishes N persistent
 * messages of about 100 bytes of JSON through the default exchange, with publisher
 * confirms. Confirms are handled in windows of WINDOW messages: after each window
 * is sent, wait until everything before it is confirmed, so one window is always
 * in flight while the broker persists the previous one. (Larger windows measured
 * no faster: the broker's CPU is the limit, ~25k persistent msg/s on 2 cores.)
 * librabbitmq 0.11 has no confirm helper, so the basic.ack / basic.nack frames are
 * read here with amqp_simple_wait_frame_noblock(). Prints "published N" once all N
 * are confirmed.
 *
 * Message body (Warren's event format, ~100 bytes), for message number i:
 *   {"id":"<uuid derived from i>","type":"bench","payload":{"n":i,"note":"warren"}}
 */
#include "common.h"

#include <unistd.h>

#define WINDOW 1000 /* messages per confirm window */

/* Confirm bookkeeping: confirmed[tag] for tags 1..n, and the lowest unconfirmed tag. */
struct confirms {
    unsigned char *confirmed;
    uint64_t low;       /* every tag below this one is confirmed */
    uint64_t published; /* highest tag sent so far */
};

/* Record a basic.ack for `tag` (and all before it when `multiple`). */
static void mark_acked(struct confirms *c, uint64_t tag, int multiple) {
    if (tag == 0 || tag > c->published)
        die("broker confirmed delivery tag %" PRIu64 " but only %" PRIu64 " were published", tag,
            c->published);
    if (multiple) {
        for (uint64_t t = c->low; t <= tag; t++) c->confirmed[t] = 1;
    } else {
        c->confirmed[tag] = 1;
    }
    while (c->low <= c->published && c->confirmed[c->low]) c->low++;
}

/* Read frames until every tag up to and including `upto` is confirmed. */
static void wait_confirms(amqp_connection_state_t conn, struct confirms *c, uint64_t upto) {
    while (c->low <= upto) {
        amqp_frame_t frame;
        struct timeval timeout = {.tv_sec = BENCH_IDLE_TIMEOUT_S, .tv_usec = 0};
        int status = amqp_simple_wait_frame_noblock(conn, &frame, &timeout);
        if (status == AMQP_STATUS_TIMEOUT)
            die("no publisher confirm for %d s (%" PRIu64 " of %" PRIu64 " confirmed)",
                BENCH_IDLE_TIMEOUT_S, c->low - 1, c->published);
        check_status(status, "waiting for publisher confirms");

        if (frame.frame_type == AMQP_FRAME_METHOD) {
            const amqp_method_t *m = &frame.payload.method;
            switch (m->id) {
            case AMQP_BASIC_ACK_METHOD: {
                const amqp_basic_ack_t *ack = m->decoded;
                mark_acked(c, ack->delivery_tag, ack->multiple);
                break;
            }
            case AMQP_BASIC_NACK_METHOD: {
                const amqp_basic_nack_t *nack = m->decoded;
                die("broker nacked delivery tag %" PRIu64 "%s", nack->delivery_tag,
                    nack->multiple ? " (and earlier)" : "");
            }
            case AMQP_BASIC_RETURN_METHOD:
                die("broker returned a message (queue missing?)");
            case AMQP_CHANNEL_CLOSE_METHOD:
            case AMQP_CONNECTION_CLOSE_METHOD:
                die_closed(m, "publishing");
            default:
                break; /* nothing else matters here */
            }
        }
        /* Frames are decoded into the connection's pools: free them as we go. */
        amqp_maybe_release_buffers(conn);
    }
}

/* One string-valued entry of an AMQP table. */
static amqp_table_entry_t string_entry(const char *key, const char *value) {
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(value);
    return e;
}

/* What Warren's Topology.declare does (classic queue type): QUEUE.dlx (fanout, durable),
 * QUEUE.dead (durable, x-queue-type=classic) bound to it, and QUEUE (durable,
 * x-queue-type=classic, x-dead-letter-exchange=QUEUE.dlx). */
static void declare_warren_topology(amqp_connection_state_t conn, const char *queue) {
    char dlx[512], dead[512];
    if (snprintf(dlx, sizeof dlx, "%s.dlx", queue) >= (int)sizeof dlx ||
        snprintf(dead, sizeof dead, "%s.dead", queue) >= (int)sizeof dead)
        die("queue name too long: '%s'", queue);

    /* passive 0, durable 1, auto_delete 0, internal 0 */
    amqp_exchange_declare(conn, BENCH_CHANNEL, amqp_cstring_bytes(dlx), amqp_cstring_bytes("fanout"), 0, 1,
                          0, 0, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "exchange.declare (dead-letter exchange)");

    amqp_table_entry_t type_only[1] = {string_entry("x-queue-type", "classic")};
    const amqp_table_t dead_args = {.num_entries = 1, .entries = type_only};
    amqp_queue_declare(conn, BENCH_CHANNEL, amqp_cstring_bytes(dead), 0, 1, 0, 0, dead_args);
    check_reply(amqp_get_rpc_reply(conn), "queue.declare (dead-letter queue)");
    amqp_queue_bind(conn, BENCH_CHANNEL, amqp_cstring_bytes(dead), amqp_cstring_bytes(dlx), amqp_empty_bytes,
                    amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "queue.bind (dead-letter queue)");

    amqp_table_entry_t both[2] = {string_entry("x-dead-letter-exchange", dlx),
                                  string_entry("x-queue-type", "classic")};
    const amqp_table_t args = {.num_entries = 2, .entries = both};
    amqp_queue_declare(conn, BENCH_CHANNEL, amqp_cstring_bytes(queue), 0, 1, 0, 0, args);
    check_reply(amqp_get_rpc_reply(conn), "queue.declare");
}

__attribute__((noreturn))
static void usage(void) {
    fprintf(stderr, "usage: %s [-r] [-t] [-o OFFSET] QUEUE N [AMQP_URL]\n", bench_prog);
    exit(2);
}

int main(int argc, char **argv) {
    bench_init(argc, argv);
    int reset = 0, topology = 0, opt;
    uint64_t offset = 0;
    while ((opt = getopt(argc, argv, "rto:")) != -1) {
        switch (opt) {
        case 'r': reset = 1; break;
        case 't': topology = 1; break;
        case 'o':
            offset = strcmp(optarg, "0") == 0 ? 0 : parse_count(optarg, "OFFSET");
            break;
        default: usage();
        }
    }
    if (argc - optind < 2 || argc - optind > 3) usage();
    const char *queue = argv[optind];
    const uint64_t n = parse_count(argv[optind + 1], "N");
    amqp_connection_state_t conn = bench_connect(argc - optind == 3 ? argv[optind + 2] : NULL);
    const amqp_bytes_t qname = amqp_cstring_bytes(queue);

    if (reset) {
        amqp_queue_delete(conn, BENCH_CHANNEL, qname, 0, 0); /* if_unused 0, if_empty 0 */
        check_reply(amqp_get_rpc_reply(conn), "queue.delete");
        if (topology) {
            char dead[512];
            if (snprintf(dead, sizeof dead, "%s.dead", queue) >= (int)sizeof dead) die("queue name too long");
            amqp_queue_delete(conn, BENCH_CHANNEL, amqp_cstring_bytes(dead), 0, 0);
            check_reply(amqp_get_rpc_reply(conn), "queue.delete (dead-letter queue)");
        }
    }
    if (topology) {
        declare_warren_topology(conn, queue);
    } else {
        /* passive 0, durable 1, exclusive 0, auto_delete 0 */
        amqp_queue_declare(conn, BENCH_CHANNEL, qname, 0, 1, 0, 0, amqp_empty_table);
        check_reply(amqp_get_rpc_reply(conn), "queue.declare");
    }
    amqp_confirm_select(conn, BENCH_CHANNEL);
    check_reply(amqp_get_rpc_reply(conn), "confirm.select");

    amqp_basic_properties_t props;
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;

    struct confirms c = {.confirmed = calloc(n + 1, 1), .low = 1, .published = 0};
    if (c.confirmed == NULL) die("out of memory for %" PRIu64 " confirm flags", n);

    char body[256];
    for (uint64_t i = 1; i <= n; i++) {
        /* ~100 bytes: a UUID-shaped id derived from the message number, a type and a small payload. */
        const uint64_t num = offset + i;
        int len = snprintf(body, sizeof body,
                           "{\"id\":\"%08" PRIx64 "-0000-4000-8000-%012" PRIx64 "\",\"type\":\"bench\","
                           "\"payload\":{\"n\":%" PRIu64 ",\"note\":\"warren\"}}",
                           num >> 48, num & UINT64_C(0xffffffffffff), num);
        amqp_bytes_t msg = {.len = (size_t)len, .bytes = body};
        /* default exchange, routing key = queue, mandatory 0, immediate 0 */
        check_status(amqp_basic_publish(conn, BENCH_CHANNEL, amqp_empty_bytes, qname, 0, 0, &props, msg),
                     "basic.publish");
        c.published = i;
        if (i % WINDOW == 0 && i > WINDOW) wait_confirms(conn, &c, i - WINDOW);
    }
    wait_confirms(conn, &c, n);

    printf("published %" PRIu64 "\n", n);
    fflush(stdout);
    free(c.confirmed);
    bench_close(conn);
    return 0;
}
