/* WebSocket load generator for scripts/bench/compare: C, epoll, one
 * thread, with a client side of RFC 6455 of its own (the handshake, masked
 * frames out, frames in, fragments joined, pings answered; no
 * extensions).  Two modes:
 *
 *   wsload echo PORT [CONNS=100] [SECS=10] [SIZE=32] [PEER=name]
 *     CONNS connections to ws://127.0.0.1:PORT/; each sends a text message
 *     of SIZE bytes, waits until the same message comes back, and again,
 *     for SECS seconds.  Prints
 *       RESULT bench=ws_echo peer=NAME rt_per_s=.. p50_us=.. p99_us=..
 *              errors=..
 *
 *   wsload fanout PORT [CLIENTS=10000] [ROUNDS=50] [PEER=name] [WARMUP=5]
 *     CLIENTS clients join the chat room of scripts/examples/webchat.lua at
 *     ws://127.0.0.1:PORT/ws (in batches, so that the listen backlog never
 *     overflows): each sends its nickname and waits for its "welcome".
 *     Then ROUNDS times (after WARMUP rounds not counted) one client says
 *     a line and the generator waits until every client, the sender too,
 *     has received the message carrying it: the round's time runs from
 *     just before the send until the last client has it.  Prints
 *       RESULT bench=ws_fanout peer=NAME clients=.. median_ms=..
 *              worst_ms=.. best_ms=.. setup_s=.. errors=..
 *
 * errors counts connections the server closed and messages that came
 * back wrong.  Stops with an error after TIMEOUT seconds in all. */
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXC 20000
#define BATCH 50
#define TIMEOUT_S 300
#define HBUCKETS 100000  /* 1 us buckets up to 100 ms */

/* The key of every handshake, and the answer it must get (RFC 6455,
 * 1.3's example). */
#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

typedef struct {
    int fd;
    int open;              /* the 101 came */
    int joined;            /* fanout: the welcome came */
    long long seen;        /* fanout: the last round it received */
    unsigned char *in;     /* bytes read, not yet used */
    size_t inlen, incap;
    unsigned char *msg;    /* a message in fragments */
    size_t msglen, msgcap;
    uint64_t sent_at;      /* echo */
    unsigned trip;
} conn_t;

static conn_t cl[MAXC];
static int nconn, ep, fanout;
static uint64_t errors, trips, hist[HBUCKETS + 1];
static int size = 32, injoin, want_joined;
static long long round_no = -1;
static char round_text[64];
static int round_missing;
static uint64_t deadline;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "wsload: %s\n", what);
    exit(1);
}

static void grow(unsigned char **p, size_t *cap, size_t need) {
    if (need <= *cap) return;
    size_t n = *cap ? *cap : 256;
    while (n < need) n *= 2;
    *p = realloc(*p, n);
    if (*p == NULL) die("out of memory");
    *cap = n;
}

static void sendall(conn_t *c, const void *p, size_t n) {
    const char *s = p;
    while (n > 0) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;  /* short ones */
            die("send failed");
        }
        s += w;
        n -= (size_t)w;
    }
}

/* Sends a masked frame (a client's). */
static void sendframe(conn_t *c, int op, const void *p, size_t n) {
    static unsigned char buf[65536 + 14];
    unsigned char key[4];
    size_t h = 0;
    if (n > 65535) die("message too long");
    uint32_t r = (uint32_t)rand();
    memcpy(key, &r, 4);
    buf[h++] = (unsigned char)(0x80 | op);
    if (n < 126) {
        buf[h++] = (unsigned char)(0x80 | n);
    } else {
        buf[h++] = 0x80 | 126;
        buf[h++] = (unsigned char)(n >> 8);
        buf[h++] = (unsigned char)n;
    }
    memcpy(buf + h, key, 4);
    h += 4;
    for (size_t i = 0; i < n; i++) buf[h + i] = ((const unsigned char *)p)[i] ^ key[i & 3];
    sendall(c, buf, h + n);
}

