/* Tests of the stack allocator (host/stack.h): reuse, layout, guard pages,
 * sizes, the failure hook, statistics, and the design point: a million
 * stacks fit under the default vm.max_map_count of 65530.  Each case is a
 * process of its own, so gl_stack_setsize can run before the first alloc. */
#include "test.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "coro.h"
#include "gl.h"
#include "stack.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

static size_t page(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* Lines of /proc/self/maps: the map areas the kernel counts against
 * vm.max_map_count. */
static long map_areas(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  long n = 0;
  int c;
  CHECK(f != NULL);
  while ((c = getc(f)) != EOF)
    if (c == '\n') n++;
  fclose(f);
  return n;
}

static long max_map_count(void) {
  long max = 65530;
  FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
  if (f != NULL) {
    if (fscanf(f, "%ld", &max) != 1) max = 65530;
    fclose(f);
  }
  return max;
}

/* Makes madvise(MADV_GUARD_INSTALL) fail with EINVAL, as on kernels before
 * 6.13, so that stack.c falls back to mprotect'd guards.  A seccomp filter
 * on the (little-endian) low word of the advice argument. */
static void block_madv_guard(void) {
  struct sock_filter f[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_madvise, 0, 3),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
             offsetof(struct seccomp_data, args[2])),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MADV_GUARD_INSTALL, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EINVAL & SECCOMP_RET_DATA)),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof f / sizeof f[0], f};
  CHECK_EQ(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
  CHECK_EQ(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
}

/* {====== Reuse and layout ====== */

TEST(stack_reuses_last_freed_first) {
  gl_stack *a = gl_stack_alloc(), *b = gl_stack_alloc(), *c;
  CHECK(a != NULL && b != NULL);
  CHECK_PTR_NE(a, b);
  gl_stack_free(a);
  gl_stack_free(b);
  c = gl_stack_alloc();
  CHECK_PTR_EQ(c, b);
  c = gl_stack_alloc();
  CHECK_PTR_EQ(c, a);
  gl_stack_free(c);
  CHECK_PTR_EQ(gl_stack_alloc(), a);
}

static int by_base(const void *x, const void *y) {
  const gl_stack *a = *(gl_stack *const *)x, *b = *(gl_stack *const *)y;
  return a->base < b->base ? -1 : a->base > b->base;
}

/* More stacks than one region holds: page-aligned, of the set size, and
 * with at least a guard page's gap between neighbours. */
TEST(stack_allocations_are_distinct_and_disjoint) {
  enum { N = 1000 };
  static gl_stack *s[N];
  size_t i;
  CHECK_EQ(gl_stack_setsize(GL_STACK_MIN), 0);  /* LeakSanitizer reads all */
  for (i = 0; i < N; i++) {
    s[i] = gl_stack_alloc();
    CHECK(s[i] != NULL);
    CHECK_EQ(s[i]->size, gl_stack_getsize());
    CHECK_EQ((uintptr_t)s[i]->base % page(), 0);
  }
  qsort(s, N, sizeof s[0], by_base);
  for (i = 0; i + 1 < N; i++)
    CHECK_LE((uintptr_t)s[i]->base + s[i]->size + page(),
             (uintptr_t)s[i + 1]->base);
}

/* Every byte of the usable range can be written, and no stack shares a
 * byte with another. */
TEST(stack_usable_range_is_writable) {
  enum { N = 300 };
  static gl_stack *s[N];
  size_t i, j;
  CHECK_EQ(gl_stack_setsize(GL_STACK_MIN), 0);
  for (i = 0; i < N; i++) {
    s[i] = gl_stack_alloc();
    memset(s[i]->base, (int)(i & 0xff), s[i]->size);
  }
  for (i = 0; i < N; i++)
    for (j = 0; j < s[i]->size; j += 61)
      CHECK_EQ((unsigned char)s[i]->base[j], i & 0xff);
  for (i = 0; i < N; i++)
    CHECK_EQ((unsigned char)s[i]->base[s[i]->size - 1], i & 0xff);
}

TEST(stack_in_guard_covers_the_guard_page) {
  gl_stack *s = gl_stack_alloc();
  CHECK(gl_stack_in_guard(s, s->base - 1));
  CHECK(gl_stack_in_guard(s, s->base - page()));
  CHECK(!gl_stack_in_guard(s, s->base - page() - 1));
  CHECK(!gl_stack_in_guard(s, s->base));
  CHECK(!gl_stack_in_guard(s, s->base + s->size - 1));
  CHECK(!gl_stack_in_guard(NULL, s->base - 1));
}
/* }====== */

/* {====== Guard pages ====== */

static void write_below(void *ud) {
  gl_stack *s;
  GL_UNUSED(ud);
  signal(SIGSEGV, SIG_DFL);  /* not a sanitizer's report */
  s = gl_stack_alloc();
  CHECK(s != NULL && s->guard != GL_GUARD_NONE);
  s->base[0] = 1;
  fputs("usable range written\n", stderr);
  ((volatile char *)s->base)[-1] = 1;
  fputs("guard page written\n", stderr);
}

TEST(stack_guard_page_faults) {
  CHECK_CHILD(write_below, NULL, TEST_KILLED_BY(SIGSEGV),
              "usable range written");
}

static void write_below_mprotect(void *ud) {
  gl_stack_stats st;
  block_madv_guard();
  write_below(ud);
  gl_stack_getstats(&st);
  CHECK_EQ(st.guard_mprotect, 1);
}

/* Kernels before 6.13 have no MADV_GUARD_INSTALL: the guard page is
 * mprotect'd instead. */
TEST(stack_guard_page_faults_with_mprotect) {
  gl_stack_stats st;
  gl_stack *s;
  block_madv_guard();
  s = gl_stack_alloc();
  gl_stack_getstats(&st);
  CHECK_EQ(s->guard, GL_GUARD_MPROTECT);
  CHECK_EQ(st.guard_mprotect, 1);
  CHECK_EQ(st.guard_madvise, 0);
  CHECK_CHILD(write_below_mprotect, NULL, TEST_KILLED_BY(SIGSEGV),
              "usable range written");
}

static gl_coro main_co, deep_co;
static uintptr_t deep_floor;  /* stop recursing below this address */

static int dig(int n) {
  volatile char buf[256];
  buf[0] = (char)n;
  if ((uintptr_t)buf < deep_floor) {  /* overflowed: now switch away */
    gl_coro_switch(&deep_co, &main_co, 0);
    return 0;
  }
  return dig(n + 1) + buf[0];
}

static void dig_fn(gl_coro *co) {
  GL_UNUSED(co);
  dig(0);
  abort();
}

/* Once the map-area budget is spent, stacks have no guard page: an
 * overflow is caught when the coroutine next switches away. */
static void overflow_unguarded(void *ud) {
  gl_stack_stats st;
  GL_UNUSED(ud);
  block_madv_guard();
  CHECK_EQ(gl_stack_setsize(GL_STACK_MIN), 0);
  for (;;) {  /* spend the budget; keep the stacks */
    gl_stack *s = gl_stack_alloc();
    CHECK(s != NULL);
    if (s->guard == GL_GUARD_NONE) {
      gl_stack_free(s);
      break;
    }
  }
  gl_stack_getstats(&st);
  CHECK_EQ(st.guard_mprotect, max_map_count() / 6);
  gl_coro_init_main(&main_co);
  CHECK_EQ(gl_coro_init(&deep_co, dig_fn), 0);
  CHECK_EQ(deep_co.stack->guard, GL_GUARD_NONE);
  deep_floor = (uintptr_t)deep_co.stack->base + 512;
  fputs("digging\n", stderr);
  gl_coro_switch(&main_co, &deep_co, 0);
  fputs("overflow missed\n", stderr);
}

TEST(stack_overflow_without_guard_is_caught_at_switch) {
  if (GL_ASAN) return;  /* ASan reports overflows as they happen */
  CHECK_CHILD(overflow_unguarded, NULL, TEST_KILLED_BY(SIGABRT),
              "stack overflow in a greenthread");
}
/* }====== */

/* {====== Sizes and failures ====== */

/* Enough for LUAI_MAXCCALLS nested C calls (a spec proves that). */
TEST(stack_default_size_suits_lua) {
  gl_stack *s;
  CHECK_GE(gl_stack_getsize(), (GL_ASAN ? 512 : 256) * 1024);
  CHECK_EQ(gl_stack_getsize() % page(), 0);
  s = gl_stack_alloc();
  CHECK_EQ(s->size, gl_stack_getsize());
}

TEST(stack_setsize_rounds_to_whole_pages) {
  CHECK_EQ(gl_stack_setsize(GL_STACK_MIN + 1), 0);
  CHECK_EQ(gl_stack_getsize(), GL_STACK_MIN + page());
  CHECK_EQ(gl_stack_setsize(100 * 1024), 0);
  CHECK_EQ(gl_stack_getsize(), 100 * 1024);
  CHECK_EQ(gl_stack_setsize(GL_STACK_MIN), 0);
  CHECK_EQ(gl_stack_getsize(), GL_STACK_MIN);
  CHECK_EQ(gl_stack_alloc()->size, GL_STACK_MIN);
}

TEST(stack_setsize_rejects_unusable_sizes) {
  CHECK_EQ(gl_stack_setsize(0), -1);
  CHECK_EQ(gl_stack_setsize(GL_STACK_MIN - 1), -1);
  CHECK_EQ(gl_stack_setsize(((size_t)1 << 30) + 1), -1);
  CHECK_EQ(gl_stack_setsize((size_t)-1), -1);
  CHECK_EQ(gl_stack_setsize((size_t)1 << 30), 0);  /* the largest */
  CHECK_EQ(gl_stack_setsize(64 * 1024), 0);
  CHECK_EQ(gl_stack_getsize(), 64 * 1024);
}

TEST(stack_setsize_fails_after_first_alloc) {
  gl_stack *s = gl_stack_alloc();
  size_t was = gl_stack_getsize();
  CHECK(s != NULL);
  CHECK_EQ(gl_stack_setsize(64 * 1024), -1);
  CHECK_EQ(gl_stack_getsize(), was);
  gl_stack_free(s);
  CHECK_EQ(gl_stack_setsize(64 * 1024), -1);  /* carved slots stay */
}

TEST(stack_fail_next_returns_null) {
  gl_stack *s = gl_stack_alloc(), *t;
  gl_stack_stats st;
  gl_stack_free(s);
  gl_stack_fail_next(2);
  CHECK_PTR_EQ(gl_stack_alloc(), NULL);
  CHECK_PTR_EQ(gl_stack_alloc(), NULL);
  t = gl_stack_alloc();
  CHECK_PTR_EQ(t, s);  /* a failure takes nothing from the pool */
  gl_stack_getstats(&st);
  CHECK_EQ(st.in_use, 1);
  CHECK_EQ(st.pooled, 0);
}
/* }====== */

/* {====== Pool and statistics ====== */

TEST(stack_stats_count_use_and_pool) {
  enum { N = 100 };
  static gl_stack *s[N];
  gl_stack_stats st;
  size_t i;
  CHECK_EQ(gl_stack_setsize(GL_STACK_MIN), 0);
  gl_stack_getstats(&st);
  CHECK_EQ(st.total, 0);
  CHECK_EQ(st.regions, 0);
  for (i = 0; i < N; i++) s[i] = gl_stack_alloc();
  gl_stack_getstats(&st);
  CHECK_EQ(st.total, N);
  CHECK_EQ(st.in_use, N);
  CHECK_EQ(st.pooled, 0);
  CHECK_EQ(st.regions, 1);
  CHECK_EQ(st.guard_madvise + st.guard_mprotect + st.guard_none, N);
  for (i = 0; i < N; i++) gl_stack_free(s[i]);
  gl_stack_getstats(&st);
  CHECK_EQ(st.in_use, 0);
  CHECK_EQ(st.pooled, N);
  CHECK_EQ(st.hot, N);  /* freed stacks keep their pages */
  gl_stack_trim();
  gl_stack_getstats(&st);
  CHECK_EQ(st.hot, N);  /* for one whole period */
  gl_stack_trim();
  gl_stack_getstats(&st);
  CHECK_EQ(st.hot, 64);  /* then all but the GL_STACK_HOT most recent */
  CHECK_EQ(st.pooled, N);
  for (i = 0; i < N; i++) s[i] = gl_stack_alloc();
  gl_stack_getstats(&st);
  CHECK_EQ(st.total, N);  /* all reused */
  CHECK_EQ(st.in_use, N);
  CHECK_EQ(st.pooled, 0);
  CHECK_EQ(st.hot, 0);
}

/* Marks the top page of each of s[0..n) and frees them in order. */
static void fill_and_free(gl_stack **s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    s[i] = gl_stack_alloc();
    memset(s[i]->base + s[i]->size - 4096, 0x5a, 4096);
  }
  for (i = 0; i < n; i++) gl_stack_free(s[i]);
}

