/* Chat fan-out load generator for scripts/bench/compare: C, epoll, one
 * thread.  Speaks the protocol of scripts/examples/chat.lua (a line-based
 * chat server: the server greets, the client's first line is its
 * nickname, everyone lands in one room, a plain line goes to everyone
 * else in the room as "<nick> line").
 *
 * Opens CLIENTS connections to 127.0.0.1:PORT (in batches, so that the
 * listen backlog never overflows), gives each a nickname as its greeting
 * arrives, and waits until every client is in the room.  Then, ROUNDS
 * times (after WARMUP rounds not counted), one client sends a line and the
 * generator waits until every other client has received it: the round's
 * time runs from just before the send until the last client has the whole
 * line.  The sender is a different client each round.  Prints one line:
 *   RESULT bench=chat peer=NAME clients=.. rounds=.. median_ms=..
 *          worst_ms=.. best_ms=.. setup_s=.. errors=..
 * errors counts connections the server closed and lines that came back
 * wrong.  Stops with an error after TIMEOUT seconds in all.
 * Usage: chatload PORT [CLIENTS=1000] [ROUNDS=50] [PEER=name] [WARMUP=5] */
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
#define BATCH 20           /* clients that join at once (each join is told to
                              everyone: a burst of many would fill the queues
                              of a slow server, which drops clients then) */
#define LINE_MAX_ 65536     /* longest line kept; longer ones are cut */
#define TIMEOUT_S 120

typedef struct {
    int fd;
    int state;             /* 0 greeted? no; 1 nick sent; 2 in the room */
    int joined;            /* saw "* You are in #" */
    char *buf;             /* partial line */
    size_t len;
    long long seen;        /* last round whose line this client received */
} client_t;

static client_t cl[MAXC];
static int nclients, ep;
static long long round_no = -1;    /* the round under way, -1: none */
static char round_line[128];       /* the line the others must receive */
static size_t round_len;
static int round_missing;          /* clients still without it */
static uint64_t errors, injoin;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "chatload: %s\n", what);
    exit(1);
}

static void sendall(int i, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(cl[i].fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;  /* lines are short */
            die("send failed");
        }
        p += w;
        n -= (size_t)w;
    }
}

static int connect_one(int i, const struct sockaddr_in *sa) {
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) < 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    cl[i].fd = fd;
    cl[i].buf = malloc(LINE_MAX_);
    if (cl[i].buf == NULL) die("out of memory");
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

/* One complete line from client i. */
static void online(int i, const char *line, size_t n) {
    client_t *c = &cl[i];
    if (c->state == 0) {  /* the greeting: answer with a nickname */
        char nick[32];
        int k = snprintf(nick, sizeof nick, "u%d\n", i);
        sendall(i, nick, (size_t)k);
        c->state = 1;
        return;
    }
    if (c->state == 1 && n >= 15 && memcmp(line, "* You are in #", 14) == 0) {
        c->state = 2;
        injoin++;
        return;
    }
    if (round_no >= 0 && c->seen != round_no && n == round_len &&
        memcmp(line, round_line, n) == 0) {
        c->seen = round_no;
        round_missing--;
    }
}

static void onreadable(int i) {
    client_t *c = &cl[i];
    char rbuf[65536];
    for (;;) {
        ssize_t r = read(c->fd, rbuf, sizeof rbuf);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return;
        }
        if (r <= 0) {
            if (getenv("CHATLOAD_DEBUG"))
                fprintf(stderr, "chatload: client %d: %s\n", i, r == 0 ? "closed" : strerror(errno));
            errors++;
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
            c->fd = -1;
            if (c->state != 2) {  /* never joined: done with it, as an error */
                c->state = 2;
                injoin++;
            }
            if (round_no >= 0 && c->seen != round_no) round_missing--;
            return;
        }
        for (ssize_t k = 0; k < r; k++) {
            if (rbuf[k] == '\n') {
                size_t n = c->len;
                if (n > 0 && c->buf[n - 1] == '\r') n--;
                online(i, c->buf, n);
                c->len = 0;
            } else if (c->len < LINE_MAX_) {
                c->buf[c->len++] = rbuf[k];
            }
        }
        if ((size_t)r < sizeof rbuf) return;
    }
}

