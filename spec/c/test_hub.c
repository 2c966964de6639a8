/* Tests of the hub and the wait queue (host/hub.h, host/waitq.h) on a real
 * libuv loop: run order, yields, sleeps and timers, parking and waking,
 * interrupts, deadlock, fds, and the same again where tasks share stacks.
 * Tasks are `job`s: a gl_task embedded in a struct of the test's own. */
#include "test.h"

#include <math.h>
#include <stdint.h>

#include "gl.h"
#include "hub.h"
#include "waitq.h"

#define MS 1000000ull
#define EVERYONE_PRIVATE ((size_t)-1)  /* the hub's default */

typedef struct job job;
struct job {
  gl_task task;
  int id;
  void (*body)(job *j);
  int rc, done;
  uint64_t ns, elapsed;  /* a sleep or timeout, and what it took */
  gl_waitq *q;
  gl_waiter w;
  int fd;
  int unwound;  /* gave its stack up while parked */
  gl_cause kill, tmo[2];  /* its own interrupts (a cause is pending in one
                             task at a time) */
};

static gl_task main_task;
static int order[4096];
static size_t norder;

static void logid(int id) {
  CHECK_LT(norder, sizeof order / sizeof order[0]);
  order[norder++] = id;
}

/* Sets up the hub on the default loop, the caller being the main task.
 * `private_stacks`: how many tasks get a stack of their own before the
 * others share (0: all share), or EVERYONE_PRIVATE. */
static void hub_setup(size_t private_stacks) {
  if (private_stacks != EVERYONE_PRIVATE)
    gl_hub_private_stacks(private_stacks);
  gl_task_init(&main_task, NULL);
  gl_hub_init(uv_default_loop(), &main_task);
  CHECK_PTR_EQ(gl_hub_current(), &main_task);
  CHECK_PTR_EQ(gl_hub_main(), &main_task);
}

static void job_run(gl_task *t) {
  job *j = gl_container_of(t, job, task);
  CHECK_PTR_EQ(gl_hub_current(), t);
  j->body(j);
  j->done = 1;
}

static void job_spawn(job *j, int id, void (*body)(job *j)) {
  memset(j, 0, sizeof *j);
  j->kill.kind = GL_CAUSE_KILL;
  j->tmo[0].kind = j->tmo[1].kind = GL_CAUSE_TIMEOUT;
  gl_task_init(&j->task, job_run);
  j->id = id;
  j->body = body;
  j->rc = -1;
  gl_hub_spawn(&j->task);
}

/* Runs the others until `n` tasks wait on `q`. */
static void yield_until_waiting(gl_waitq *q, size_t n) {
  int i;
  for (i = 0; q->n < n; i++) {
    CHECK_LT(i, 1000);
    CHECK_EQ(gl_hub_yield(), GL_OK);
  }
}

/* Where tasks can share stacks (not under sanitizers, not on ucontext),
 * checks that they did. */
static void check_shared(void) {
  gl_hub_stats st;
  gl_hub_getstats(&st);
  if (!gl_coro_can_share()) return;
  CHECK_GT(st.shared_stacks, 0);
  CHECK_GT(st.displacements, 0);
}

/* {====== Run order ====== */

static void log_body(job *j) { logid(j->id); }

TEST(hub_runs_spawned_tasks_in_fifo_order) {
  static job jobs[5];
  int i;
  hub_setup(EVERYONE_PRIVATE);
  for (i = 0; i < 5; i++) job_spawn(&jobs[i], i, log_body);
  CHECK_EQ(norder, 0);  /* nothing runs before main parks or yields */
  CHECK_EQ(gl_hub_live(), 6);
  gl_hub_wait_others();
  CHECK_EQ(norder, 5);
  for (i = 0; i < 5; i++) CHECK_EQ(order[i], i);
  CHECK_EQ(gl_hub_live(), 1);
}

static void yield_body(job *j) {
  int i;
  for (i = 0; i < 3; i++) {
    logid(j->id);
    CHECK_EQ(gl_hub_yield(), GL_OK);
  }
}

TEST(hub_yield_interleaves_tasks) {
  static job a, b;
  static const int want[] = {0, 1, 0, 1, 0, 1};
  size_t i;
  hub_setup(EVERYONE_PRIVATE);
  job_spawn(&a, 0, yield_body);
  job_spawn(&b, 1, yield_body);
  gl_hub_wait_others();
  CHECK_EQ(norder, 6);
  for (i = 0; i < 6; i++) CHECK_EQ(order[i], want[i]);
}

static void yield50_body(job *j) {
  int i;
  for (i = 0; i < 50; i++) {
    logid(j->id);
    CHECK_EQ(gl_hub_yield(), GL_OK);
  }
}

/* Tasks that yield switch straight to one another, and through the hub
 * every so often (to poll): either way in strict turn. */
TEST(hub_yield_keeps_turns_past_polls) {
  static job jobs[3];
  size_t i;
  hub_setup(EVERYONE_PRIVATE);
  for (i = 0; i < 3; i++) job_spawn(&jobs[i], (int)i, yield50_body);
  gl_hub_wait_others();
  CHECK_EQ(norder, 150);
  for (i = 0; i < 150; i++) CHECK_EQ(order[i], (int)(i % 3));
}

static gl_waitq pingq, pongq;

static void ping_body(job *j) {
  gl_waiter w;
  int i;
  for (i = 0; i < 40; i++) {
    logid(j->id);
    gl_waitq_wake_one(&pongq, GL_OK);
    gl_waiter_init(&w, GL_WAIT_UNKNOWN, NULL);
    CHECK_EQ(gl_waitq_wait(&pingq, &w, UINT64_MAX), GL_OK);
  }
  gl_waitq_wake_one(&pongq, GL_OK);
}

static void pong_body(job *j) {
  gl_waiter w;
  int i;
  for (i = 0; i < 40; i++) {
    gl_waiter_init(&w, GL_WAIT_UNKNOWN, NULL);
    CHECK_EQ(gl_waitq_wait(&pongq, &w, UINT64_MAX), GL_OK);
    logid(j->id);
    gl_waitq_wake_one(&pingq, GL_OK);
  }
}