/* Counts, reallocating n stacks, those whose pages went back to the
 * system (they read as zeros). */
static size_t count_zeroed(gl_stack **s, size_t n) {
  size_t i, zeroed = 0;
  for (i = 0; i < n; i++) {
    s[i] = gl_stack_alloc();
    if (s[i]->base[s[i]->size - 1] == 0) {
      CHECK_EQ(s[i]->hot, 0);
      zeroed++;
    } else {
      CHECK_EQ((unsigned char)s[i]->base[s[i]->size - 1], 0x5a);
    }
  }
  return zeroed;
}

/* Pooled stacks past the GL_STACK_HOT most recent, unused for a whole
 * trim period, give their pages back: they read as zeros when reused. */
TEST(stack_trim_gives_back_pages_of_idle_stacks) {
  enum { N = 100 };
  static gl_stack *s[N];
  CHECK_EQ(gl_stack_setsize(GL_STACK_MIN), 0);
  fill_and_free(s, N);
  gl_stack_trim();
  gl_stack_trim();
  CHECK_EQ(count_zeroed(s, N), N - 64);
}

/* A pool that cycles between trims keeps its pages. */
TEST(stack_trim_spares_stacks_reused_since_last_trim) {
  enum { N = 100 };
  static gl_stack *s[N];
  size_t i;
  CHECK_EQ(gl_stack_setsize(GL_STACK_MIN), 0);
  fill_and_free(s, N);
  gl_stack_trim();
  for (i = 0; i < N; i++) s[i] = gl_stack_alloc();
  for (i = 0; i < N; i++) gl_stack_free(s[i]);
  gl_stack_trim();
  CHECK_EQ(count_zeroed(s, N), 0);
}
/* }====== */