static void closeconn(int i) {
    conn_t *c = &cl[i];
    if (c->fd < 0) return;
    errors++;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    if (fanout) {
        if (!c->joined) {  /* done with it, as an error */
            c->joined = 1;
            injoin++;
        }
        if (round_no >= 0 && c->seen != round_no) round_missing--;
    }
}

/* {====== The two modes ====== */

static unsigned char echomsg[65536];

/* Echo: message number `trip` of connection i. */
static void fillecho(int i, unsigned trip) {
    int k = snprintf((char *)echomsg, sizeof echomsg, "%d:%u:", i, trip);
    for (int j = k; j < size; j++) echomsg[j] = (unsigned char)('a' + (i + trip + j) % 26);
}

static void sendecho(int i) {
    conn_t *c = &cl[i];
    fillecho(i, c->trip);
    c->sent_at = now_ns();
    sendframe(c, 1, echomsg, (size_t)size);
}

static void onecho(int i, const unsigned char *p, size_t n) {
    conn_t *c = &cl[i];
    uint64_t t = now_ns(), us = (t - c->sent_at) / 1000;
    fillecho(i, c->trip);
    if (n != (size_t)size || memcmp(p, echomsg, n) != 0) errors++;
    hist[us < HBUCKETS ? us : HBUCKETS]++;
    trips++;
    c->trip++;
    if (t < deadline) sendecho(i);
}

static void sendnick(int i) {
    char nick[32];
    int k = snprintf(nick, sizeof nick, "u%d", i);
    sendframe(&cl[i], 1, nick, (size_t)k);
}

static int contains(const unsigned char *p, size_t n, const char *s) {
    size_t k = strlen(s);
    if (k > n) return 0;
    for (size_t i = 0; i + k <= n; i++)
        if (p[i] == (unsigned char)s[0] && memcmp(p + i, s, k) == 0) return 1;
    return 0;
}

static void onchat(int i, const unsigned char *p, size_t n) {
    conn_t *c = &cl[i];
    if (!c->joined) {
        if (contains(p, n, "\"type\":\"welcome\"")) {
            c->joined = 1;
            injoin++;
        } else if (contains(p, n, "\"type\":\"error\"")) {
            die("the server refused a nickname");
        }
        return;
    }
    if (round_no >= 0 && c->seen != round_no && contains(p, n, round_text)) {
        c->seen = round_no;
        round_missing--;
    }
}
/* }====== */

/* {====== Reading ====== */

/* Handles the handshake's answer at the start of c->in; returns the bytes
 * it took, 0 if it is not whole yet. */
static size_t onhead(int i) {
    conn_t *c = &cl[i];
    unsigned char *end = NULL;
    for (size_t k = 0; k + 4 <= c->inlen; k++)
        if (memcmp(c->in + k, "\r\n\r\n", 4) == 0) {
            end = c->in + k + 4;
            break;
        }
    if (end == NULL) return 0;
    size_t n = (size_t)(end - c->in);
    if (n < 12 || memcmp(c->in, "HTTP/1.1 101", 12) != 0 ||
        !contains(c->in, n, ACCEPT))
        die("the server did not upgrade (is it a WebSocket server on this port?)");
    c->open = 1;
    if (fanout) sendnick(i);
    else sendecho(i);
    return n;
}

/* Handles the whole frames at the start of c->in; returns the bytes they
 * took. */
static size_t onframes(int i) {
    conn_t *c = &cl[i];
    size_t used = 0;
    for (;;) {
        unsigned char *p = c->in + used;
        size_t have = c->inlen - used, h = 2;
        if (have < 2) break;
        int fin = p[0] >> 7, op = p[0] & 15;
        uint64_t n = p[1] & 127;
        if (p[1] & 0x80) die("a masked frame from the server");
        if (n == 126) {
            if (have < 4) break;
            n = (uint64_t)p[2] << 8 | p[3];
            h = 4;
        } else if (n == 127) {
            if (have < 10) break;
            n = 0;
            for (int k = 0; k < 8; k++) n = n << 8 | p[2 + k];
            h = 10;
        }
        if (have - h < n) break;
        const unsigned char *pay = p + h;
        used += h + (size_t)n;
        if (op == 9) {  /* ping */
            sendframe(c, 10, pay, (size_t)n);
            continue;
        }
        if (op == 8) {  /* close */
            closeconn(i);
            return used;
        }
        if (op == 10) continue;
        if (!fin || c->msglen > 0) {  /* a fragment */
            grow(&c->msg, &c->msgcap, c->msglen + n);
            memcpy(c->msg + c->msglen, pay, (size_t)n);
            c->msglen += (size_t)n;
            if (!fin) continue;
            pay = c->msg;
            n = c->msglen;
            c->msglen = 0;
        }
        if (fanout) onchat(i, pay, (size_t)n);
        else onecho(i, pay, (size_t)n);
        if (c->fd < 0) break;
    }
    return used;
}