/* A park and a wake back and forth: each park switches straight to the
 * task just woken. */
static void ping_pong_case(size_t private_stacks) {
  static job a, b;
  size_t i;
  hub_setup(private_stacks);
  gl_waitq_init(&pingq);
  gl_waitq_init(&pongq);
  job_spawn(&b, 1, pong_body);
  job_spawn(&a, 0, ping_body);
  gl_hub_wait_others();
  CHECK_EQ(norder, 80);
  for (i = 0; i < 80; i++) CHECK_EQ(order[i], (int)(i % 2));
  CHECK(a.done && b.done);
}

TEST(hub_park_and_wake_ping_pong) { ping_pong_case(EVERYONE_PRIVATE); }
TEST(hub_park_and_wake_ping_pong_on_shared_stacks) { ping_pong_case(0); }

/* The main task takes part in the round too. */
TEST(hub_yield_from_main_runs_others_once) {
  static job a, b;
  hub_setup(EVERYONE_PRIVATE);
  job_spawn(&a, 0, yield_body);
  job_spawn(&b, 1, yield_body);
  CHECK_EQ(gl_hub_yield(), GL_OK);
  CHECK_EQ(norder, 2);
  CHECK_EQ(gl_hub_yield(), GL_OK);
  CHECK_EQ(norder, 4);
  gl_hub_wait_others();
  CHECK_EQ(norder, 6);
}

static void many_body(job *j) {
  int i;
  for (i = 0; i < 3; i++) CHECK_EQ(gl_hub_yield(), GL_OK);
  j->rc = GL_OK;
}

/* More tasks than get a private stack: the rest share. */
TEST(hub_runs_10000_tasks) {
  /* Fewer under sanitizers: LeakSanitizer reads every stack at exit. */
  enum { N = GL_ASAN ? 2000 : 10000 };
  job *jobs = calloc(N, sizeof *jobs);
  gl_hub_stats st;
  int i;
  hub_setup(EVERYONE_PRIVATE);
  for (i = 0; i < N; i++) job_spawn(&jobs[i], i, many_body);
  CHECK_EQ(gl_hub_yield(), GL_OK);
  gl_hub_getstats(&st);
  CHECK_EQ(st.live, N + 1);
  if (gl_coro_can_share()) CHECK_LE(st.private_stacks, 1024);
  gl_hub_wait_others();
  for (i = 0; i < N; i++) CHECK(jobs[i].done && jobs[i].rc == GL_OK);
  gl_hub_getstats(&st);
  CHECK_EQ(st.live, 1);
  CHECK_EQ(st.private_stacks, 0);
  CHECK_EQ(st.displaced, 0);
  CHECK_EQ(st.saved_bytes, 0);
  free(jobs);
}
/* }====== */

/* {====== Sleeps and timers ====== */

static void sleep_body(job *j) {
  uint64_t t0 = gl_clock_now();
  j->rc = gl_hub_sleep(j->ns);
  j->elapsed = gl_clock_now() - t0;
  logid(j->id);
}

TEST(hub_sleep_wakes_in_deadline_order) {
  static job jobs[4];
  static const uint64_t ms[] = {40, 10, 25, 10};
  static const int want[] = {1, 3, 2, 0};
  int i;
  hub_setup(EVERYONE_PRIVATE);
  for (i = 0; i < 4; i++) {
    job_spawn(&jobs[i], i, sleep_body);
    jobs[i].ns = ms[i] * MS;
  }
  gl_hub_wait_others();
  for (i = 0; i < 4; i++) {
    CHECK_EQ(order[i], want[i]);
    CHECK_EQ(jobs[i].rc, GL_OK);
    CHECK_UGE(jobs[i].elapsed, jobs[i].ns);
  }
}

static void sleeps_body(job *j) {
  int i;
  for (i = 0; i < 40; i++) {
    uint64_t ns = (uint64_t)(i % 7) * 350000 + (uint64_t)i * 1000;
    uint64_t t0 = gl_clock_now(), took;
    CHECK_EQ(gl_hub_sleep(ns), GL_OK);
    took = gl_clock_now() - t0;
    CHECK_UGE(took, ns);
  }
  j->rc = GL_OK;
}

/* Sub-millisecond and odd durations: the loop's clock counts whole
 * milliseconds, the hub's nanoseconds. */
TEST(hub_sleep_never_wakes_early) {
  static job a, b;
  hub_setup(EVERYONE_PRIVATE);
  job_spawn(&a, 0, sleeps_body);
  job_spawn(&b, 1, sleeps_body);
  gl_hub_wait_others();
  CHECK_EQ(a.rc, GL_OK);
  CHECK_EQ(b.rc, GL_OK);
}

TEST(hub_sleep_zero_lets_others_run) {
  static job a;
  hub_setup(EVERYONE_PRIVATE);
  job_spawn(&a, 7, log_body);
  CHECK_EQ(gl_hub_sleep(0), GL_OK);
  CHECK_EQ(norder, 1);
  CHECK_EQ(order[0], 7);
}

static void timer_cb(gl_timer *t) { logid((int)t->seq); }

/* Equal deadlines run in the order the timers were started; a stopped
 * timer never runs. */
TEST(hub_timer_ties_fire_in_start_order) {
  static gl_timer t[5];
  uint64_t due;
  int i;
  hub_setup(EVERYONE_PRIVATE);
  due = gl_clock_now() + 5 * MS;
  for (i = 0; i < 5; i++) {
    t[i].cb = timer_cb;
    gl_timer_start(&t[i], i == 4 ? due - MS : due);
  }
  gl_timer_stop(&t[2]);
  gl_timer_stop(&t[2]);  /* stopping a stopped timer does nothing */
  CHECK_EQ(gl_hub_sleep(10 * MS), GL_OK);
  CHECK_EQ(norder, 4);
  CHECK_EQ(order[0], (int)t[4].seq);
  CHECK_EQ(order[1], (int)t[0].seq);
  CHECK_EQ(order[2], (int)t[1].seq);
  CHECK_EQ(order[3], (int)t[3].seq);
}

