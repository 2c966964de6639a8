/* Echo load generator for scripts/bench/compare: C, epoll, one thread.
 * Opens CONNS connections to 127.0.0.1:PORT; each sends MSG bytes, waits for
 * all MSG bytes to come back, repeats.  Stops by itself after SECS seconds (or
 * once the server has closed every connection) and prints one line:
 *   RESULT bench=echo peer=NAME rt_per_s=... p50_us=... p99_us=... errors=...
 * errors counts connections closed by the server and round trips in which
 * more bytes came back than were sent (a broken echo).
 * Usage: echoload PORT [CONNS=100] [SECS=10] [MSG=64] [PEER=name] */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXC 1024
#define HBUCKETS 100000 /* 1 us buckets up to 100 ms */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

typedef struct {
    int fd;
    int got;
    uint64_t sent_at;
} conn_t;

static conn_t conns[MAXC];
static uint64_t hist[HBUCKETS + 1];
static char msg[65536];

static int send_msg(conn_t *c, int len) {
    int off = 0;
    while (off < len) {
        ssize_t w = send(c->fd, msg + off, len - off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) continue; /* 64 B never fills the buffer */
            return -1;
        }
        off += (int)w;
    }
    c->got = 0;
    c->sent_at = now_ns();
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: echoload PORT [CONNS] [SECS] [MSG] [PEER]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    int nconn = argc > 2 ? atoi(argv[2]) : 100;
    double secs = argc > 3 ? atof(argv[3]) : 10;
    int len = argc > 4 ? atoi(argv[4]) : 64;
    const char *peer = argc > 5 ? argv[5] : "unknown";
    if (port <= 0 || nconn <= 0 || nconn > MAXC || len <= 0 || len > (int)sizeof msg ||
        !(secs > 0 && secs < 3600)) {
        fprintf(stderr, "echoload: bad arguments\n");
        return 2;
    }
    memset(msg, 'x', sizeof msg);

    int ep = epoll_create1(0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    for (int i = 0; i < nconn; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            perror("connect");
            return 1;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        conns[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)(secs * 1e9);
    for (int i = 0; i < nconn; i++)
        if (send_msg(&conns[i], len) < 0) { perror("write"); return 1; }

    uint64_t trips = 0, errors = 0, overruns = 0;
    int alive = nconn;
    struct epoll_event evs[MAXC];
    char rbuf[65536];
    while (alive > 0) {
        uint64_t t = now_ns();
        if (t >= deadline) break;
        int timeout_ms = (int)((deadline - t) / 1000000) + 1;
        int n = epoll_wait(ep, evs, MAXC, timeout_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            conn_t *c = &conns[evs[k].data.u32];
            if (c->fd < 0) continue;
            ssize_t r = read(c->fd, rbuf, sizeof rbuf);
            if (r <= 0) {
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                errors++;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                alive--;
                continue;
            }
            c->got += (int)r;
            if (c->got > len) overruns++; /* more came back than was sent */
            if (c->got >= len) {
                uint64_t tn = now_ns();
                uint64_t us = (tn - c->sent_at) / 1000;
                hist[us < HBUCKETS ? us : HBUCKETS]++;
                trips++;
                if (tn < deadline && send_msg(c, len) < 0) errors++;
            }
        }
    }
    double el = (now_ns() - t0) / 1e9;
    uint64_t acc = 0, p50 = 0, p99 = 0;
    int have50 = 0;
    for (int i = 0; i <= HBUCKETS; i++) {
        acc += hist[i];
        if (!have50 && acc * 100 >= trips * 50) { p50 = i; have50 = 1; }
        if (acc * 100 >= trips * 99) { p99 = i; break; }
    }
    for (int i = 0; i < nconn; i++)
        if (conns[i].fd >= 0) close(conns[i].fd);
    printf("RESULT bench=echo peer=%s rt_per_s=%.1f p50_us=%llu p99_us=%llu errors=%llu conns=%d msg=%d secs=%.2f\n",
           peer, trips / el, (unsigned long long)p50, (unsigned long long)p99,
           (unsigned long long)(errors + overruns), nconn, len, el);
    return 0;
}