static void onreadable(int i) {
    conn_t *c = &cl[i];
    for (;;) {
        grow(&c->in, &c->incap, c->inlen + 65536);
        ssize_t r = read(c->fd, c->in + c->inlen, c->incap - c->inlen);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) break;
        if (r <= 0) {
            if (getenv("WSLOAD_DEBUG"))
                fprintf(stderr, "wsload: %d: %s\n", i, r == 0 ? "closed" : strerror(errno));
            closeconn(i);
            return;
        }
        c->inlen += (size_t)r;
        if (!c->open) {
            size_t used = onhead(i);
            memmove(c->in, c->in + used, c->inlen - used);
            c->inlen -= used;
        }
        if (c->open) {
            size_t used = onframes(i);
            if (c->fd < 0) return;
            memmove(c->in, c->in + used, c->inlen - used);
            c->inlen -= used;
        }
        if ((size_t)r < 65536) break;
    }
    if (c->inlen == 0 && c->incap > 65536 * 4) {  /* an idle client's buffer */
        free(c->in);
        c->in = NULL;
        c->incap = 0;
    }
}
/* }====== */

static void connect_one(int i, const struct sockaddr_in *sa) {
    static const char req[] =
        "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: " KEY "\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    char buf[512];
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket failed (too few descriptors?)");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) < 0) die("connect failed");
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    cl[i].fd = fd;
    cl[i].seen = -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    int n = snprintf(buf, sizeof buf, req, fanout ? "/ws" : "/");
    sendall(&cl[i], buf, (size_t)n);
}

/* Runs the loop until cond() holds, or (cond NULL) until `until`. */
static void pump(int (*cond)(void), uint64_t until) {
    struct epoll_event evs[1024];
    while (cond == NULL || !cond()) {
        uint64_t t = now_ns();
        if (t >= until) {
            if (cond == NULL) return;
            die("timed out");
        }
        int n = epoll_wait(ep, evs, 1024, (int)((until - t) / 1000000) + 1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait failed");
        }
        for (int k = 0; k < n; k++)
            if (cl[evs[k].data.u32].fd >= 0) onreadable((int)evs[k].data.u32);
    }
}