static void busy_body(job *j) {
  uint64_t t0 = gl_clock_now();
  while (gl_clock_now() - t0 < j->ns) {}  /* hogs the hub, never parks */
  j->rc = GL_OK;
}

static void pipe_body(job *j) {
  char c;
  j->rc = gl_hub_wait_fd(j->fd, UV_READABLE, UINT64_MAX);
  CHECK_EQ(read(j->fd, &c, 1), 1);
}

/* A deadline that passes while a task hogs the hub wakes its task as soon
 * as the hub gets control back, even though a poll handle keeps the loop
 * alive with no timer due: the loop must not then block in poll. */
TEST(hub_timer_expired_during_long_round_wakes_at_once) {
  static job hog, reader;
  int fds[2];
  uint64_t t0, took;
  hub_setup(EVERYONE_PRIVATE);
  alarm(30);
  CHECK_EQ(pipe(fds), 0);
  job_spawn(&reader, 0, pipe_body);
  reader.fd = fds[0];
  job_spawn(&hog, 1, busy_body);
  hog.ns = 50 * MS;
  t0 = gl_clock_now();
  CHECK_EQ(gl_hub_sleep(10 * MS), GL_OK);
  took = gl_clock_now() - t0;
  CHECK_UGE(took, 50 * MS);
  CHECK_ULT(took, 250 * MS);
  CHECK_EQ(write(fds[1], "x", 1), 1);
  gl_hub_wait_others();
  CHECK_EQ(reader.rc, GL_OK);
}

TEST(hub_ns_converts_seconds) {
  CHECK_UEQ(gl_hub_ns(0), 0);
  CHECK_UEQ(gl_hub_ns(-1), 0);
  CHECK_UEQ(gl_hub_ns(NAN), 0);
  CHECK_UEQ(gl_hub_ns(1.5), 1500000000ull);
  CHECK_UEQ(gl_hub_ns(1e-9), 1);
  CHECK_UGE(gl_hub_ns(1e-10), 1);  /* rounded up, never to zero */
  CHECK_UGE(gl_hub_ns(1e300), 1000000000ull * 1000000000ull);
}
/* }====== */

/* {====== Wait queues ====== */

static void wait_body(job *j) {
  uint64_t t0 = gl_clock_now();
  char canary[64];
  memset(canary, j->id & 0x7f, sizeof canary);
  j->rc = gl_waitq_wait(j->q, &j->w, j->ns ? j->ns : UINT64_MAX);
  j->elapsed = gl_clock_now() - t0;
  CHECK_PTR_EQ(j->w.q, NULL);
  CHECK_EQ(canary[0], j->id & 0x7f);  /* its frames came back intact */
  CHECK_EQ(canary[63], j->id & 0x7f);
  logid(j->id);
}

/* The waiter lives on the task's stack, as in real blocking calls. */
static void stackwait_body(job *j) {
  gl_waiter w;
  char canary[64];
  memset(&w, 0, sizeof w);
  memset(canary, j->id & 0x7f, sizeof canary);
  j->rc = gl_waitq_wait(j->q, &w, j->ns ? j->ns : UINT64_MAX);
  CHECK_PTR_EQ(w.q, NULL);
  CHECK_EQ(canary[0], j->id & 0x7f);
  CHECK_EQ(canary[63], j->id & 0x7f);
  logid(j->id);
}

static void fifo_case(int n, void (*body)(job *j)) {
  gl_waitq q = GL_WAITQ_INIT;
  job *jobs = calloc((size_t)n, sizeof *jobs);
  int i;
  for (i = 0; i < n; i++) {
    job_spawn(&jobs[i], i, body);
    jobs[i].q = &q;
  }
  yield_until_waiting(&q, (size_t)n);
  CHECK_EQ(norder, 0);
  for (i = 0; i < n; i++) {
    gl_waiter *w = gl_waitq_wake_one(&q, i % 2 ? GL_OK : GL_ECLOSED);
    CHECK(w != NULL);
    CHECK_PTR_EQ(w->task, &jobs[i].task);
    CHECK_EQ(q.n, (size_t)(n - i - 1));
  }
  CHECK_PTR_EQ(gl_waitq_wake_one(&q, GL_OK), NULL);
  gl_hub_wait_others();
  CHECK_EQ(norder, n);
  for (i = 0; i < n; i++) {
    CHECK_EQ(order[i], i);
    CHECK_EQ(jobs[i].rc, i % 2 ? GL_OK : GL_ECLOSED);
  }
  free(jobs);
}

TEST(waitq_wakes_in_fifo_order) {
  hub_setup(EVERYONE_PRIVATE);
  fifo_case(5, wait_body);
}

TEST(waitq_wakes_in_fifo_order_on_shared_stacks) {
  hub_setup(0);
  fifo_case(300, stackwait_body);
  check_shared();
}

static void wake_all_case(int n) {
  gl_waitq q = GL_WAITQ_INIT;
  job *jobs = calloc((size_t)n, sizeof *jobs);
  int i;
  for (i = 0; i < n; i++) {
    job_spawn(&jobs[i], i, stackwait_body);
    jobs[i].q = &q;
  }
  yield_until_waiting(&q, (size_t)n);
  CHECK_EQ(gl_waitq_wake_all(&q, GL_ECLOSED), (size_t)n);
  CHECK_EQ(q.n, 0);
  CHECK_EQ(gl_waitq_wake_all(&q, GL_OK), 0);
  gl_hub_wait_others();
  for (i = 0; i < n; i++) {
    CHECK_EQ(order[i], i);
    CHECK_EQ(jobs[i].rc, GL_ECLOSED);
  }
  free(jobs);
}

TEST(waitq_wake_all_wakes_every_waiter_in_order) {
  hub_setup(EVERYONE_PRIVATE);
  wake_all_case(5);
}

