/* The hub: a coroutine of its own that runs ready tasks in FIFO order and,
 * between rounds, the libuv loop; the timeouts of parks are timers on the
 * clock (clock.c).  Tasks switch only to the hub and the hub only to
 * tasks, so the hub is where finished tasks give back their stacks and
 * where a deadlock is noticed. */
#include "hub.h"

#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "heap.h"
#include "waitq.h"

/* Greenthreads past the private-stack limit share these many stacks. */
#define SHARED_STACKS 64
#define PRIVATE_STACKS 64

/* While tasks keep the run queue busy, the clock is read every
 * POLL_CHECK tasks run, and I/O and timers are polled once POLL_EVERY_NS
 * have passed, also in the middle of a long round.  A round of a server's
 * ready connections takes well under a millisecond: polling every 100 µs
 * cut such rounds into small batches (an echo server under 100
 * connections made up to twice the epoll_waits of a plain libuv loop,
 * and 11% fewer round trips than with a millisecond); every millisecond,
 * a round runs whole and an I/O wake still waits at most that long behind
 * a long one. */
#define POLL_CHECK 16
#define POLL_EVERY_NS 1000000

static struct {
  uv_loop_t *loop;
  gl_task *main;
  gl_coro co;             /* the hub's own coroutine */
  gl_task *current;       /* NULL while the hub itself runs */
  gl_task *head, *tail;   /* the run queue */
  gl_task *ioh, *iot;     /* woken by loop callbacks since the last poll */
  gl_task *iofront;       /* the last spliced task not run yet, or NULL */
  gl_task *last;          /* the last task of the round under way (the
                             tail when it began), or NULL between rounds */
  int inrun;              /* the hub is inside uv_run */
  unsigned round;         /* counts rounds, for the fairness of pushio */
  gl_task *live_head, *live_tail;
  size_t live;
  uint64_t next_id;
  int main_waits;         /* the main task waits for the others to end */
  gl_waiter main_waiter;
  unsigned ran;           /* tasks run since the last poll */
  uint64_t polled;        /* when (uv_hrtime: real time, even when the
                             clock is virtual) */
  uv_timer_t trimtimer;   /* gives idle pooled stacks' pages back */
  uint64_t trimmed_at;    /* gl_hub_switches() at its last tick */
  int quiet_trimmed;      /* memory was trimmed since the hub was busy */
  unsigned trim_ticks;
  unsigned long long trims, trimmed_bytes;
  size_t private_max;     /* private stacks before sharing starts */
  size_t nprivate;        /* private stacks in use by tasks */
  int can_share;
  gl_stack *shared[SHARED_STACKS];
  size_t nextshared;
  size_t displaced, saved_bytes;
  unsigned long long displacements;
  size_t unwound;         /* parked tasks that gave their stack up */
  unsigned long long unwinds;
  int eager;              /* gl_hub_unwind_eagerly */
  uint64_t stamp;         /* gl_clock_now() at the last poll */
  uint64_t loops;         /* polls so far */
  size_t parked_io;       /* tasks in a park labelled GL_WAIT_ON_IO */
} H;

static int virtual_clock;  /* gl_hub_virtual_clock; may be set early */

/* Read by the watchdog's thread (bindings/observe/watchdog.c). */
static _Atomic uint64_t switches;
static _Atomic int inloop;

/* Counts a switch to a task, on the hub's thread only. */
static inline void count_switch(void) {
  atomic_store_explicit(&switches, atomic_load_explicit(
      &switches, memory_order_relaxed) + 1, memory_order_relaxed);
}

static size_t private_max = PRIVATE_STACKS;
static int eager_unwind;

void (*gl_hub_deadlock_hook)(void);

uint64_t gl_hub_ns(double seconds) {
  if (!(seconds > 0)) return 0;               /* also NaN */
  if (seconds >= 1e9) return UINT64_MAX / 2;  /* ~30 years: forever enough */
  return (uint64_t)ceil(seconds * 1e9);
}

uv_loop_t *gl_hub_loop(void) { return H.loop; }
gl_task *gl_hub_main(void) { return H.main; }
gl_task *gl_hub_current(void) { return H.current; }
size_t gl_hub_live(void) { return H.live; }

void gl_hub_private_stacks(size_t n) {
  private_max = n;
  H.private_max = n;
}

