/* The hub: one libuv loop per process, the FIFO run queue of ready tasks,
 * and the park/wake protocol every blocking call follows, with the
 * timeouts of parks on the clock (clock.h).  No Lua: a task is the hub's
 * view of a greenthread (green.c puts one inside each greenthread).
 *
 * Blocking calls follow one shape: fill a gl_waiter on your own stack, link
 * it where the waker will find it (a gl_waitq, a libuv request's data),
 * and call gl_hub_park.  The waker, running on the hub, calls gl_hub_wake
 * with a status; the parked task becomes ready and gl_hub_park returns that
 * status.  An interrupt (kill, Timeout) wakes the task with GL_EINTR from
 * wherever it is parked, by the rules under Interrupts below; the caller
 * then raises it. */
#ifndef GL_HUB_H
#define GL_HUB_H

#include <stdint.h>
#include <string.h>
#include <uv.h>

#include "clock.h"
#include "coro.h"
#include "gl.h"

typedef struct gl_task gl_task;
typedef struct gl_waiter gl_waiter;
typedef struct gl_waitq gl_waitq;
typedef struct gl_cause gl_cause;

/* {====== What a park waits on ======
 * Every park carries a label, a kind and the object it waits on, for
 * green.dump() and for the virtual clock, which must tell greenthreads
 * that wait on time or on each other from those that wait on the outside
 * world.  Fill it with gl_waiter_init (or gl_green_waiter). */
enum {
  GL_WAIT_UNKNOWN = 0,
  GL_WAIT_SLEEP,        /* green.sleep, spawn_later's delay; obj NULL */
  GL_WAIT_EVENT,        /* obj: the green.Event */
  GL_WAIT_ASYNCRESULT,  /* obj: the green.AsyncResult */
  GL_WAIT_QUEUE_GET,    /* obj: the queue, of any of the family */
  GL_WAIT_QUEUE_PUT,
  GL_WAIT_QUEUE_PEEK,
  GL_WAIT_QUEUE_JOIN,   /* a JoinableQueue's join */
  GL_WAIT_SEMAPHORE,    /* obj: the semaphore or lock */
  GL_WAIT_JOIN,         /* obj: the greenthread (gl_green) joined */
  GL_WAIT_OTHERS,       /* the main greenthread, for the others to end */
  GL_WAIT_IO,           /* from here on, the outside world: */
  GL_WAIT_RECEIVE = GL_WAIT_IO,  /* obj: the socket */
  GL_WAIT_SEND,         /* obj: the socket */
  GL_WAIT_ACCEPT,       /* obj: the listening socket */
  GL_WAIT_CONNECT,      /* obj: the socket */
  GL_WAIT_DNS,          /* obj: the host name looked up (a C string) */
  GL_WAIT_FD,           /* n: the file descriptor; obj NULL */
  GL_WAIT_CHILD,        /* obj: the child process, or NULL: starting it */
  GL_WAIT_SIGNAL,       /* obj: the signal watcher */
  GL_WAIT_NKINDS
};

/* Whether a park of `kind` waits on the outside world. */
#define GL_WAIT_ON_IO(kind) ((kind) >= GL_WAIT_IO)

/* The name of a kind ("sleep", "event", "queue get", "receive", ...). */
const char *gl_wait_name(int kind);

/* Writes what the park on `w` waits on into buf (n bytes, always ended
 * with a NUL): a socket's addresses, a child's pid.  The layer that parks
 * with a kind may set one for it; green.dump() calls it, on the hub or in
 * a greenthread, for parked tasks only.  It must not block nor raise. */
typedef void (*gl_wait_describer)(const gl_waiter *w, char *buf, size_t n);
void gl_wait_setdescriber(int kind, gl_wait_describer fn);
gl_wait_describer gl_wait_getdescriber(int kind);
/* }====== */

struct gl_waiter {
  gl_task *task;
  gl_waiter *prev, *next;  /* links in `q` */
  gl_waitq *q;             /* the wait queue it is linked in, or NULL */
  gl_timer timer;          /* the park's timeout */
  int status;              /* set by the waker */
  unsigned char kind;      /* what it waits on: a GL_WAIT_* */
  void *data;              /* a payload for waker and waiter to agree on: */
  intptr_t n, n2;          /* never a pointer into the parked stack, which
                              may be displaced (see coro.h) */
  const void *obj;         /* the object it waits on (see the kinds) */
};

/* Clears `w` and labels it with what it will wait on. */
static inline void gl_waiter_init(gl_waiter *w, int kind, const void *obj) {
  memset(w, 0, sizeof *w);
  w->kind = (unsigned char)kind;
  w->obj = obj;
}

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
  gl_cause *pending;      /* pending interrupts: a ring, the first to
                             raise at its head (Interrupts, below) */
  uint64_t id;
  unsigned fronted;       /* the hub round it last ran ahead of others in */
  unsigned char state;
  unsigned char started;  /* has a context (and a stack) to switch to */
  unsigned char unwindable;  /* parked where its frames can be rebuilt */
  unsigned char unwinding;   /* asked to unwind them (GL_EUNWIND) */
  const char *name;       /* NULL: "greenthread-<id>" (gl_task_name) */
  uint64_t since;         /* when it last parked: gl_clock_now() for a
                             park with a deadline, else gl_hub_stamp() */
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
 * or GL_EINTR (rule 3 under Interrupts); or GL_EUNWIND for a park marked
 * unwindable (below). */
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