TEST(waitq_wake_all_on_shared_stacks) {
  hub_setup(0);
  wake_all_case(300);
  check_shared();
}

/* Every third waiter has a timeout; those leave the queue with
 * GL_ETIMEDOUT, never early, and wake_one then wakes the others in
 * order, never a waiter that is gone. */
static void timeout_case(int n, void (*body)(job *j)) {
  gl_waitq q = GL_WAITQ_INIT;
  job *jobs = calloc((size_t)n, sizeof *jobs);
  int i, timed = 0;
  for (i = 0; i < n; i++) {
    job_spawn(&jobs[i], i, body);
    jobs[i].q = &q;
    if (i % 3 == 0) {
      jobs[i].ns = (5 + (uint64_t)(i % 5)) * MS;
      timed++;
    }
  }
  /* Until every task waits or timed out: the hub serves a deadline as
   * soon as it passes, even while it is still starting the others. */
  for (i = 0; q.n + (size_t)norder < (size_t)n; i++) {
    CHECK_LT(i, 1000);
    CHECK_EQ(gl_hub_yield(), GL_OK);
  }
  CHECK_EQ(gl_hub_sleep(30 * MS), GL_OK);
  CHECK_EQ(q.n, (size_t)(n - timed));
  CHECK_EQ(norder, timed);
  for (i = 0; i < n; i++) {
    if (i % 3 == 0) {
      CHECK_EQ(jobs[i].rc, GL_ETIMEDOUT);
      CHECK(jobs[i].done);
    } else {
      gl_waiter *w = gl_waitq_wake_one(&q, GL_OK);
      CHECK(w != NULL);
      CHECK_PTR_EQ(w->task, &jobs[i].task);
    }
  }
  CHECK_EQ(q.n, 0);
  gl_hub_wait_others();
  for (i = 0; i < n; i++) {
    if (i % 3 == 0) {
      if (body == wait_body) CHECK_UGE(jobs[i].elapsed, jobs[i].ns);
    } else {
      CHECK_EQ(jobs[i].rc, GL_OK);
    }
  }
  free(jobs);
}

TEST(waitq_timeout_leaves_queue) {
  hub_setup(EVERYONE_PRIVATE);
  timeout_case(6, wait_body);
}

TEST(waitq_timeout_leaves_queue_on_shared_stacks) {
  hub_setup(0);
  timeout_case(300, stackwait_body);
  check_shared();
}

static void waker_body(job *j) {
  CHECK_EQ(gl_hub_sleep(j->ns), GL_OK);
  CHECK(gl_waitq_wake_one(j->q, GL_OK) != NULL);
}

/* A wake just before the timeout: GL_OK, and the timer is gone. */
TEST(waitq_wake_beats_timeout) {
  static job a, b;
  gl_waitq q = GL_WAITQ_INIT;
  hub_setup(EVERYONE_PRIVATE);
  job_spawn(&a, 0, wait_body);
  a.q = &q;
  a.ns = 50 * MS;
  job_spawn(&b, 1, waker_body);
  b.q = &q;
  b.ns = 5 * MS;
  gl_hub_wait_others();
  CHECK_EQ(a.rc, GL_OK);
  CHECK_ULT(a.elapsed, 50 * MS);
  CHECK_EQ(a.w.timer.slot, 0);
  CHECK_EQ(gl_hub_sleep(60 * MS), GL_OK);  /* no stale timer fires */
}
/* }====== */

/* {====== Interrupts ======
 * The rules of hub.h, one by one; spec/interrupt_spec.lua checks them
 * again through the Lua objects. */

/* Rules 1 and 2: several causes pending at once, each once, delivered
 * kill first, then Timeouts in the order they fired; a kicked waiter
 * stays in its queue until it runs. */
static void interrupt_case(int n) {
  gl_waitq q = GL_WAITQ_INIT;
  job *jobs = calloc((size_t)n, sizeof *jobs);
  int i;
  for (i = 0; i < n; i++) {
    job_spawn(&jobs[i], i, stackwait_body);
    jobs[i].q = &q;
  }
  yield_until_waiting(&q, (size_t)n);
  for (i = 0; i < n; i += 2) {
    CHECK_EQ(jobs[i].task.state, GL_TASK_PARKED);
    gl_hub_interrupt(&jobs[i].task, &jobs[i].tmo[1]);
    gl_hub_interrupt(&jobs[i].task, &jobs[i].tmo[0]);
    gl_hub_interrupt(&jobs[i].task, &jobs[i].kill);
    gl_hub_interrupt(&jobs[i].task, &jobs[i].tmo[1]);  /* pending: kept */
    CHECK_EQ(jobs[i].task.state, GL_TASK_READY);
  }
  CHECK_EQ(q.n, (size_t)n);  /* kicked, still in the queue */
  CHECK_EQ(gl_hub_yield(), GL_OK);
  CHECK_EQ(q.n, (size_t)(n - (n + 1) / 2));  /* they ran and left */
  for (i = 1; i < n; i += 2)
    CHECK_PTR_EQ(gl_waitq_wake_one(&q, GL_OK)->task, &jobs[i].task);
  gl_hub_wait_others();
  for (i = 0; i < n; i++) {
    if (i % 2 == 0) {
      CHECK_EQ(jobs[i].rc, GL_EINTR);
      CHECK_PTR_EQ(gl_hub_take_interrupt(&jobs[i].task), &jobs[i].kill);
      CHECK_PTR_EQ(gl_hub_take_interrupt(&jobs[i].task), &jobs[i].tmo[1]);
      CHECK_PTR_EQ(gl_hub_take_interrupt(&jobs[i].task), &jobs[i].tmo[0]);
      CHECK_PTR_EQ(gl_hub_take_interrupt(&jobs[i].task), NULL);
    } else {
      CHECK_EQ(jobs[i].rc, GL_OK);
      CHECK(!gl_hub_pending(&jobs[i].task));
    }
  }
  free(jobs);
}

TEST(hub_interrupt_wakes_parked_task) {
  hub_setup(EVERYONE_PRIVATE);
  interrupt_case(4);
}

