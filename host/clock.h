/* The hub's clock: what "now" is (gl_clock_now, what green.now() reads),
 * the timers waiting for a deadline on it, and the one wake-up of the
 * loop for the earliest of them.  Nothing else in the core reads a clock
 * for sleeps and timeouts or arms a wake-up, so that a virtual clock can
 * replace exactly this: gl_clock_now, gl_clock_next_deadline and
 * gl_clock_advance are the seam.  No Lua; libuv only for the wake-up. */
#ifndef GL_CLOCK_H
#define GL_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct gl_timer gl_timer;

/* A deadline on the clock.  Expired timers run in deadline order, ties in
 * the order they were started (libuv's start_id). */
struct gl_timer {
  uint64_t due;        /* a gl_clock_now() value */
  uint64_t seq;
  size_t slot;         /* heap position + 1; 0 while not started */
  void (*cb)(gl_timer *t);
};

/* Sets the clock up on `loop` (the hub does, once). */
void gl_clock_init(uv_loop_t *loop);

/* Now, in nanoseconds on a monotonic clock. */
uint64_t gl_clock_now(void);

/* The earliest deadline of a started timer, or UINT64_MAX when none is
 * started.  The hub reads it after every task it runs, so it is kept
 * up to date in a variable rather than looked up. */
extern uint64_t gl_clock_next;
static inline uint64_t gl_clock_next_deadline(void) { return gl_clock_next; }

/* Runs the callbacks of the timers that are due, in deadline order.  The
 * loop's wake-up calls it, and the hub between tasks once
 * gl_clock_next_deadline() <= gl_clock_now(). */
void gl_clock_expire(void);

/* Moves now forward by `ns` (a virtual clock jumping to the next
 * deadline).  The timers that became due run at the hub's next look at
 * the clock, through the same wake-up as any other. */
void gl_clock_advance(uint64_t ns);

/* Starts `t` to run its callback at `due`, or stops it; stopping a
 * stopped timer does nothing. */
void gl_timer_start(gl_timer *t, uint64_t due);
void gl_timer_stop(gl_timer *t);

/* A started timer was copied to a new address (the waiter of a task
 * displaced from its shared stack): the heap points at the copy. */
void gl_timer_moved(gl_timer *t);

/* How many timers are started. */
size_t gl_clock_timers(void);

/* How many of the loop's active, referenced handles are the clock's own
 * wake-up (0 or 1): the virtual clock tells them from the outside world's
 * by this. */
unsigned gl_clock_handles(void);

#endif