/* Runs the loop until cond() holds; dies past the overall deadline. */
static void pump(int (*cond)(void), uint64_t deadline) {
    struct epoll_event evs[1024];
    while (!cond()) {
        uint64_t t = now_ns();
        if (t >= deadline) die("timed out (is the server a chat server on this port?)");
        int n = epoll_wait(ep, evs, 1024, (int)((deadline - t) / 1000000) + 1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait failed");
        }
        for (int k = 0; k < n; k++)
            if (cl[evs[k].data.u32].fd >= 0) onreadable((int)evs[k].data.u32);
    }
}

static int want_joined;
static int all_joined(void) { return (int)injoin >= want_joined; }
static int round_done(void) { return round_missing <= 0; }

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: chatload PORT [CLIENTS] [ROUNDS] [PEER] [WARMUP]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    nclients = argc > 2 ? atoi(argv[2]) : 1000;
    int rounds = argc > 3 ? atoi(argv[3]) : 50;
    const char *peer = argc > 4 ? argv[4] : "unknown";
    int warmup = argc > 5 ? atoi(argv[5]) : 5;
    if (port <= 0 || nclients < 2 || nclients > MAXC || rounds < 1 || warmup < 0) {
        fprintf(stderr, "chatload: bad arguments\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nclients + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)nclients + 64 ? rl.rlim_max : (rlim_t)nclients + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    ep = epoll_create1(0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)TIMEOUT_S * 1000000000ull;

    /* Setup: connect in batches, each client joining as its greeting comes. */
    for (int i = 0; i < nclients; i += BATCH) {
        int end = i + BATCH < nclients ? i + BATCH : nclients;
        for (int k = i; k < end; k++) {
            cl[k].seen = -1;
            if (connect_one(k, &sa) < 0) die("connect failed");
        }
        want_joined = end;
        pump(all_joined, deadline);
    }
    double setup = (now_ns() - t0) / 1e9;
    if (getenv("CHATLOAD_PAUSE")) {  /* for profiling the rounds alone */
        fprintf(stderr, "chatload: set up; rounds in %s s\n", getenv("CHATLOAD_PAUSE"));
        sleep((unsigned)atoi(getenv("CHATLOAD_PAUSE")));
        deadline = now_ns() + (uint64_t)TIMEOUT_S * 1000000000ull;
    }

    uint64_t *times = calloc((size_t)rounds, sizeof *times);
    if (times == NULL) die("out of memory");
    for (int r = 0; r < warmup + rounds; r++) {
        int sender = (r * 7919) % nclients;  /* a different one each round */
        char msg[64];
        if (cl[sender].fd < 0) die("the sender was disconnected");
        snprintf(msg, sizeof msg, "m%d", r);
        round_len = (size_t)snprintf(round_line, sizeof round_line, "<u%d> %s", sender, msg);
        round_missing = 0;
        for (int i = 0; i < nclients; i++)
            if (i != sender && cl[i].fd >= 0) round_missing++;
        round_no = r;
        cl[sender].seen = r;
        strcat(msg, "\n");
        uint64_t ts = now_ns();
        sendall(sender, msg, strlen(msg));
        pump(round_done, deadline);
        if (r >= warmup) times[r - warmup] = now_ns() - ts;
    }
    qsort(times, (size_t)rounds, sizeof *times, cmp_u64);
    uint64_t med = rounds % 2 ? times[rounds / 2] : (times[rounds / 2 - 1] + times[rounds / 2]) / 2;
    int alive = 0;
    for (int i = 0; i < nclients; i++)
        if (cl[i].fd >= 0) {
            alive++;
            close(cl[i].fd);
        }
    printf("RESULT bench=chat peer=%s clients=%d alive=%d rounds=%d median_ms=%.3f worst_ms=%.3f "
           "best_ms=%.3f setup_s=%.2f errors=%llu\n",
           peer, nclients, alive, rounds, med / 1e6, times[rounds - 1] / 1e6, times[0] / 1e6, setup,
           (unsigned long long)errors);
    return 0;
}