TEST(hub_interrupt_wakes_parked_task_on_shared_stacks) {
  hub_setup(0);
  interrupt_case(300);
  check_shared();
}

static void self_interrupt_body(job *j) {
  gl_waitq q = GL_WAITQ_INIT;
  gl_waiter w;
  uint64_t t0;
  memset(&w, 0, sizeof w);
  gl_hub_interrupt(&j->task, &j->tmo[0]);
  t0 = gl_clock_now();
  CHECK_EQ(gl_waitq_wait(&q, &w, 100 * MS), GL_EINTR);
  CHECK_ULT(gl_clock_now() - t0, 50 * MS);  /* at once */
  CHECK_EQ(q.n, 0);
  CHECK_PTR_EQ(q.head, NULL);
  CHECK_PTR_EQ(w.q, NULL);
  CHECK_EQ(gl_hub_sleep(100 * MS), GL_EINTR);
  CHECK_EQ(gl_hub_yield(), GL_EINTR);
  CHECK_EQ(gl_hub_cancel(&j->task, &j->tmo[1]), 0);  /* not pending */
  CHECK(gl_cause_pending(&j->tmo[0]));
  CHECK_EQ(gl_hub_cancel(&j->task, &j->tmo[0]), 1);
  CHECK(!gl_cause_pending(&j->tmo[0]));
  CHECK_PTR_EQ(gl_hub_take_interrupt(&j->task), NULL);
  CHECK_EQ(gl_hub_sleep(1 * MS), GL_OK);  /* parks normally again */
  gl_hub_interrupt(&j->task, &j->tmo[1]);
  CHECK_PTR_EQ(gl_hub_take_interrupt(&j->task), &j->tmo[1]);
  CHECK_EQ(gl_hub_yield(), GL_OK);
  j->rc = GL_OK;
}

TEST(hub_interrupt_before_park_returns_at_once) {
  static job a;
  hub_setup(EVERYONE_PRIVATE);
  job_spawn(&a, 0, self_interrupt_body);
  gl_hub_wait_others();
  CHECK_EQ(a.rc, GL_OK);
}

/* Cancelling one cause leaves the others (rule 4), in their order. */
TEST(hub_cancel_removes_only_its_cause) {
  static job a;
  hub_setup(EVERYONE_PRIVATE);
  job_spawn(&a, 0, log_body);  /* never runs before the checks */
  gl_hub_interrupt(&a.task, &a.tmo[0]);
  gl_hub_interrupt(&a.task, &a.kill);
  gl_hub_interrupt(&a.task, &a.tmo[1]);
  CHECK_EQ(gl_hub_cancel(&a.task, &a.kill), 1);
  CHECK_EQ(gl_hub_cancel(&a.task, &a.kill), 0);
  CHECK_PTR_EQ(a.task.pending, &a.tmo[0]);
  CHECK_EQ(gl_hub_cancel(&a.task, &a.tmo[1]), 1);
  CHECK_PTR_EQ(gl_hub_take_interrupt(&a.task), &a.tmo[0]);
  CHECK_PTR_EQ(gl_hub_take_interrupt(&a.task), NULL);
  gl_hub_wait_others();
}

static void sleeper_body(job *j) { j->rc = gl_hub_sleep(10000 * MS); }

/* An interrupted sleep leaves no timer behind: the loop ends at once. */
TEST(hub_interrupt_cancels_sleep) {
  static job a;
  static gl_cause mine = {NULL, NULL, GL_CAUSE_KILL, 0};
  uint64_t t0;
  hub_setup(EVERYONE_PRIVATE);
  job_spawn(&a, 0, sleeper_body);
  CHECK_EQ(gl_hub_yield(), GL_OK);
  t0 = gl_clock_now();
  gl_hub_interrupt(&a.task, &a.kill);
  gl_hub_interrupt(&main_task, &mine);  /* wait_others takes it */
  gl_hub_wait_others();
  CHECK_EQ(a.rc, GL_EINTR);
  CHECK_ULT(gl_clock_now() - t0, 1000 * MS);
  CHECK(!gl_hub_pending(&main_task));
  CHECK_PTR_EQ(gl_hub_take_interrupt(&a.task), &a.kill);
  gl_hub_interrupt(&a.task, &a.kill);  /* dead: ignored */
  CHECK(!gl_hub_pending(&a.task));
  CHECK(!gl_cause_pending(&a.kill));
}

/* Rule 3: a waker that comes after the kick, before the task ran, wins;
 * the cause waits for the next park. */
static void kicked_then_woken_body(job *j) {
  gl_waiter w;
  memset(&w, 0, sizeof w);
  j->rc = gl_waitq_wait(j->q, &w, UINT64_MAX);
  CHECK(gl_hub_pending(&j->task));
  CHECK_EQ(gl_hub_yield(), GL_EINTR);
  CHECK_PTR_EQ(gl_hub_take_interrupt(&j->task), &j->tmo[0]);
}

static void kicked_then_woken_case(size_t private_stacks) {
  static job a;
  gl_waitq q = GL_WAITQ_INIT;
  gl_waiter *w;
  hub_setup(private_stacks);
  job_spawn(&a, 0, kicked_then_woken_body);
  a.q = &q;
  yield_until_waiting(&q, 1);
  gl_hub_interrupt(&a.task, &a.tmo[0]);
  w = gl_waitq_wake_one(&q, GL_ECLOSED);  /* still linked: found */
  CHECK(w != NULL);
  CHECK_PTR_EQ(w->task, &a.task);
  gl_hub_wait_others();
  CHECK_EQ(a.rc, GL_ECLOSED);
}

TEST(hub_waker_after_kick_wins) { kicked_then_woken_case(EVERYONE_PRIVATE); }
TEST(hub_waker_after_kick_wins_on_shared_stacks) { kicked_then_woken_case(0); }

/* Rule 3: the park's own timeout gives way to an interrupt, in both
 * orders: a is kicked, then its timeout passes; b's timeout passes, then
 * it is kicked; both before they run.  The clock jumps past the deadlines
 * (as a virtual clock does) while the hog runs, so no wall time counts. */
