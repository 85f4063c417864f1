/*
 * bench/c/consumer.c — the "limit reference" consumer for bench/consume.
 *
 * A bare librabbitmq consumer, as fast as the library goes without tricks:
 * basic.qos prefetch 1000, basic.consume with manual acks, amqp_consume_message()
 * in a loop, one basic.ack with multiple=true every 100 deliveries (and one for the
 * remainder), stop after N deliveries.
 *
 *   consumer QUEUE N [AMQP_URL]      (URL default: $AMQP_URL, then amqp://guest:guest@127.0.0.1:5672/%2F)
 *
 * Prints exactly one line on stdout:
 *   consumed N in S s: R msg/s
 * timed on the monotonic clock from the first delivery to the last ack sent.
 * Exits non-zero with a message on stderr on any error, or when no delivery
 * arrives for BENCH_IDLE_TIMEOUT_S seconds (queue holds fewer than N messages).
 */
#include "common.h"

#define PREFETCH 1000  /* basic.qos prefetch-count */
#define ACK_EVERY 100  /* deliveries per multiple=true ack */

/*
 * amqp_consume_message() returned something other than a delivery. The usual
 * case is AMQP_STATUS_UNEXPECTED_STATE: the next frame is not a basic.deliver
 * (e.g. channel.close, basic.cancel). librabbitmq leaves that frame unread, so
 * read it here to say what happened. Every case ends the program except frames
 * that are harmless to skip.
 */
static void handle_non_delivery(amqp_connection_state_t conn, amqp_rpc_reply_t r,
                                uint64_t consumed, uint64_t n) {
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
        die("no delivery for %d s after %" PRIu64 " of %" PRIu64 " messages (is the queue short?)",
            BENCH_IDLE_TIMEOUT_S, consumed, n);
    if (r.reply_type != AMQP_RESPONSE_LIBRARY_EXCEPTION || r.library_error != AMQP_STATUS_UNEXPECTED_STATE)
        check_reply(r, "amqp_consume_message");

    amqp_frame_t frame;
    check_status(amqp_simple_wait_frame(conn, &frame), "reading a non-delivery frame");
    if (frame.frame_type != AMQP_FRAME_METHOD) return; /* heartbeat etc.: skip */
    switch (frame.payload.method.id) {
    case AMQP_BASIC_CANCEL_METHOD:
        die("the broker cancelled the consumer after %" PRIu64 " messages (queue deleted?)", consumed);
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD:
        die_closed(&frame.payload.method, "consuming");
    default:
        return; /* e.g. basic.ack/basic.return: not ours to act on */
    }
}

int main(int argc, char **argv) {
    bench_init(argc, argv);
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s QUEUE N [AMQP_URL]\n", bench_prog);
        return 2;
    }
    const char *queue = argv[1];
    const uint64_t n = parse_count(argv[2], "N");
    amqp_connection_state_t conn = bench_connect(argc == 4 ? argv[3] : NULL);

    amqp_basic_qos(conn, BENCH_CHANNEL, 0, PREFETCH, 0);
    check_reply(amqp_get_rpc_reply(conn), "basic.qos");
    /* no_local 0, no_ack 0 (manual acks), exclusive 0; server-generated tag. */
    amqp_basic_consume(conn, BENCH_CHANNEL, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "basic.consume");

    uint64_t consumed = 0;
    double t0 = 0, t1 = 0;
    while (consumed < n) {
        /* Envelopes live in the connection's pools: release them between
         * messages, or memory grows with every delivery. */
        amqp_maybe_release_buffers(conn);

        amqp_envelope_t env;
        struct timeval timeout = {.tv_sec = BENCH_IDLE_TIMEOUT_S, .tv_usec = 0};
        amqp_rpc_reply_t r = amqp_consume_message(conn, &env, &timeout, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            handle_non_delivery(conn, r, consumed, n);
            continue;
        }
        if (consumed == 0) t0 = now_seconds();
        consumed++;
        const uint64_t tag = env.delivery_tag;
        amqp_destroy_envelope(&env);

        if (consumed % ACK_EVERY == 0 || consumed == n) {
            check_status(amqp_basic_ack(conn, BENCH_CHANNEL, tag, 1), "basic.ack");
            t1 = now_seconds();
        }
    }

    const double secs = t1 - t0;
    printf("consumed %" PRIu64 " in %.3f s: %.0f msg/s\n", consumed, secs,
           secs > 0 ? (double)consumed / secs : 0.0);
    fflush(stdout);

    /* Anything still prefetched beyond N is requeued by the broker on close. */
    bench_close(conn);
    return 0;
}