void gl_hub_getstats(gl_hub_stats *st) {
  size_t i;
  st->live = H.live;
  st->private_stacks = H.nprivate;
  st->shared_stacks = 0;
  for (i = 0; i < SHARED_STACKS; i++) st->shared_stacks += H.shared[i] != NULL;
  st->displaced = H.displaced;
  st->saved_bytes = H.saved_bytes;
  st->displacements = H.displacements;
  st->unwound = H.unwound;
  st->unwinds = H.unwinds;
  st->trims = H.trims;
  st->trimmed_bytes = H.trimmed_bytes;
}

void gl_hub_unwind_eagerly(int on) {
  eager_unwind = on;
  H.eager = on;
}

#define WAITING (-1)  /* a waiter's status until a waker writes one */

/* {====== Run queue and tasks ====== */

static void push(gl_task *t) {
  t->next = NULL;
  if (H.tail) H.tail->next = t; else H.head = t;
  H.tail = t;
}

/* Tasks woken by loop callbacks (timers, I/O) run before the rest of the
 * round that was under way, in the order they were woken: a sleeper whose
 * deadline passed during a long round of other work is not made to wait
 * for its end.  The hub expires due deadlines itself after every task,
 * so a task in a loop of tiny sleeps would be woken and put ahead every
 * time and starve the rest of the round: such wakes (outside uv_run) put
 * a task ahead once a round, then at the back (test_hub's fd case).  I/O
 * wakes come at most once per POLL_CHECK tasks and always go ahead. */
static void pushio(gl_task *t) {
  if (!H.inrun) {
    if (t->fronted == H.round) {
      push(t);
      return;
    }
    t->fronted = H.round;
  }
  t->next = NULL;
  if (H.iot) H.iot->next = t; else H.ioh = t;
  H.iot = t;
}

static void splice(void) {
  if (H.ioh == NULL) return;
  if (H.iofront != NULL) {  /* behind those woken earlier, not run yet */
    H.iot->next = H.iofront->next;
    H.iofront->next = H.ioh;
    if (H.tail == H.iofront) H.tail = H.iot;
  } else {
    H.iot->next = H.head;
    H.head = H.ioh;
    if (H.tail == NULL) H.tail = H.iot;
  }
  H.iofront = H.iot;
  H.ioh = H.iot = NULL;
}

/* Runs the loop once without blocking (mid-round) or blocking until
 * something happens.  What it woke waits in the io list for splice. */
static void poll(uv_run_mode mode) {
  H.ran = 0;
  H.inrun = 1;
  atomic_store_explicit(&inloop, 1, memory_order_relaxed);
  uv_run(H.loop, mode);
  atomic_store_explicit(&inloop, 0, memory_order_relaxed);
  H.inrun = 0;
  H.polled = uv_hrtime();
  H.stamp = gl_clock_now();
  H.loops++;
}

static gl_task *pop(void) {
  gl_task *t = H.head;
  if (t != NULL) {
    H.head = t->next;
    if (H.head == NULL) H.tail = NULL;
    t->next = NULL;
    if (t == H.iofront) H.iofront = NULL;
  }
  return t;
}

static void live_add(gl_task *t) {
  t->live_next = NULL;
  t->live_prev = H.live_tail;
  if (H.live_tail) H.live_tail->live_next = t; else H.live_head = t;
  H.live_tail = t;
  H.live++;
}

static void live_remove(gl_task *t) {
  if (t->live_prev) t->live_prev->live_next = t->live_next;
  else H.live_head = t->live_next;
  if (t->live_next) t->live_next->live_prev = t->live_prev;
  else H.live_tail = t->live_prev;
  H.live--;
}

void gl_task_init(gl_task *t, void (*run)(gl_task *t)) {
  memset(t, 0, sizeof *t);
  t->run = run;
  t->state = GL_TASK_NEW;
  t->id = ++H.next_id;
}

const char *gl_task_name(const gl_task *t, char *buf, size_t n) {
  if (t->name != NULL) snprintf(buf, n, "%s", t->name);
  else snprintf(buf, n, "greenthread-%llu", (unsigned long long)t->id);
  return buf;
}

/* Runs in the SIGSEGV handler, on the alternate signal stack: write(2)
 * only (gl_fatal_raw), no stdio, no snprintf. */
