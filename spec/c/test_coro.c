/* Tests of the coroutines (host/coro.h): running on a pooled stack,
 * release, the failure path, the overflow report, and shared stacks whose
 * frames are copied away and back.  No hub: coroutines switch directly. */
#include "test.h"

#include <stdint.h>

#include "coro.h"
#include "gl.h"

static gl_coro main_co;

typedef struct job {
  gl_coro co;
  gl_coro *back;
  int id, rounds;
  uintptr_t local;  /* the address of a local of fn, seen from fn */
  long sum;
} job;

static void job_back(job *j) { gl_coro_switch(&j->co, j->back, 0); }

/* {====== Basics ====== */

static void where_fn(gl_coro *co) {
  job *j = gl_container_of(co, job, co);
  char here;
  for (;;) {
    CHECK_PTR_EQ(gl_coro_running, co);
    j->local = (uintptr_t)&here;
    j->rounds++;
    job_back(j);
  }
}

TEST(coro_runs_fn_on_its_stack) {
  job j;
  memset(&j, 0, sizeof j);
  gl_coro_init_main(&main_co);
  CHECK_PTR_EQ(gl_coro_running, &main_co);
  CHECK_EQ(gl_coro_init(&j.co, where_fn), 0);
  j.back = &main_co;
  CHECK_EQ(j.rounds, 0);  /* nothing runs before the first switch */
  gl_coro_switch(&main_co, &j.co, 0);
  CHECK_PTR_EQ(gl_coro_running, &main_co);
  CHECK_EQ(j.rounds, 1);
  CHECK(j.local > (uintptr_t)j.co.stack->base &&
        j.local < (uintptr_t)j.co.stack->base + j.co.stack->size);
  gl_coro_switch(&main_co, &j.co, 0);
  CHECK_EQ(j.rounds, 2);
}

static void finish_fn(gl_coro *co) {
  job *j = gl_container_of(co, job, co);
  j->rounds++;
  gl_coro_switch(co, j->back, 1);  /* finished: never resumed */
  abort();
}

/* A finished coroutine's stack goes back to the pool and is the next one
 * handed out. */
TEST(coro_release_returns_stack_to_pool) {
  job a, b;
  gl_stack *s;
  gl_stack_stats st;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  gl_coro_init_main(&main_co);
  CHECK_EQ(gl_coro_init(&a.co, finish_fn), 0);
  a.back = &main_co;
  s = a.co.stack;
  gl_coro_switch(&main_co, &a.co, 0);
  CHECK_EQ(a.rounds, 1);
  gl_coro_release(&a.co);
  CHECK_PTR_EQ(a.co.stack, NULL);
  gl_stack_getstats(&st);
  CHECK_EQ(st.in_use, 0);
  CHECK_EQ(gl_coro_init(&b.co, finish_fn), 0);
  CHECK_PTR_EQ(b.co.stack, s);
  b.back = &main_co;
  gl_coro_switch(&main_co, &b.co, 0);
  CHECK_EQ(b.rounds, 1);
  gl_coro_release(&b.co);
}

TEST(coro_init_fails_without_stack) {
  job j;
  memset(&j, 0, sizeof j);
  gl_coro_init_main(&main_co);
  gl_stack_fail_next(1);
  CHECK_EQ(gl_coro_init(&j.co, where_fn), -1);
  CHECK_EQ(gl_coro_init(&j.co, where_fn), 0);
}
/* }====== */

/* {====== Overflow ====== */

static int deep(int n) {
  volatile char buf[256];
  buf[0] = (char)n;
  if (n == INT32_MAX) return 0;  /* never: the stack ends long before */
  return deep(n + 1) + buf[0];
}

static void deep_fn(gl_coro *co) {
  GL_UNUSED(co);
  deep(0);
  abort();
}

static void named(gl_coro *co) {
  GL_UNUSED(co);
  fputs("hook: coroutine named\n", stderr);
}

static void overflow_child(void *hook) {
  static job j;
  gl_coro_init_main(&main_co);
  gl_coro_overflow_hook = (void (*)(gl_coro *))(uintptr_t)hook;
  gl_coro_catch_overflow();
  CHECK_EQ(gl_coro_init(&j.co, deep_fn), 0);
  CHECK_NE(j.co.stack->guard, GL_GUARD_NONE);
  gl_coro_switch(&main_co, &j.co, 0);
}

/* A hit on the guard page becomes a message, after the hook has named the
 * coroutine; under AddressSanitizer, ASan's own report. */
TEST(coro_overflow_is_reported) {
  if (GL_ASAN) {
    CHECK_CHILD(overflow_child, NULL, TEST_EXITS_WITH(1), "stack-overflow");
    return;
  }
  CHECK_CHILD(overflow_child, NULL, TEST_KILLED_BY(SIGABRT),
              "greenlua: fatal: stack overflow in a greenthread");
  CHECK_CHILD(overflow_child, (void *)(uintptr_t)named,
              TEST_KILLED_BY(SIGABRT), "hook: coroutine named");
}

static volatile int *volatile nowhere;  /* NULL */

static void null_deref(void *ud) {
  GL_UNUSED(ud);
  gl_coro_init_main(&main_co);
  gl_coro_catch_overflow();
  fputs("about to fault\n", stderr);
  *nowhere = 1;
}

/* A fault elsewhere is not reported as an overflow. */
TEST(coro_other_faults_stay_segfaults) {
  if (GL_ASAN) return;  /* the handler is AddressSanitizer's there */
  CHECK_CHILD(null_deref, NULL, TEST_KILLED_BY(SIGSEGV), "about to fault");
}
/* }====== */

/* {====== Shared stacks ====== */