/* {====== Many stacks: the map-count budget ====== */

/* Allocates n stacks of `size`, touching the top page of one in
 * `touch_every`, and checks that the map areas they add stay within a
 * third of vm.max_map_count, then, if asked, that freeing them adds none. */
static void many_stacks(size_t n, size_t size, int touch_every,
                        int free_them) {
  long before = map_areas(), after;
  gl_stack_stats st;
  size_t i;
  gl_stack **s = malloc(n * sizeof *s);
  CHECK(s != NULL);
  CHECK_EQ(gl_stack_setsize(size), 0);
  for (i = 0; i < n; i++) {
    s[i] = gl_stack_alloc();
    CHECK(s[i] != NULL);
    if (i % (size_t)touch_every == 0) s[i]->base[s[i]->size - 1] = 1;
  }
  after = map_areas();
  gl_stack_getstats(&st);
  printf("%zu stacks of %zu KiB: %ld map areas (%ld before), %zu regions, "
         "guards: %zu madvise, %zu mprotect, %zu none\n", n, size / 1024,
         after, before, st.regions, st.guard_madvise, st.guard_mprotect,
         st.guard_none);
  CHECK_EQ(st.total, n);
  CHECK_EQ(st.in_use, n);
  /* (with a little room for what malloc and sanitizers map meanwhile) */
  CHECK_LE(after - before, max_map_count() / 3 + 100);
  if (free_them) {
    for (i = 0; i < n; i++) gl_stack_free(s[i]);
    gl_stack_trim();
    gl_stack_trim();
    CHECK_LE(map_areas(), after + 100);  /* pooling splits nothing */
  }
  free(s);
  if (GL_ASAN) _exit(0);  /* LeakSanitizer would read every stack */
}

TEST(stack_100000_stay_within_map_budget) {
  many_stacks(100000, 64 * 1024, 8, 1);
}

/* The same where guard pages cost map areas (kernels before 6.13): stacks
 * past the budget go without a guard. */
TEST(stack_100000_with_mprotect_guards_stay_within_map_budget) {
  gl_stack_stats st;
  block_madv_guard();
  many_stacks(100000, 64 * 1024, 8, 1);
  gl_stack_getstats(&st);
  CHECK_EQ(st.guard_madvise, 0);
  CHECK_GT(st.guard_mprotect, 1000);
  CHECK_EQ(st.guard_mprotect + st.guard_none, 100000);
}

/* The design point: a million greenthreads, each with a stack. */
TEST(stack_million_fit_under_max_map_count) {
  many_stacks(1000000, GL_STACK_MIN, 64, 0);
}
/* }====== */
