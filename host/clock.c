/* The hub's clock and its timers.  Every sleep and timeout is a node in
 * one binary heap ordered by (deadline, start order), behind a single
 * wake-up of the loop for the earliest deadline: a timerfd on Linux, set
 * to the deadline itself, else a uv_timer_t.  "Now" is libuv's monotonic
 * clock plus an offset that only gl_clock_advance moves. */
#include "clock.h"

#include <string.h>
#ifdef __linux__
#define GL_TIMERFD 1
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#else
#define GL_TIMERFD 0
#endif

#include "gl.h"

static struct {
  uv_loop_t *loop;
  gl_timer **heap;        /* a binary min-heap */
  size_t nheap, capheap;
  uint64_t seq;
  uint64_t offset;        /* now - uv_hrtime(): what advance added */
  uv_timer_t uvtimer;     /* wakes the loop for the earliest deadline, */
  int tfd;                /* or this timerfd, where there is one */
  uv_poll_t tfpoll;       /* watching tfd; referenced while timers wait */
  uint64_t armed;         /* the deadline the wake-up is set for, or 0 */
} C;

uint64_t gl_clock_next = UINT64_MAX;

uint64_t gl_clock_now(void) { return uv_hrtime() + C.offset; }

size_t gl_clock_timers(void) { return C.nheap; }

unsigned gl_clock_handles(void) {
  unsigned n = 0;
#if GL_TIMERFD
  if (C.tfd >= 0 && uv_has_ref((uv_handle_t *)&C.tfpoll)) n++;
#endif
  if (uv_is_active((uv_handle_t *)&C.uvtimer) &&
      uv_has_ref((uv_handle_t *)&C.uvtimer))
    n++;
  return n;
}

/* {====== The heap ====== */

static int earlier(const gl_timer *a, const gl_timer *b) {
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heapset(size_t i, gl_timer *t) {
  C.heap[i] = t;
  t->slot = i + 1;
}

static void siftup(size_t i) {
  gl_timer *t = C.heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!earlier(t, C.heap[parent])) break;
    heapset(i, C.heap[parent]);
    i = parent;
  }
  heapset(i, t);
}

static void siftdown(size_t i) {
  gl_timer *t = C.heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= C.nheap) break;
    if (c + 1 < C.nheap && earlier(C.heap[c + 1], C.heap[c])) c++;
    if (!earlier(C.heap[c], t)) break;
    heapset(i, C.heap[c]);
    i = c;
  }
  heapset(i, t);
}
/* }====== */

/* {====== The wake-up ====== */

static void arm(void);

#if GL_TIMERFD
/* The timerfd fires at the deadline itself, to the microsecond, where the
 * loop's timers round the wait up to a whole millisecond.  It is set only
 * when the earliest deadline moves earlier: one that moved later (its
 * timer was stopped) lets the wake-up come early and find nothing due,
 * which costs less than a system call for every stop. */
static int arm_timerfd(uint64_t due) {
  struct itimerspec its;
  uint64_t real = due > C.offset ? due - C.offset : 0;
  uv_ref((uv_handle_t *)&C.tfpoll);
  if (C.armed != 0 && C.armed <= due) return 0;
  memset(&its, 0, sizeof its);
  its.it_value.tv_sec = (time_t)(real / 1000000000u);
  its.it_value.tv_nsec = (long)(real % 1000000000u);
  if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
    its.it_value.tv_nsec = 1;  /* zero would disarm it */
  if (timerfd_settime(C.tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0)
    return -1;
  C.armed = due;
  return 0;
}

static void on_timerfd(uv_poll_t *h, int status, int events) {
  uint64_t n;
  GL_UNUSED(h);
  GL_UNUSED(status);
  GL_UNUSED(events);
  while (read(C.tfd, &n, sizeof n) == (ssize_t)sizeof n) {}
  C.armed = 0;
  gl_clock_expire();
  arm();
}
#endif

static void on_uvtimer(uv_timer_t *h) {
  GL_UNUSED(h);
  C.armed = 0;
  gl_clock_expire();
  arm();
}

/* Arms the loop's wake-up for the earliest deadline.  Without a timerfd,
 * the loop's cached time is refreshed first, and the wait rounded up, so
 * the timer never fires before the deadline on our clock; if it fires a
 * little early on the loop's millisecond clock, on_uvtimer arms it
 * again. */
static void arm(void) {
  uint64_t now, due, ms;
  if (C.nheap == 0) {
#if GL_TIMERFD
    if (C.tfd >= 0) {  /* left set: see arm_timerfd */
      uv_unref((uv_handle_t *)&C.tfpoll);
      return;
    }
#endif
    if (C.armed) uv_timer_stop(&C.uvtimer);
    C.armed = 0;
    return;
  }
  due = C.heap[0]->due;
#if GL_TIMERFD
  if (C.tfd >= 0 && arm_timerfd(due) == 0) return;
#endif
  if (C.armed == due) return;
  uv_update_time(C.loop);
  now = gl_clock_now();
  ms = due <= now ? 0 : (due - now + 999999) / 1000000;
  uv_timer_start(&C.uvtimer, on_uvtimer, ms, 0);
  C.armed = due;
}

void gl_clock_init(uv_loop_t *loop) {
  free(C.heap);
  memset(&C, 0, sizeof C);
  gl_clock_next = UINT64_MAX;
  C.loop = loop;
  uv_timer_init(loop, &C.uvtimer);
  C.tfd = -1;
#if GL_TIMERFD
  C.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (C.tfd >= 0 && uv_poll_init(loop, &C.tfpoll, C.tfd) == 0) {
    uv_poll_start(&C.tfpoll, UV_READABLE, on_timerfd);
    uv_unref((uv_handle_t *)&C.tfpoll);
  } else if (C.tfd >= 0) {
    close(C.tfd);
    C.tfd = -1;
  }
#endif
}

void gl_clock_advance(uint64_t ns) {
  C.offset += ns;
  C.armed = 0;  /* every deadline came closer: set the wake-up again */
  arm();
}
/* }====== */

/* {====== Timers ====== */

void gl_timer_start(gl_timer *t, uint64_t due) {
  GL_ASSERT(t->slot == 0);
  if (C.nheap == C.capheap) {
    size_t cap = C.capheap ? 2 * C.capheap : 64;
    gl_timer **heap = realloc(C.heap, cap * sizeof *heap);
    if (heap == NULL) gl_fatal("out of memory for timers");
    C.heap = heap;
    C.capheap = cap;
  }
  t->due = due;
  t->seq = C.seq++;
  C.heap[C.nheap++] = t;
  siftup(C.nheap - 1);
  if (C.heap[0] == t) {
    gl_clock_next = due;
    arm();
  }
}

void gl_timer_stop(gl_timer *t) {
  size_t i;
  gl_timer *last;
  if (t->slot == 0) return;
  i = t->slot - 1;
  t->slot = 0;
  last = C.heap[--C.nheap];
  if (last != t) {
    heapset(i, last);
    siftup(i);
    siftdown(last->slot - 1);
  }
  if (i == 0) {
    gl_clock_next = C.nheap > 0 ? C.heap[0]->due : UINT64_MAX;
    arm();
  }
}

void gl_timer_moved(gl_timer *t) {
  if (t->slot != 0) C.heap[t->slot - 1] = t;
}

void gl_clock_expire(void) {
  uint64_t now = gl_clock_now();
  while (C.nheap > 0 && C.heap[0]->due <= now) {
    gl_timer *t = C.heap[0];
    gl_timer_stop(t);
    t->cb(t);
  }
}
/* }====== */