static job *late_kicked;

static void jump_then_kick_body(job *j) {
  gl_clock_advance(j->ns);
  gl_clock_expire();  /* as the hub would after this task */
  gl_hub_interrupt(&late_kicked->task, &late_kicked->tmo[0]);
}

TEST(hub_own_timeout_gives_way_to_interrupt) {
  static job a, b, hog;
  gl_waitq q = GL_WAITQ_INIT;
  hub_setup(EVERYONE_PRIVATE);
  job_spawn(&a, 0, stackwait_body);
  a.q = &q;
  a.ns = 3600000 * MS;
  job_spawn(&b, 1, stackwait_body);
  b.q = &q;
  b.ns = 3600000 * MS;
  yield_until_waiting(&q, 2);
  job_spawn(&hog, 2, jump_then_kick_body);
  hog.ns = 7200000 * MS;
  late_kicked = &b;
  gl_hub_interrupt(&a.task, &a.tmo[0]);  /* runs after the hog */
  gl_hub_wait_others();
  CHECK_EQ(a.rc, GL_EINTR);
  CHECK_EQ(b.rc, GL_EINTR);
  CHECK_PTR_EQ(gl_hub_take_interrupt(&a.task), &a.tmo[0]);
  CHECK_PTR_EQ(gl_hub_take_interrupt(&b.task), &b.tmo[0]);
}

/* Rule 4: kicked, its cause cancelled before it ran: it stays parked at
 * its place in the queue, with its deadline, and never notices. */
static void spurious_case(int n, uint64_t ns) {
  gl_waitq q = GL_WAITQ_INIT;
  job *jobs = calloc((size_t)n, sizeof *jobs);
  int i;
  for (i = 0; i < n; i++) {
    job_spawn(&jobs[i], i, stackwait_body);
    jobs[i].q = &q;
    jobs[i].ns = ns;
  }
  yield_until_waiting(&q, (size_t)n);
  for (i = 0; i < n; i += 2) gl_hub_interrupt(&jobs[i].task, &jobs[i].tmo[0]);
  for (i = 0; i < n; i += 2) gl_hub_cancel(&jobs[i].task, &jobs[i].tmo[0]);
  CHECK_EQ(gl_hub_yield(), GL_OK);
  CHECK_EQ(gl_hub_yield(), GL_OK);
  CHECK_EQ(norder, 0);
  CHECK_EQ(q.n, (size_t)n);
  for (i = 0; i < n; i++) CHECK_EQ(jobs[i].task.state, GL_TASK_PARKED);
  if (ns == 0) {
    for (i = 0; i < n; i++)
      CHECK_PTR_EQ(gl_waitq_wake_one(&q, GL_OK)->task, &jobs[i].task);
  } else {
    gl_clock_advance(ns);  /* their deadlines, all at once */
  }
  gl_hub_wait_others();
  CHECK_EQ(norder, n);
  for (i = 0; i < n; i++) {
    CHECK_EQ(order[i], i);
    CHECK_EQ(jobs[i].rc, ns == 0 ? GL_OK : GL_ETIMEDOUT);
  }
  free(jobs);
}

TEST(hub_spurious_wake_parks_again) {
  hub_setup(EVERYONE_PRIVATE);
  spurious_case(5, 0);
}

TEST(hub_spurious_wake_keeps_deadline) {
  hub_setup(EVERYONE_PRIVATE);
  spurious_case(5, 3600000 * MS);
}

TEST(hub_spurious_wake_parks_again_on_shared_stacks) {
  hub_setup(0);
  spurious_case(300, 0);
  check_shared();
}
/* }====== */

/* {====== Labels ====== */

static void pipe_wait_body(job *j) {
  j->rc = gl_hub_wait_fd(j->fd, UV_READABLE, 10000 * MS);
}

/* Every park says what it waits on; the names of the kinds, and which
 * wait on the outside world. */
TEST(hub_parks_carry_labels) {
  static job a, b;
  int fds[2];
  hub_setup(EVERYONE_PRIVATE);
  CHECK_EQ(pipe(fds), 0);
  job_spawn(&a, 0, sleeper_body);
  job_spawn(&b, 1, pipe_wait_body);
  b.fd = fds[0];
  CHECK_EQ(gl_hub_yield(), GL_OK);
  CHECK_EQ(a.task.state, GL_TASK_PARKED);
  CHECK_EQ(a.task.waiter->kind, GL_WAIT_SLEEP);
  CHECK_PTR_EQ(a.task.waiter->obj, NULL);
  CHECK_EQ(b.task.waiter->kind, GL_WAIT_FD);
  CHECK_EQ(b.task.waiter->n, fds[0]);
  CHECK(!GL_WAIT_ON_IO(a.task.waiter->kind));
  CHECK(GL_WAIT_ON_IO(b.task.waiter->kind));
  CHECK_STR_EQ(gl_wait_name(GL_WAIT_SLEEP), "sleep");
  CHECK_STR_EQ(gl_wait_name(GL_WAIT_QUEUE_GET), "queue get");
  CHECK_STR_EQ(gl_wait_name(GL_WAIT_RECEIVE), "receive");
  CHECK_STR_EQ(gl_wait_name(GL_WAIT_SIGNAL), "signal");
  CHECK_STR_EQ(gl_wait_name(GL_WAIT_NKINDS), "unknown");
  gl_hub_interrupt(&a.task, &a.kill);
  CHECK_EQ(write(fds[1], "x", 1), 1);
  gl_hub_wait_others();
  CHECK_EQ(a.rc, GL_EINTR);
  CHECK_EQ(b.rc, GL_OK);
  close(fds[0]);
  close(fds[1]);
}
/* }====== */

/* {====== Ending ====== */

static void nap_body(job *j) {
  int i;
  for (i = 0; i < j->id % 4; i++) CHECK_EQ(gl_hub_yield(), GL_OK);
  CHECK_EQ(gl_hub_sleep((uint64_t)(j->id % 3) * MS), GL_OK);
  j->rc = GL_OK;
}