static int all_joined(void) { return injoin >= want_joined; }
static int round_done(void) { return round_missing <= 0; }

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 3 || (strcmp(argv[1], "echo") != 0 && strcmp(argv[1], "fanout") != 0)) {
        fprintf(stderr, "usage: wsload echo PORT [CONNS] [SECS] [SIZE] [PEER]\n"
                        "       wsload fanout PORT [CLIENTS] [ROUNDS] [PEER] [WARMUP]\n");
        return 2;
    }
    fanout = strcmp(argv[1], "fanout") == 0;
    int port = atoi(argv[2]);
    nconn = argc > 3 ? atoi(argv[3]) : (fanout ? 10000 : 100);
    const char *peer = "unknown";
    double secs = 10;
    int rounds = 50, warmup = 5;
    if (fanout) {
        rounds = argc > 4 ? atoi(argv[4]) : 50;
        peer = argc > 5 ? argv[5] : peer;
        warmup = argc > 6 ? atoi(argv[6]) : 5;
    } else {
        secs = argc > 4 ? atof(argv[4]) : 10;
        size = argc > 5 ? atoi(argv[5]) : 32;
        peer = argc > 6 ? argv[6] : peer;
    }
    if (port <= 0 || nconn < 1 || nconn > MAXC || rounds < 1 || warmup < 0 || size < 16 ||
        size > 65535 || !(secs > 0 && secs < 3600)) {
        fprintf(stderr, "wsload: bad arguments\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nconn + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)nconn + 64 ? rl.rlim_max : (rlim_t)nconn + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    srand(42);
    ep = epoll_create1(0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    uint64_t t0 = now_ns();
    deadline = t0 + (uint64_t)TIMEOUT_S * 1000000000ull;

    if (!fanout) {
        for (int i = 0; i < nconn; i++) connect_one(i, &sa);
        t0 = now_ns();
        deadline = t0 + (uint64_t)(secs * 1e9);
        pump(NULL, deadline);
        double el = (now_ns() - t0) / 1e9;
        uint64_t acc = 0, p50 = 0, p99 = 0;
        int have50 = 0;
        for (int i = 0; i <= HBUCKETS; i++) {
            acc += hist[i];
            if (!have50 && acc * 100 >= trips * 50) { p50 = (uint64_t)i; have50 = 1; }
            if (acc * 100 >= trips * 99) { p99 = (uint64_t)i; break; }
        }
        printf("RESULT bench=ws_echo peer=%s rt_per_s=%.1f p50_us=%llu p99_us=%llu errors=%llu "
               "conns=%d size=%d secs=%.2f\n", peer, trips / el, (unsigned long long)p50,
               (unsigned long long)p99, (unsigned long long)errors, nconn, size, el);
        return 0;
    }

    for (int i = 0; i < nconn; i += BATCH) {
        int end = i + BATCH < nconn ? i + BATCH : nconn;
        for (int k = i; k < end; k++) connect_one(k, &sa);
        want_joined = end;
        pump(all_joined, deadline);
    }
    double setup = (now_ns() - t0) / 1e9;
    pump(NULL, now_ns() + 200000000ull);  /* what the joins still bring */
    if (getenv("WSLOAD_PAUSE")) {  /* for profiling the rounds alone */
        fprintf(stderr, "wsload: set up; rounds in %s s\n", getenv("WSLOAD_PAUSE"));
        pump(NULL, now_ns() + (uint64_t)(atof(getenv("WSLOAD_PAUSE")) * 1e9));
        deadline = now_ns() + (uint64_t)TIMEOUT_S * 1000000000ull;
    }
    uint64_t *times = calloc((size_t)rounds, sizeof *times);
    if (times == NULL) die("out of memory");
    for (int r = 0; r < warmup + rounds; r++) {
        int sender = (r * 7919) % nconn;  /* a different one each round */
        if (cl[sender].fd < 0) die("the sender was disconnected");
        snprintf(round_text, sizeof round_text, "\"text\":\"m%d-%d\"", r, sender);
        round_missing = 0;
        for (int i = 0; i < nconn; i++)
            if (cl[i].fd >= 0) round_missing++;
        round_no = r;
        char line[32];
        int k = snprintf(line, sizeof line, "m%d-%d", r, sender);
        uint64_t ts = now_ns();
        sendframe(&cl[sender], 1, line, (size_t)k);
        pump(round_done, deadline);
        if (r >= warmup) times[r - warmup] = now_ns() - ts;
    }
    qsort(times, (size_t)rounds, sizeof *times, cmp_u64);
    uint64_t med = rounds % 2 ? times[rounds / 2] : (times[rounds / 2 - 1] + times[rounds / 2]) / 2;
    int alive = 0;
    for (int i = 0; i < nconn; i++)
        if (cl[i].fd >= 0) alive++;
    printf("RESULT bench=ws_fanout peer=%s clients=%d alive=%d rounds=%d median_ms=%.3f "
           "worst_ms=%.3f best_ms=%.3f setup_s=%.2f errors=%llu\n", peer, nconn, alive, rounds,
           med / 1e6, times[rounds - 1] / 1e6, times[0] / 1e6, setup,
           (unsigned long long)errors);
    return 0;
}