/* {====== Interrupts ======
 * An interrupt (g:kill(), a green.Timeout firing) is a cause made pending
 * in a task, which raises it at its current or next park.  The rules, which
 * hub.c implements and spec/interrupt_spec.lua checks:
 *
 *  1. A task has any number of pending causes, each at most once: making
 *     a cause pending that is pending already changes nothing.
 *  2. They are delivered one at a time, a kill before any Timeout and
 *     Timeouts in the order they fired: while one is pending, every park
 *     (and yield) returns GL_EINTR, and gl_hub_take_interrupt hands over
 *     the first, which the caller raises.
 *  3. A cause made pending in a parked task wakes it (a "kick") but leaves
 *     its waiter linked where it waits, its timeout running, until the
 *     task runs.  A waker that finds the waiter there meanwhile still
 *     wakes it, and the park returns that waker's status (GL_OK, GL_ECLOSED:
 *     an item, a count, a turn handed over is never lost); the cause waits
 *     for the next park.  Only the park's own timeout gives way: it ends
 *     in GL_EINTR when a cause is pending.
 *  4. Cancelling a cause (gl_hub_cancel: a Timeout cancelled or restarted,
 *     from any greenthread) removes that cause alone.  A task kicked whose
 *     causes were all cancelled before it ran was woken spuriously: the
 *     hub leaves it parked as it was, on the same waiter, at its place in
 *     the queue, with the same deadline, and it never notices.
 *  5. Hence every cause is delivered exactly once, or cancelled.  What
 *     remains pending when a task ends is its owner's to settle (green.c:
 *     the Timeouts it started are cancelled, a kill has nothing left to
 *     stop). */

struct gl_cause {
  gl_cause *prev, *next;  /* in the ring of the task where it is pending;
                             next is NULL while it is not */
  int kind;               /* GL_CAUSE_*: the order of delivery (rule 2) */
  int ref;                /* the owner's (green.c: a Timeout's anchor) */
};

enum { GL_CAUSE_KILL = 1, GL_CAUSE_TIMEOUT = 2 };

/* Makes `c` pending in `t` (rules 1-3).  Does nothing for a dead task. */
void gl_hub_interrupt(gl_task *t, gl_cause *c);

/* Takes the first pending cause of `t` away and returns it, or NULL. */
gl_cause *gl_hub_take_interrupt(gl_task *t);

/* Removes `c` from the causes pending in `t`, if it is one (rule 4).
 * Returns whether it was. */
int gl_hub_cancel(gl_task *t, gl_cause *c);

static inline int gl_hub_pending(const gl_task *t) {
  return t->pending != NULL;
}

static inline int gl_cause_pending(const gl_cause *c) {
  return c->next != NULL;
}
/* }====== */

/* Waits until `fd` is readable (events UV_READABLE) or writable, parked
 * as GL_WAIT_FD.  Returns GL_OK, GL_ETIMEDOUT, GL_EINTR, or -1 if the fd
 * cannot be polled. */
int gl_hub_wait_fd(int fd, int events, uint64_t timeout_ns);

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
  unsigned long long trims;         /* quiet trims (see hub.c's on_trim) */
  unsigned long long trimmed_bytes; /* stack bytes they gave back */
} gl_hub_stats;
void gl_hub_getstats(gl_hub_stats *st);

/* Converts seconds to a timeout in ns, rounded up; negative gives 0. */
uint64_t gl_hub_ns(double seconds);

/* {====== Looking inside the hub ======
 * What green.dump, green.stats, the watchdog and the virtual clock read
 * (bindings/observe).  The switch path pays one counter for all of it. */

/* Switches to a task so far (from the hub, or straight from another
 * task).  Bumped on the hub's thread only; any thread may read it (the
 * watchdog's, which only asks "is the same task still running?", so
 * relaxed order is enough). */
uint64_t gl_hub_switches(void);

/* Whether the hub is inside the loop (blocked in it, or running its
 * callbacks) rather than running tasks; any thread may ask. */
int gl_hub_inloop(void);

/* How many times the hub has run the loop (blocking or not). */
uint64_t gl_hub_loops(void);

/* gl_clock_now() as of the hub's last turn of the loop: what a task that
 * parks records in t->since, at the cost of a load.  It lags the clock
 * by at most the time tasks ran since (about 100 us while busy). */
uint64_t gl_hub_stamp(void);

/* How many parked tasks wait on the outside world (GL_WAIT_ON_IO). */
size_t gl_hub_parked_io(void);

/* The virtual clock: while on, whenever the hub would block in the loop
 * with nothing that could end the wait but a deadline (no task parked on
 * I/O, no libuv handle or request active but the clock's own), the clock
 * jumps to the earliest deadline instead (gl_clock_advance).  With I/O in
 * flight the hub waits in real time as usual. */
void gl_hub_virtual_clock(int on);
int gl_hub_virtual(void);
/* }====== */

#endif
