/* The hub: one libuv loop per process, the FIFO run queue of ready tasks,
 * timers for sleeps and timeouts, and the park/wake protocol every
 * blocking call follows.  No Lua: a task is the hub's view of a
 * greenthread (green.c puts one inside each greenthread).
 *
 * Blocking calls follow one shape: fill a gl_waiter on your own stack, link
 * it where the waker will find it (a gl_waitq, a libuv request's data),
 * and call gl_hub_park.  The waker, running on the hub, calls gl_hub_wake
 * with a status; the parked task becomes ready and gl_hub_park returns that
 * status.  An interrupt (kill, Timeout) wakes the task with GL_EINTR from
 * wherever it is parked; the caller then raises it. */
#ifndef GL_HUB_H
#define GL_HUB_H

#include <stdint.h>
#include <uv.h>

#include "coro.h"
#include "gl.h"

typedef struct gl_task gl_task;
typedef struct gl_timer gl_timer;
typedef struct gl_waiter gl_waiter;
typedef struct gl_waitq gl_waitq;

/* A deadline on the hub's clock.  Expired timers run in deadline order,
 * ties in the order they were started. */
struct gl_timer {
  uint64_t due;        /* gl_hub_now_ns() value */
  uint64_t seq;
  size_t slot;         /* heap position + 1; 0 while not started */
  void (*cb)(gl_timer *t);
};

struct gl_waiter {
  gl_task *task;
  gl_waiter *prev, *next;  /* links in `q` */
  gl_waitq *q;             /* the wait queue it is linked in, or NULL */
  gl_timer timer;          /* the park's timeout */
  int status;              /* set by the waker */
  void *data;              /* a payload for waker and waiter to agree on: */
  intptr_t n, n2;          /* never a pointer into the parked stack, which
                              may be displaced (see coro.h) */
};

enum {
  GL_TASK_NEW,      /* spawned, never run: no stack yet */
  GL_TASK_READY,    /* in the run queue */
  GL_TASK_RUNNING,
  GL_TASK_PARKED,
  GL_TASK_DEAD
};

struct gl_task {
  gl_coro coro;
  gl_task *next;          /* run queue link */
  gl_task *live_prev, *live_next;  /* every task not dead */
  gl_waiter *waiter;      /* what it is parked on */
  void (*run)(gl_task *t); /* its body; runs on its own stack */
  void *intr;             /* a pending interrupt, or NULL */
  uint64_t id;
  unsigned fronted;       /* the hub round it last ran ahead of others in */
  unsigned char state;
  unsigned char started;  /* has a context (and a stack) to switch to */
  unsigned char unwindable;  /* parked where its frames can be rebuilt */
  unsigned char unwinding;   /* asked to unwind them (GL_EUNWIND) */
  const char *name;       /* NULL: "greenthread-<id>" (gl_task_name) */
};

/* Sets up the hub on `loop`; the calling context becomes the task `main`
 * (already gl_task_init'ed), which runs on the thread's own stack. */
void gl_hub_init(uv_loop_t *loop, gl_task *main);
uv_loop_t *gl_hub_loop(void);
gl_task *gl_hub_main(void);
gl_task *gl_hub_current(void);

/* Prepares a task that will run `run(t)` on a stack of its own. */
void gl_task_init(gl_task *t, void (*run)(gl_task *t));

/* Writes t's name into buf (n bytes) and returns buf. */
const char *gl_task_name(const gl_task *t, char *buf, size_t n);

/* Schedules a new task at the end of the run queue. */
void gl_hub_spawn(gl_task *t);

/* Parks the current task until a gl_hub_wake on `w`, an interrupt, or
 * `timeout_ns` (UINT64_MAX: none).  Returns GL_EINTR at once if an
 * interrupt is already pending; otherwise the waker's status, GL_ETIMEDOUT
 * or GL_EINTR; or GL_EUNWIND for a park marked unwindable (below). */
int gl_hub_park(gl_waiter *w, uint64_t timeout_ns);

/* {====== Giving the stack up while parked ======
 * A parked task keeps its frames on its stack, and a task displaced from
 * a shared stack has them copied out (coro.h).  A task that can rebuild
 * them instead (a greenthread waiting in a call with a Lua continuation,
 * green.h) sets t->unwindable before gl_hub_park, on a waiter that does
 * not live on its stack.  When the hub needs that stack, it switches to
 * the task with t->unwinding set: gl_hub_park returns GL_EUNWIND, the
 * task unwinds its frames down to its body, and the body calls
 * gl_hub_leave_stack.  The task stays parked on the same waiter; once
 * woken it runs t->run from the start on a fresh context, and the body
 * resumes what it unwound. */

/* Leaves the current task's stack for good (it unwound while parked).
 * Never returns. */
GL_NORETURN void gl_hub_leave_stack(void);

/* Makes every unwindable park give its stack up at once, not only when
 * the stack is wanted: for tests, which then run every such wait through
 * the unwinding path. */
void gl_hub_unwind_eagerly(int on);
/* }====== */

/* Wakes the task parked on `w` with `status`, unlinking `w` from its wait
 * queue and timer.  Does nothing if `w`'s task is no longer parked on it. */
void gl_hub_wake(gl_waiter *w, int status);

/* Puts the current task at the end of the run queue and runs the others.
 * Returns GL_OK, or GL_EINTR if an interrupt is pending. */
int gl_hub_yield(void);

/* Sleeps for `ns` nanoseconds.  Returns GL_OK or GL_EINTR. */
int gl_hub_sleep(uint64_t ns);

/* Parks the current task until the main task alone is left (the main
 * task only). */
void gl_hub_wait_others(void);

/* Raises `cause` in `t` at its current or next park.  The first pending
 * interrupt wins; gl_hub_take_interrupt consumes it. */
void gl_hub_interrupt(gl_task *t, void *cause);
void *gl_hub_take_interrupt(gl_task *t);
void gl_hub_clear_interrupt(gl_task *t, void *cause);

/* Waits until `fd` is readable (events UV_READABLE) or writable.  Returns
 * GL_OK, GL_ETIMEDOUT, GL_EINTR, or -1 if the fd cannot be polled. */
int gl_hub_wait_fd(int fd, int events, uint64_t timeout_ns);

/* The hub's monotonic clock, in nanoseconds. */
uint64_t gl_hub_now_ns(void);

/* Starts `t` to run its callback at `due` (a gl_hub_now_ns value), or
 * stops it; stopping a stopped timer does nothing. */
void gl_timer_start(gl_timer *t, uint64_t due);
void gl_timer_stop(gl_timer *t);

/* Called when every task is parked and nothing can wake any of them; the
 * callback reports and ends the process.  Without one, the hub aborts. */
extern void (*gl_hub_deadlock_hook)(void);

/* Calls fn(t, ud) for every live task, oldest first. */
void gl_hub_foreach(void (*fn)(gl_task *t, void *ud), void *ud);

/* Greenthreads get stacks of their own until `n` are in use; later ones
 * share a few stacks (see coro.h).  0 makes every greenthread share. */
void gl_hub_private_stacks(size_t n);

/* Counts, for tests and benchmarks. */
size_t gl_hub_live(void);

typedef struct gl_hub_stats {
  size_t live, private_stacks, shared_stacks, displaced, saved_bytes;
  size_t unwound;                   /* parked without a stack */
  unsigned long long displacements, unwinds;
} gl_hub_stats;
void gl_hub_getstats(gl_hub_stats *st);

/* Converts seconds to a timeout in ns, rounded up; negative gives 0. */
uint64_t gl_hub_ns(double seconds);

#endif