static void overflow_hook(gl_coro *co) {
  gl_task *t = gl_container_of(co, gl_task, coro);
  char id[24];
  if (co == &H.co) gl_fatal_raw("stack overflow in the hub", NULL);
  gl_fmt_u64(id, t->id);
  if (t->name != NULL)
    gl_fatal_raw("stack overflow in greenthread '", t->name, "' (id ", id,
                 "); raise --stack-size", NULL);
  gl_fatal_raw("stack overflow in greenthread 'greenthread-", id, "' (id ",
               id, "); raise --stack-size", NULL);
}

static void hub_main(gl_coro *co);

/* Four times a second, the hub looks whether it was quiet (fewer than
 * TRIM_QUIET switches since the last look).  The first quiet look after
 * it was busy gives back the pages of free heap memory and those of
 * suspended tasks' private stacks below their frames: an idle server
 * holds what its connections hold, not what its last burst (TLS
 * handshakes, a deep call) left behind.  Every fourth look, pooled stacks
 * unused for a whole period give their pages back. */
#define TRIM_EVERY_MS 250
#define TRIM_QUIET 250

static void on_trim(uv_timer_t *h) {
  uint64_t n = gl_hub_switches();
  GL_UNUSED(h);
  if (++H.trim_ticks % 4 == 0) gl_stack_trim();
  if (n - H.trimmed_at >= TRIM_QUIET) {
    H.quiet_trimmed = 0;
  } else if (!H.quiet_trimmed) {
    gl_task *t;
    H.quiet_trimmed = 1;
    H.trims++;
    gl_heap_trim();
    for (t = H.live_head; t != NULL; t = t->live_next)
      if (t != H.current) H.trimmed_bytes += gl_coro_trim(&t->coro);
  }
  H.trimmed_at = n;
}

void gl_hub_init(uv_loop_t *loop, gl_task *main) {
  uint64_t ids = H.next_id;  /* tasks may have been made before the hub */
  memset(&H, 0, sizeof H);
  H.next_id = ids;
  H.loop = loop;
  H.main = main;
  H.private_max = private_max;
  H.eager = eager_unwind;
  H.can_share = gl_coro_can_share();
  gl_clock_init(loop);
  H.stamp = gl_clock_now();
  uv_timer_init(loop, &H.trimtimer);
  uv_timer_start(&H.trimtimer, on_trim, TRIM_EVERY_MS, TRIM_EVERY_MS);
  uv_unref((uv_handle_t *)&H.trimtimer);  /* never keeps the loop alive */
  gl_coro_init_main(&main->coro);
  main->state = GL_TASK_RUNNING;
  main->started = 1;
  H.current = main;
  live_add(main);
  if (gl_coro_init(&H.co, hub_main) != 0)
    gl_fatal("cannot allocate the hub's stack");
  gl_coro_overflow_hook = overflow_hook;
  gl_coro_catch_overflow();
}

void gl_hub_spawn(gl_task *t) {
  GL_ASSERT(t->state == GL_TASK_NEW && t->run != NULL);
  live_add(t);
  push(t);
}

static gl_task *direct(gl_task *t);

/* Switches from the current task, which parked or yielded (or finished),
 * to the hub, or straight to the next task when the hub has nothing else
 * to do in between (direct). */
static void tohub(gl_task *t, int finishing) {
  gl_task *n;
  if (!finishing && (n = direct(t)) != NULL) {
    n->state = GL_TASK_RUNNING;
    H.current = n;
    count_switch();
    if (n != t) gl_coro_switch(&t->coro, &n->coro, 0);
  } else {
    gl_coro_switch(&t->coro, &H.co, finishing);
  }
  /* back: the hub, or a task, switched to us again */
  GL_ASSERT(H.current == t);
}

static void task_entry(gl_coro *co) {
  gl_task *t = gl_container_of(co, gl_task, coro);
  t->run(t);
  /* The task's memory belongs to its owner (a Lua userdata for a
   * greenthread); the owner keeps it alive until the hub, right after
   * the switch below and before any other task runs, releases the stack. */
  t->state = GL_TASK_DEAD;
  live_remove(t);
  if (H.main_waits && H.live == 1) gl_hub_wake(&H.main_waiter, GL_OK);
  tohub(t, 1);
  gl_fatal("a finished task was resumed");
}

/* Gives a task starting its first run a stack: one of its own while
 * fewer than private_max are in use, else a shared one, round robin. */
