/* Tests of the clock (host/clock.h) on a real libuv loop, without the hub:
 * timers run in deadline order, the next deadline follows starts and
 * stops, and advancing the clock brings deadlines forward. */
#include "test.h"

#include <stdint.h>

#include "clock.h"
#include "gl.h"

#define MS 1000000ull

static int order[16];
static int norder;

static void log_cb(gl_timer *t) { order[norder++] = (int)t->seq; }

/* Runs the loop until no timer is started (at most `limit` iterations). */
static void run_until_idle(int limit) {
  while (gl_clock_timers() > 0 && limit-- > 0)
    uv_run(uv_default_loop(), UV_RUN_ONCE);
  CHECK_EQ(gl_clock_timers(), 0);
}

TEST(clock_is_monotonic) {
  uint64_t a, b;
  gl_clock_init(uv_default_loop());
  a = gl_clock_now();
  b = gl_clock_now();
  CHECK_UGE(b, a);
  CHECK_UEQ(gl_clock_next_deadline(), UINT64_MAX);
}

TEST(clock_next_deadline_follows_starts_and_stops) {
  static gl_timer t[3];
  uint64_t now;
  gl_clock_init(uv_default_loop());
  now = gl_clock_now();
  t[0].cb = t[1].cb = t[2].cb = log_cb;
  gl_timer_start(&t[0], now + 30 * MS);
  CHECK_UEQ(gl_clock_next_deadline(), now + 30 * MS);
  gl_timer_start(&t[1], now + 10 * MS);
  CHECK_UEQ(gl_clock_next_deadline(), now + 10 * MS);
  gl_timer_start(&t[2], now + 20 * MS);
  CHECK_UEQ(gl_clock_next_deadline(), now + 10 * MS);
  CHECK_EQ(gl_clock_timers(), 3);
  gl_timer_stop(&t[1]);
  CHECK_UEQ(gl_clock_next_deadline(), now + 20 * MS);
  gl_timer_stop(&t[2]);
  gl_timer_stop(&t[0]);
  CHECK_UEQ(gl_clock_next_deadline(), UINT64_MAX);
  CHECK_EQ(gl_clock_timers(), 0);
}

TEST(clock_runs_timers_in_deadline_order_never_early) {
  static gl_timer t[4];
  uint64_t now, due[4] = {8 * MS, 2 * MS, 5 * MS, 2 * MS};
  int i;
  gl_clock_init(uv_default_loop());
  now = gl_clock_now();
  for (i = 0; i < 4; i++) {
    t[i].cb = log_cb;
    gl_timer_start(&t[i], now + due[i]);  /* seq: 0, 1, 2, 3 */
  }
  run_until_idle(100);
  CHECK_EQ(norder, 4);
  CHECK_EQ(order[0], 1);  /* ties in start order */
  CHECK_EQ(order[1], 3);
  CHECK_EQ(order[2], 2);
  CHECK_EQ(order[3], 0);
  CHECK_UGE(gl_clock_now(), now + 8 * MS);
}

/* A virtual clock jumps: an hour of deadline is reached at once. */
TEST(clock_advance_brings_deadlines_forward) {
  static gl_timer t;
  uint64_t now, real0 = uv_hrtime();
  gl_clock_init(uv_default_loop());
  now = gl_clock_now();
  t.cb = log_cb;
  gl_timer_start(&t, now + 3600 * 1000 * MS);
  gl_clock_advance(3600 * 1000 * MS);
  CHECK_UGE(gl_clock_now(), now + 3600 * 1000 * MS);
  run_until_idle(10);
  CHECK_EQ(norder, 1);
  CHECK_ULT(uv_hrtime() - real0, 1000 * MS);
}

/* A timer copied elsewhere while started (a waiter displaced with its
 * stack) is the one that runs. */
TEST(clock_timer_moved_runs_the_copy) {
  static gl_timer a, b, other;
  uint64_t now;
  gl_clock_init(uv_default_loop());
  now = gl_clock_now();
  a.cb = other.cb = log_cb;
  gl_timer_start(&other, now + 2 * MS);
  gl_timer_start(&a, now + 1 * MS);
  b = a;
  memset(&a, 0xff, sizeof a);  /* the old place is gone */
  gl_timer_moved(&b);
  run_until_idle(100);
  CHECK_EQ(norder, 2);
  CHECK_EQ(order[0], 1);
  CHECK_EQ(order[1], 0);
  CHECK_EQ(b.slot, 0);
}