TEST(hub_wait_others_returns_after_all_ended) {
  static job jobs[20];
  int i;
  hub_setup(EVERYONE_PRIVATE);
  for (i = 0; i < 20; i++) job_spawn(&jobs[i], i, nap_body);
  gl_hub_wait_others();
  for (i = 0; i < 20; i++) {
    CHECK(jobs[i].done);
    CHECK_EQ(jobs[i].task.state, GL_TASK_DEAD);
  }
  CHECK_EQ(gl_hub_live(), 1);
  gl_hub_wait_others();  /* nothing left: returns at once */
}

static void forever_body(job *j) {
  gl_waitq q = GL_WAITQ_INIT;
  gl_waiter w;
  memset(&w, 0, sizeof w);
  j->rc = gl_waitq_wait(&q, &w, UINT64_MAX);
}

static void report_deadlock(void) {
  fputs("DEADLOCK\n", stderr);
  _exit(7);
}

static void deadlock_child(void *hook) {
  static job a;
  hub_setup(EVERYONE_PRIVATE);
  gl_hub_deadlock_hook = (void (*)(void))(uintptr_t)hook;
  job_spawn(&a, 0, forever_body);
  gl_hub_wait_others();
  fputs("wait_others returned\n", stderr);
}

TEST(hub_deadlock_hook_is_called) {
  CHECK_CHILD(deadlock_child, (void *)(uintptr_t)report_deadlock,
              TEST_EXITS_WITH(7), "DEADLOCK");
}

TEST(hub_deadlock_without_hook_aborts) {
  CHECK_CHILD(deadlock_child, NULL, TEST_KILLED_BY(SIGABRT),
              "greenlua: fatal: deadlock");
}

static int depth_reached;

static int deep(int n) {
  volatile char buf[256];
  buf[0] = (char)n;
  depth_reached = n;
  if (n == INT32_MAX) return 0;  /* never: the stack ends long before */
  return deep(n + 1) + buf[0];
}

static void overflow_body(job *j) {
  j->rc = deep(0);
}

static void overflow_child(void *ud) {
  static job a;
  GL_UNUSED(ud);
  hub_setup(EVERYONE_PRIVATE);
  job_spawn(&a, 0, overflow_body);
  a.task.name = "deep";
  gl_hub_wait_others();
}

TEST(hub_overflow_names_greenthread) {
  if (GL_ASAN)  /* AddressSanitizer reports it itself */
    CHECK_CHILD(overflow_child, NULL, TEST_EXITS_WITH(1), "stack-overflow");
  else
    CHECK_CHILD(overflow_child, NULL, TEST_KILLED_BY(SIGABRT),
                "stack overflow in greenthread 'deep'");
}
/* }====== */

/* {====== File descriptors ====== */

static void fd_body(job *j) {
  char c = 0;
  uint64_t t0 = gl_clock_now();
  if (j->ns) {
    CHECK_EQ(gl_hub_wait_fd(j->fd, UV_READABLE, j->ns), GL_ETIMEDOUT);
    CHECK_UGE(gl_clock_now() - t0, j->ns);
  }
  j->rc = gl_hub_wait_fd(j->fd, UV_READABLE, UINT64_MAX);
  CHECK_EQ(read(j->fd, &c, 1), 1);
  CHECK_EQ(c, 'a' + j->id % 26);
  logid(j->id);
}

static void fd_case(int n) {
  job *jobs = calloc((size_t)n, sizeof *jobs);
  int (*fds)[2] = calloc((size_t)n, sizeof *fds);
  int i;
  alarm(30);  /* a wrong task woken blocks in read(): fail, do not hang */
  for (i = 0; i < n; i++) {
    CHECK_EQ(pipe(fds[i]), 0);
    job_spawn(&jobs[i], i, fd_body);
    jobs[i].fd = fds[i][0];
    jobs[i].ns = i == 0 ? 5 * MS : 0;
  }
  CHECK_EQ(gl_hub_sleep(20 * MS), GL_OK);
  for (i = n - 1; i >= 0; i--) {
    char c = (char)('a' + i % 26);
    int spins;
    CHECK_EQ(write(fds[i][1], &c, 1), 1);
    /* until its reader ran: one sleep(0) is not enough when the hub polls
     * less often than the writes come (a slow, loaded sanitizer build) */
    for (spins = 0; norder < (size_t)(n - i); spins++) {
      CHECK_LT(spins, 100000);
      CHECK_EQ(gl_hub_sleep(0), GL_OK);
    }
  }
  gl_hub_wait_others();
  CHECK_EQ(norder, n);
  for (i = 0; i < n; i++) {
    CHECK_EQ(jobs[i].rc, GL_OK);
    CHECK_EQ(order[i], n - 1 - i);
    close(fds[i][0]);
    close(fds[i][1]);
  }
  free(jobs);
  free(fds);
}

TEST(hub_wait_fd_wakes_on_readable) {
  hub_setup(EVERYONE_PRIVATE);
  fd_case(3);
}

/* The poll handle must find the waiter where it is: a displaced task's
 * waiter has moved off the shared stack. */
TEST(hub_wait_fd_on_shared_stacks) {
  hub_setup(0);
  fd_case(200);
  check_shared();
}

TEST(hub_wait_fd_rejects_bad_fd) {
  hub_setup(EVERYONE_PRIVATE);
  CHECK_EQ(gl_hub_wait_fd(-1, UV_READABLE, MS), -1);
}
/* }====== */

/* {====== Shared stacks ====== */

static void locals_body(job *j) {
  unsigned char pattern[512];
  unsigned char *self = pattern;  /* a pointer into its own stack */
  size_t i;
  int round;
  for (i = 0; i < sizeof pattern; i++)
    pattern[i] = (unsigned char)(j->id * 7 + (int)i);
  for (round = 0; round < 5; round++) {
    CHECK_EQ(gl_hub_yield(), GL_OK);
    CHECK_PTR_EQ(self, pattern);
    for (i = 0; i < sizeof pattern; i++)
      CHECK_EQ(self[i], (unsigned char)(j->id * 7 + (int)i));
    self[0] = (unsigned char)(j->id * 7 + round);
    self[0] = (unsigned char)(j->id * 7);
  }
  j->rc = GL_OK;
}