static void start(gl_task *t) {
  if (H.nprivate < H.private_max || !H.can_share) {
    if (gl_coro_init(&t->coro, task_entry) != 0)
      gl_fatal("out of memory for greenthread stacks (%zu live)", H.live);
    H.nprivate++;
  } else {
    size_t i = H.nextshared++ % SHARED_STACKS;
    if (H.shared[i] == NULL && (H.shared[i] = gl_stack_alloc()) == NULL)
      gl_fatal("out of memory for greenthread stacks (%zu live)", H.live);
    gl_coro_bind(&t->coro, task_entry, H.shared[i]);
  }
  t->started = 1;
}

/* Repoints what links to the waiter of a task just displaced from its
 * stack (its wait queue and the timer heap) at the waiter's copy among the
 * saved frames: nothing else may point into a displaced stack.  A wake-up
 * while displaced writes to the copy, and the frames carry it back to the
 * stack when the task runs again. */
static void relocate(gl_task *t) {
  gl_waiter *w = t->waiter, *b;
  char *top = t->coro.stack->base + t->coro.stack->size;
  char *sp = top - t->coro.nsaved;
  if (w == NULL || (char *)w < sp || (char *)w >= top) return;
  b = (gl_waiter *)(void *)(t->coro.saved + ((char *)w - sp));
  if (b->q != NULL) {
    if (b->prev) b->prev->next = b; else b->q->head = b;
    if (b->next) b->next->prev = b; else b->q->tail = b;
  }
  gl_timer_moved(&b->timer);
  t->waiter = b;
}

/* Gives the stack of a finished or unwound task back. */
static void drop_stack(gl_task *t) {
  if (t->coro.shared) {
    gl_coro_leave(&t->coro);
  } else {
    gl_coro_release(&t->coro);
    H.nprivate--;
  }
  t->started = 0;
}

/* Has a parked, unwindable task unwind its frames and give its stack up
 * (see hub.h); it runs from the start of its body once woken. */
static void unwind(gl_task *t) {
  GL_ASSERT(t->state == GL_TASK_PARKED && t->unwindable);
  t->unwinding = 1;
  H.current = t;
  gl_coro_switch(&H.co, &t->coro, 0);
  H.current = NULL;
  t->unwinding = 0;
  drop_stack(t);
  H.unwound++;
  H.unwinds++;
}

GL_NORETURN void gl_hub_leave_stack(void) {
  gl_task *t = H.current;
  GL_ASSERT(t != NULL && t->unwinding);
  gl_coro_switch(&t->coro, &H.co, 1);
  gl_fatal("a task ran again on the frames it unwound");
}

/* Makes a shared-stack task's frames current before it runs.  The
 * occupant unwinds if it can, which leaves nothing to copy. */
static void activate(gl_task *t) {
  gl_coro *occ = gl_coro_occupant(&t->coro);
  if (occ != NULL) {
    gl_task *o = gl_container_of(occ, gl_task, coro);
    if (o->unwindable && o->state == GL_TASK_PARKED) {
      unwind(o);
      occ = NULL;
    }
  }
  if (t->coro.saved != NULL) {
    H.displaced--;
    H.saved_bytes -= t->coro.nsaved;
  }
  if (gl_coro_activate(&t->coro) != 0)
    gl_fatal("out of memory saving a greenthread's stack");
  if (occ != NULL) {
    relocate(gl_container_of(occ, gl_task, coro));
    H.displacements++;
    H.displaced++;
    H.saved_bytes += occ->nsaved;
  }
}

static int settle(gl_task *t);

/* Runs t until a task switches back to the hub: t, or the last of the
 * tasks that switched straight to one another from t on (direct).
 * Returns that task. */
static gl_task *runtask(gl_task *t) {
  if (!settle(t)) return t;  /* woken spuriously: parked again */
  if (!t->started) {
    if (t->state != GL_TASK_NEW) H.unwound--;  /* back after unwinding */
    start(t);
  }
  if (t->coro.shared) activate(t);
  t->state = GL_TASK_RUNNING;
  H.current = t;
  count_switch();
  gl_coro_switch(&H.co, &t->coro, 0);
  t = H.current;
  H.current = NULL;
  if (t->state == GL_TASK_DEAD)
    drop_stack(t);
  else if (H.eager && t->state == GL_TASK_PARKED && t->unwindable)
    unwind(t);
  return t;
}