static void pattern_fn(gl_coro *co) {
  job *j = gl_container_of(co, job, co);
  unsigned char pattern[1000];
  unsigned char *self = pattern;  /* a pointer into its own stack */
  size_t i;
  for (i = 0; i < sizeof pattern; i++)
    pattern[i] = (unsigned char)(j->id * 31 + (int)i);
  j->local = (uintptr_t)pattern;
  for (;;) {
    long sum = 0;
    j->rounds++;
    job_back(j);
    for (i = 0; i < sizeof pattern; i++) {
      CHECK_EQ(self[i], (unsigned char)(j->id * 31 + (int)i));
      sum += self[i];
    }
    j->sum = sum;
  }
}

/* Three coroutines on one stack, run in turns: each activation copies the
 * holder's frames away and the newcomer's back to the same addresses. */
TEST(coro_shared_stack_keeps_frames) {
  job j[3];
  gl_stack *s;
  int round, i;
  if (!gl_coro_can_share()) return;  /* ucontext */
  gl_coro_init_main(&main_co);
  s = gl_stack_alloc();
  for (i = 0; i < 3; i++) {
    memset(&j[i], 0, sizeof j[i]);
    j[i].id = i + 1;
    j[i].back = &main_co;
    gl_coro_bind(&j[i].co, pattern_fn, s);
    CHECK(j[i].co.shared);
  }
  for (round = 0; round < 20; round++) {
    for (i = 0; i < 3; i++) {
      gl_coro *before = gl_coro_occupant(&j[i].co);
      CHECK_EQ(gl_coro_activate(&j[i].co), 0);
      CHECK_PTR_EQ(gl_coro_occupant(&j[i].co), NULL);
      CHECK_PTR_EQ(s->occupant, &j[i].co);
      CHECK_PTR_EQ(j[i].co.saved, NULL);
      if (before != NULL) {  /* displaced: its used part saved */
        CHECK(before->saved != NULL);
        CHECK_GT(before->nsaved, 1000);
        CHECK_LT(before->nsaved, s->size);
      }
      gl_coro_switch(&main_co, &j[i].co, 0);
      CHECK_EQ(j[i].rounds, round + 1);
      CHECK_EQ(j[i].local, j[0].local);  /* truly the same addresses */
      if (round > 0) CHECK_GT(j[i].sum, 0);
    }
  }
  CHECK_EQ(gl_coro_activate(&j[2].co), 0);  /* already there: no-op */
  for (i = 0; i < 3; i++) gl_coro_leave(&j[i].co);
  CHECK_PTR_EQ(s->occupant, NULL);
  gl_stack_free(s);
}

TEST(coro_can_share_where_stack_pointer_is_known) {
  int expect = strcmp(gl_ctx_impl, "ucontext") != 0;  /* ASan too */
  CHECK_EQ(gl_coro_can_share(), expect);
}
/* }====== */

/* {====== Trimming a suspended stack ====== */

#include <sys/mman.h>
#include <unistd.h>

/* Touches about `depth` KiB of stack below the caller, then returns. */
__attribute__((noinline)) static long descend(int depth) {
  volatile char pad[1024];
  long s;
  pad[0] = (char)depth;
  pad[sizeof pad - 1] = (char)depth;
  if (depth <= 1) return pad[0];
  s = descend(depth - 1);
  return s + pad[sizeof pad - 1];
}

static void descend_fn(gl_coro *co) {
  job *j = gl_container_of(co, job, co);
  volatile long mark = 0x5eed;
  j->sum = descend(j->rounds);  /* deep once, then parked shallow */
  j->local = (uintptr_t)&mark;
  job_back(j);
  CHECK_EQ(mark, 0x5eed);  /* its frames survived the trim */
  j->sum = descend(8);
  job_back(j);
  for (;;) job_back(j);
}

/* Resident pages among those of [lo, hi). */
static size_t resident(uintptr_t lo, uintptr_t hi) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), n = 0, i;
  unsigned char vec[1024];
  CHECK((hi - lo) / page <= sizeof vec);
  CHECK_EQ(mincore((void *)lo, hi - lo, vec), 0);
  for (i = 0; i < (hi - lo) / page; i++) n += vec[i] & 1;
  return n;
}

/* The pages a deep call touched below a parked coroutine's frames go
 * back; the frames stay, and it runs on as before. */
TEST(coro_trim_gives_back_pages_below_the_frames) {
  job j;
  uintptr_t lo, top;
  size_t before, trimmed;
  memset(&j, 0, sizeof j);
  gl_coro_init_main(&main_co);
  CHECK_EQ(gl_coro_trim(&main_co), 0);  /* the thread's own stack: no */
  CHECK_EQ(gl_coro_init(&j.co, descend_fn), 0);
  j.back = &main_co;
  j.rounds = 200;  /* about 200 KiB deep */
  gl_coro_switch(&main_co, &j.co, 0);
  CHECK_GT(j.sum, 0);
  lo = (uintptr_t)j.co.stack->base;
  top = lo + j.co.stack->size;
  CHECK(j.local > lo && j.local < top);
  before = resident(lo, top);
  CHECK_GE(before, 40);  /* pages: about 200 KiB */
  trimmed = gl_coro_trim(&j.co);
  CHECK_GE(trimmed, 150 * 1024);
  CHECK_LE(resident(lo, top), 4);  /* the frames and the page below */
  gl_coro_switch(&main_co, &j.co, 0);  /* checks its frames, goes deep */
  CHECK_GT(j.sum, 0);
  gl_coro_switch(&main_co, &j.co, 0);
  gl_coro_release(&j.co);
}
/* }====== */