/* Frames copied away and back keep their addresses and contents. */
TEST(hub_shared_stacks_keep_frames) {
  enum { N = 500 };
  job *jobs = calloc(N, sizeof *jobs);
  gl_hub_stats st;
  int i;
  hub_setup(0);
  for (i = 0; i < N; i++) job_spawn(&jobs[i], i, locals_body);
  CHECK_EQ(gl_hub_yield(), GL_OK);
  gl_hub_getstats(&st);
  CHECK_EQ(st.live, N + 1);
  if (gl_coro_can_share()) {
    CHECK_EQ(st.private_stacks, 0);
    CHECK_GT(st.displaced, 0);
    CHECK_GT(st.saved_bytes, 512 * st.displaced);
  }
  gl_hub_wait_others();
  for (i = 0; i < N; i++) CHECK_EQ(jobs[i].rc, GL_OK);
  gl_hub_getstats(&st);
  CHECK_EQ(st.displaced, 0);
  CHECK_EQ(st.saved_bytes, 0);
  check_shared();
  free(jobs);
}

static void sleep_shared_body(job *j) {
  uint64_t t0 = gl_clock_now();
  CHECK_EQ(gl_hub_sleep(j->ns), GL_OK);
  j->elapsed = gl_clock_now() - t0;
  logid(j->id);
}

/* Timers of displaced tasks fire, in deadline order: the even tasks
 * first, then the odd ones (as long as starting them all takes less than
 * the 240 ms between the two groups). */
TEST(hub_sleep_on_shared_stacks) {
  enum { N = 300 };
  job *jobs = calloc(N, sizeof *jobs);
  int i;
  hub_setup(0);
  for (i = 0; i < N; i++) {
    job_spawn(&jobs[i], i, sleep_shared_body);
    jobs[i].ns = (i % 2 ? 250 : 10) * MS + (uint64_t)i * 10000;
  }
  gl_hub_wait_others();
  CHECK_EQ(norder, N);
  for (i = 0; i < N; i++) {
    CHECK_EQ(order[i], i < N / 2 ? 2 * i : 2 * (i - N / 2) + 1);
    CHECK_UGE(jobs[i].elapsed, jobs[i].ns);
  }
  check_shared();
  free(jobs);
}

/* Parks on j->q (or on its timeout j->ns alone) where it could rebuild
 * its frames, as a greenthread does: asked to unwind, it leaves its stack,
 * and once woken job_run starts again on a fresh context. */
static void unwind_body(job *j) {
  int rc;
  if (!j->unwound) {
    if (j->q != NULL) gl_waitq_link(j->q, &j->w);
    j->task.unwindable = 1;
    rc = gl_hub_park(&j->w, j->q != NULL ? UINT64_MAX : j->ns);
    if (rc == GL_EUNWIND) {
      j->unwound = 1;
      gl_hub_leave_stack();
    }
  } else {
    rc = j->w.status;  /* what the waker left, with no frames to return to */
  }
  j->task.unwindable = 0;
  gl_waitq_remove(&j->w);
  j->rc = rc;
  logid(j->id);
}

/* Tasks parked where they can unwind give their shared stacks up instead
 * of having their frames copied, and wake in order, on fresh contexts. */
TEST(hub_unwinds_parked_tasks_on_shared_stacks) {
  enum { N = 300 };
  job *jobs = calloc(N, sizeof *jobs);
  gl_waitq q = GL_WAITQ_INIT;
  gl_hub_stats st;
  int i, unwound = 0;
  hub_setup(0);
  for (i = 0; i < N; i++) {
    job_spawn(&jobs[i], i, unwind_body);
    jobs[i].q = &q;
  }
  yield_until_waiting(&q, N);
  gl_hub_getstats(&st);
  for (i = 0; i < N; i++) unwound += jobs[i].unwound;
  CHECK_EQ(st.unwound, (size_t)unwound);
  CHECK_EQ(st.saved_bytes, 0);
  if (gl_coro_can_share()) CHECK_GE(unwound, N - 64);
  CHECK_EQ(gl_waitq_wake_all(&q, GL_OK), N);
  gl_hub_wait_others();
  CHECK_EQ(norder, N);
  for (i = 0; i < N; i++) {
    CHECK_EQ(order[i], i);
    CHECK_EQ(jobs[i].rc, GL_OK);
  }
  gl_hub_getstats(&st);
  CHECK_EQ(st.unwound, 0);
  CHECK_EQ(st.unwinds, (unsigned long long)unwound);
  free(jobs);
}

/* With eager unwinding, even tasks on stacks of their own give them up
 * at every such park (sanitizer builds included); timeouts still fire. */
TEST(hub_unwinds_eagerly_when_asked) {
  enum { N = 20 };
  job jobs[N];
  gl_hub_stats st;
  int i;
  gl_hub_unwind_eagerly(1);
  hub_setup(EVERYONE_PRIVATE);
  for (i = 0; i < N; i++) {
    job_spawn(&jobs[i], i, unwind_body);
    jobs[i].ns = 100 * MS + (uint64_t)(N - i) * 5 * MS;  /* all park first */
  }
  CHECK_EQ(gl_hub_yield(), GL_OK);
  gl_hub_getstats(&st);
  CHECK_EQ(st.unwound, N);
  CHECK_EQ(st.private_stacks, 0);
  gl_hub_wait_others();
  gl_hub_unwind_eagerly(0);
  for (i = 0; i < N; i++) {
    CHECK(jobs[i].unwound);
    CHECK_EQ(jobs[i].rc, GL_ETIMEDOUT);
    CHECK_EQ(order[i], N - 1 - i);  /* in deadline order */
  }
}
/* }====== */