static void deadlock(void) {
  if (gl_hub_deadlock_hook != NULL) gl_hub_deadlock_hook();
  gl_fatal("deadlock: every greenthread is blocked and nothing can wake one");
}

/* The virtual clock's step, when the run queue is empty: if nothing but
 * a deadline can end the wait (no task parked on I/O, no libuv handle or
 * request active but the clock's own wake-up: the loop's counters of
 * referenced active handles and of requests in flight), moves the clock
 * to the earliest deadline and expires what is due.  Deadlines meant as
 * "forever" (gl_hub_ns caps them near UINT64_MAX / 2) are waited for, as
 * with the real clock, rather than jumped to.  Returns whether it moved. */
static int jump(void) {
  uint64_t next = gl_clock_next_deadline(), now;
  if (next >= UINT64_MAX / 4 || H.parked_io != 0 ||
      H.loop->active_reqs.count != 0 ||
      H.loop->active_handles > gl_clock_handles())
    return 0;
  now = gl_clock_now();
  if (next > now) gl_clock_advance(next - now);
  gl_clock_expire();
  H.stamp = gl_clock_now();
  return 1;
}

/* Whether a deadline passed while tasks ran. */
static int due(void) {
  return gl_clock_next_deadline() != UINT64_MAX &&
         gl_clock_now() >= gl_clock_next_deadline();
}

/* What the hub does after each task it ran, before the next. */
static void between(gl_task *t) {
  if (due()) gl_clock_expire();
  if (++H.ran >= POLL_CHECK) {
    H.ran = 0;
    if (uv_hrtime() - H.polled >= POLL_EVERY_NS) poll(UV_RUN_NOWAIT);
  }
  splice();  /* once, so batches woken earlier stay ahead */
  if (t == H.last) H.last = NULL;  /* the round is over */
}

/* The hub runs rounds: the tasks ready when a round begins, in order, and
 * those that loop callbacks wake meanwhile ahead of the rest (pushio). */
static void hub_main(gl_coro *co) {
  GL_UNUSED(co);
  for (;;) {
    gl_task *t;
    if (H.last == NULL) {  /* a round begins */
      H.round++;
      if ((H.last = H.tail) == NULL) {
        if (virtual_clock && jump()) {
          poll(UV_RUN_NOWAIT);  /* what else is due, without waiting */
        } else {
          if (!uv_loop_alive(H.loop)) deadlock();
          poll(UV_RUN_ONCE);
        }
        splice();
        continue;
      }
    }
    t = runtask(pop());
    between(t);
  }
}

/* The next task, for a switch straight from t (parked or ready again) to
 * it, when the hub would do nothing between them: no deadline passed, no
 * poll due, no wake from the loop to splice, and the next task's frames
 * are on its stack and it was woken by a waker's status (settle() has
 * nothing to decide).  Does the hub's bookkeeping of the switch and
 * takes the task off the run queue; NULL: switch to the hub. */
static gl_task *direct(gl_task *t) {
  gl_task *n = H.head;
  if (n == NULL || !n->started || H.eager || H.ioh != NULL ||
      H.ran + 1 >= POLL_CHECK ||
      (n->coro.shared && n->coro.stack->occupant != &n->coro) ||
      (n->waiter != NULL && n->waiter->status == WAITING) || due())
    return NULL;
  H.ran++;
  if (t == H.last) {  /* the round is over; the next begins */
    H.round++;
    H.last = H.tail;
  }
  pop();
  settle(n);
  return n;
}
/* }====== */

/* {====== Parking ====== */

static gl_wait_describer describers[GL_WAIT_NKINDS];

void gl_wait_setdescriber(int kind, gl_wait_describer fn) {
  GL_ASSERT(kind >= 0 && kind < GL_WAIT_NKINDS);
  describers[kind] = fn;
}

gl_wait_describer gl_wait_getdescriber(int kind) {
  return kind >= 0 && kind < GL_WAIT_NKINDS ? describers[kind] : NULL;
}

const char *gl_wait_name(int kind) {
  static const char *const names[GL_WAIT_NKINDS] = {
    "unknown", "sleep", "event", "asyncresult", "queue get", "queue put",
    "queue peek", "queue join", "semaphore", "join", "others", "receive",
    "send", "accept", "connect", "dns", "fd", "child", "signal"
  };
  return kind >= 0 && kind < GL_WAIT_NKINDS ? names[kind] : "unknown";
}

