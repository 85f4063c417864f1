/*
 * bench/c/prober.c — health probes as a kubelet sends them, for bench/run's "probes during the
 * drain": every INTERVAL_MS, one GET per PATH, each on a fresh TCP connection (connect, send,
 * read the whole response, close), with a 1 s timeout (the kubelet's default timeoutSeconds).
 * The PATHs go back to back, so the first (bench/run: /internal/ready, the one with a target)
 * always meets an event loop that has slept for a whole interval, as a kubelet's probe every few
 * seconds does, and the next one a loop that has just run, which is faster (by hand, 300,000-
 * message drains: p90 0.32–0.43 ms second against 0.57–0.65 first, whichever path was first).
 * Spreading the paths over the interval instead would make every probe faster, not fairer: the
 * loop would sleep half as long (readiness alone every 5 ms: p90 0.62–0.64 ms, p99 2.22–2.64;
 * spread with /internal/alive, one probe every 2.5 ms: p90 0.42–0.47, p99 1.55–1.72).
 *
 *   prober PORT INTERVAL_MS PATH [PATH...]
 *
 * Until SIGTERM / SIGINT, prints one line per probe on stdout:
 *   START_NS PATH STATUS LATENCY_NS
 * START_NS on CLOCK_MONOTONIC (what Python's time.monotonic() reads, so the harness can keep the
 * probes that started within the drain), STATUS 0 when nothing complete came back (refused,
 * reset, timed out, not HTTP), LATENCY_NS from before connect() to the last byte of the response
 * (Content-Length honoured; without it, until the server closes). Ticks are on an absolute
 * schedule (a slow probe delays the next tick, never shifts the schedule).
 *
 * C rather than a thread of the Python harness: the harness's interpreter (its GIL shared with the
 * queue watcher and the RSS sampler) would add its own ~0.1 ms stalls inside the latencies it is
 * there to measure, and more CPU on a 2-core machine where the prober competes with the worker.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stopping = 0;

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* One probe: returns the HTTP status, 0 if no complete response came back. */
static int probe(int port, const char *path) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    struct timeval tv = {.tv_sec = 1, .tv_usec = 0}; /* connect honours SO_SNDTIMEO on Linux */
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int status = 0;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) goto done;

    char req[512];
    int len = snprintf(req, sizeof req,
                       "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: kube-probe/1.31\r\n"
                       "Accept: */*\r\nConnection: close\r\n\r\n", path, port);
    if (len <= 0 || (size_t)len >= sizeof req || send(fd, req, (size_t)len, MSG_NOSIGNAL) != len) goto done;

    char buf[16384];
    size_t got = 0;
    long body_at = -1, content_length = -1;
    int code = 0;
    for (;;) {
        if (got == sizeof buf - 1) goto done; /* larger than any health answer */
        ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (r < 0 && errno == EINTR && !stopping) continue;
        if (r < 0) goto done; /* timeout or reset */
        if (r == 0) {         /* closed: complete only if the headers were */
            if (body_at >= 0 && (content_length < 0 || (long)got - body_at >= content_length)) status = code;
            goto done;
        }
        got += (size_t)r;
        buf[got] = '\0';
        if (body_at < 0) {
            char *end = strstr(buf, "\r\n\r\n");
            if (end == NULL) continue;
            body_at = end + 4 - buf;
            if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1) goto done;
            for (char *h = strstr(buf, "\r\n"); h != NULL && h < end; h = strstr(h + 2, "\r\n")) {
                if (strncasecmp(h + 2, "Content-Length:", 15) == 0) content_length = strtol(h + 17, NULL, 10);
            }
            if (code == 204 || code == 304) content_length = 0;
        }
        if (content_length >= 0 && (long)got - body_at >= content_length) {
            status = code;
            goto done;
        }
    }
done:
    close(fd);
    return status;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s PORT INTERVAL_MS PATH [PATH...]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    int64_t interval = (int64_t)atoi(argv[2]) * 1000000LL;
    if (port <= 0 || interval <= 0) {
        fprintf(stderr, "%s: bad PORT or INTERVAL_MS\n", argv[0]);
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    static char out[1 << 16];
    setvbuf(stdout, out, _IOFBF, sizeof out);

    int64_t next = now_ns();
    while (!stopping) {
        for (int i = 3; i < argc && !stopping; i++) {
            int64_t t0 = now_ns();
            int status = probe(port, argv[i]);
            printf("%lld %s %d %lld\n", (long long)t0, argv[i], status, (long long)(now_ns() - t0));
        }
        next += interval;
        int64_t left = next - now_ns();
        if (left < 0) {
            next = now_ns(); /* behind: probe again at once, then keep the period from here */
            continue;
        }
        struct timespec ts = {.tv_sec = left / 1000000000LL, .tv_nsec = left % 1000000000LL};
        nanosleep(&ts, NULL);
    }
    fflush(stdout);
    return 0;
}