/* {====== Interrupts: the rules are in hub.h ======
 * A task's pending causes form a ring through the causes themselves,
 * ordered by kind (kills first), in arrival order within a kind; the task
 * points at the first.  A park kicked by a cause keeps its waiter linked
 * and its timer running, with the status WAITING that no waker writes,
 * until settle() decides, just before the task would run, how the park
 * ends: with a waker's status, with GL_EINTR, or (nothing pending any
 * more) not at all. */


static void cause_insert(gl_task *t, gl_cause *c) {
  gl_cause *head = t->pending, *at = head;
  if (head == NULL) {
    c->prev = c->next = c;
    t->pending = c;
    return;
  }
  do {  /* before the first of a later kind, else at the tail */
    if (at->kind > c->kind) break;
    at = at->next;
  } while (at != head);
  c->next = at;
  c->prev = at->prev;
  at->prev->next = c;
  at->prev = c;
  if (at == head && head->kind > c->kind) t->pending = c;
}

static void cause_remove(gl_task *t, gl_cause *c) {
  if (c->next == c) {
    t->pending = NULL;
  } else {
    c->prev->next = c->next;
    c->next->prev = c->prev;
    if (t->pending == c) t->pending = c->next;
  }
  c->prev = c->next = NULL;
}

/* Makes a parked task ready; it stays on its waiter until settle(). */
static void schedule(gl_task *t) {
  t->state = GL_TASK_READY;
  if (H.current != NULL) {
    push(t);
  } else {
    /* Woken on the hub (a libuv callback, or a deadline the hub expired
     * itself): inside uv_run, make the loop poll without blocking and
     * return, or a timer that ran before the poll would leave its task
     * waiting for the next event. */
    pushio(t);
    /* Only inside uv_run: a stop requested outside it would make the next
     * uv_run return at once without polling at all. */
    if (H.inrun) uv_stop(H.loop);
  }
}

void gl_hub_interrupt(gl_task *t, gl_cause *c) {
  GL_ASSERT(c != NULL);
  if (t->state == GL_TASK_DEAD || c->next != NULL) return;  /* rule 1 */
  cause_insert(t, c);
  if (t->state == GL_TASK_PARKED) schedule(t);  /* a kick (rule 3) */
}

gl_cause *gl_hub_take_interrupt(gl_task *t) {
  gl_cause *c = t->pending;
  if (c != NULL) cause_remove(t, c);
  return c;
}

int gl_hub_cancel(gl_task *t, gl_cause *c) {
  if (c->next == NULL) return 0;
  cause_remove(t, c);
  return 1;
}

/* Decides how the park of a task woken from it ends, before the task
 * runs (and before its frames come back to a shared stack: its waiter
 * may be among the saved copy, where relocate() repointed it).  Returns
 * 0 for a spurious wake, the task parked again as it was (rule 4). */
static int settle(gl_task *t) {
  gl_waiter *w = t->waiter;
  if (w == NULL) return 1;  /* not from a park */
  if (w->status == WAITING) {  /* kicked, and no waker since */
    if (t->pending == NULL) {
      t->state = GL_TASK_PARKED;
      return 0;
    }
    gl_waitq_remove(w);
    gl_timer_stop(&w->timer);
    w->status = GL_EINTR;
  } else if (w->status == GL_ETIMEDOUT && t->pending != NULL) {
    w->status = GL_EINTR;  /* its own timeout gives way (rule 3) */
  }
  H.parked_io -= GL_WAIT_ON_IO(w->kind);
  t->waiter = NULL;
  return 1;
}
/* }====== */

static void on_park_timeout(gl_timer *tm) {
  gl_hub_wake(gl_container_of(tm, gl_waiter, timer), GL_ETIMEDOUT);
}

int gl_hub_park(gl_waiter *w, uint64_t timeout_ns) {
  gl_task *t = H.current;
  GL_ASSERT(t != NULL);  /* the hub itself never parks */
  w->task = t;
  w->timer.slot = 0;
  if (t->pending != NULL) return GL_EINTR;
  w->status = WAITING;
  t->since = H.stamp;  /* exact when there is a deadline, for free: */
  if (timeout_ns != UINT64_MAX) {
    uint64_t now = t->since = gl_clock_now();
    uint64_t due = timeout_ns > UINT64_MAX - now ? UINT64_MAX - 1
                                                 : now + timeout_ns;
    w->timer.cb = on_park_timeout;
    gl_timer_start(&w->timer, due);
  }
  t->waiter = w;
  t->state = GL_TASK_PARKED;
  H.parked_io += GL_WAIT_ON_IO(w->kind);
  tohub(t, 0);
  if (t->unwinding) return GL_EUNWIND;  /* still parked on w */
  return w->status;  /* as settle() left it */
}

void gl_hub_wake(gl_waiter *w, int status) {
  gl_task *t = w->task;
  gl_waitq_remove(w);
  gl_timer_stop(&w->timer);
  if (t == NULL || t->waiter != w || w->status != WAITING) return;
  w->status = status;
  if (t->state == GL_TASK_PARKED) schedule(t);
  /* else kicked already: ready, and settle() finds the status */
}

int gl_hub_yield(void) {
  gl_task *t = H.current;
  GL_ASSERT(t != NULL);
  if (t->pending != NULL) return GL_EINTR;
  t->state = GL_TASK_READY;
  push(t);
  tohub(t, 0);
  return t->pending != NULL ? GL_EINTR : GL_OK;
}

int gl_hub_sleep(uint64_t ns) {
  gl_waiter w;
  int rc;
  gl_waiter_init(&w, GL_WAIT_SLEEP, NULL);
  rc = gl_hub_park(&w, ns);
  return rc == GL_ETIMEDOUT ? GL_OK : rc;
}

/* The main task, waiting for the others after its chunk ended, has
 * nothing left to raise an interrupt in: it takes them and waits on. */
void gl_hub_wait_others(void) {
  GL_ASSERT(H.current == H.main);
  while (H.live > 1) {
    gl_waiter_init(&H.main_waiter, GL_WAIT_OTHERS, NULL);
    H.main_waits = 1;
    gl_hub_park(&H.main_waiter, UINT64_MAX);
    H.main_waits = 0;
    while (gl_hub_take_interrupt(H.main) != NULL) {}
  }
}

typedef struct fdpoll {
  uv_poll_t h;
  gl_waitq q;   /* a queue, not a pointer: the waiter may be displaced */
} fdpoll;

static void on_poll(uv_poll_t *h, int status, int events) {
  fdpoll *p = h->data;
  GL_UNUSED(events);
  gl_waitq_wake_one(&p->q, status < 0 ? GL_ECLOSED : GL_OK);
}

static void free_on_close(uv_handle_t *h) { free(h->data); }

/* uv_poll_init makes the fd non-blocking; the fd is the caller's (often
 * stdin, shared with the shell), so its flags are put back. */
int gl_hub_wait_fd(int fd, int events, uint64_t timeout_ns) {
  gl_waiter w;
  int rc, flags = fcntl(fd, F_GETFL);
  fdpoll *p = malloc(sizeof *p);
  if (p == NULL) return -1;
  if (uv_poll_init(H.loop, &p->h, fd) != 0) {
    free(p);
    if (flags != -1) fcntl(fd, F_SETFL, flags);
    return -1;
  }
  gl_waiter_init(&w, GL_WAIT_FD, NULL);
  w.n = fd;
  p->h.data = p;
  gl_waitq_init(&p->q);
  uv_poll_start(&p->h, events, on_poll);
  rc = gl_waitq_wait(&p->q, &w, timeout_ns);
  uv_close((uv_handle_t *)&p->h, free_on_close);
  if (flags != -1) fcntl(fd, F_SETFL, flags);
  return rc;
}

uint64_t gl_hub_switches(void) {
  return atomic_load_explicit(&switches, memory_order_relaxed);
}

int gl_hub_inloop(void) {
  return atomic_load_explicit(&inloop, memory_order_relaxed);
}

uint64_t gl_hub_loops(void) { return H.loops; }
uint64_t gl_hub_stamp(void) { return H.stamp; }
size_t gl_hub_parked_io(void) { return H.parked_io; }

void gl_hub_virtual_clock(int on) { virtual_clock = on != 0; }
int gl_hub_virtual(void) { return virtual_clock; }

void gl_hub_foreach(void (*fn)(gl_task *t, void *ud), void *ud) {
  gl_task *t, *next;
  for (t = H.live_head; t != NULL; t = next) {
    next = t->live_next;
    fn(t, ud);
  }
}
/* }====== */
