/* Tests of the context switch alone (host/ctx.h): switching, values passed
 * across a switch, stacks, registers and floating-point control kept per
 * context, and the trap behind an entry function that returns.  No stack
 * pool, coroutines or hub: stacks here are plain mmap'd memory. */
#include "test.h"

#include <fenv.h>
#include <stdint.h>
#include <sys/mman.h>

#include "ctx.h"
#include "gl.h"

#define NOINLINE __attribute__((noinline))

/* Sanitizers' frames are larger: double the stacks, as stack.c does. */
#define STACK_SIZE ((GL_ASAN ? 2 : 1) * 256 * 1024)

/* Maps `size` bytes for a stack.  Never unmapped: a context that is never
 * finished leaves sanitizer shadow behind, and the process ends soon. */
static char *stack_new(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(p != MAP_FAILED);
  return p;
}

/* A context that goes back to `back` at every switch. */
typedef struct peer {
  gl_ctx ctx;
  gl_ctx *back;
  long count;
  void *arg_seen, *value_seen;
} peer;

static void peer_make(peer *p, gl_ctx *back, gl_ctx_entry entry) {
  memset(p, 0, sizeof *p);
  p->back = back;
  gl_ctx_make(&p->ctx, stack_new(STACK_SIZE), STACK_SIZE, entry, p);
}

/* {====== Switching and values ====== */

static void pong(void *arg, void *value) {
  peer *p = arg;
  GL_UNUSED(value);
  for (;;) {
    p->count++;
    gl_ctx_switch(&p->ctx, p->back, NULL);
  }
}

TEST(ctx_pingpong_between_two) {
  gl_ctx self = {0};
  peer p;
  long i;
  peer_make(&p, &self, pong);
  for (i = 0; i < 100000; i++) {
    CHECK_EQ(p.count, i);
    gl_ctx_switch(&self, &p.ctx, NULL);
  }
  CHECK_EQ(p.count, 100000);
}

static char trail[64];
static size_t ntrail;

static void trail_add(char c) {
  if (ntrail < sizeof trail - 1) trail[ntrail++] = c;
}

static void chain(void *arg, void *value) {
  peer *p = arg;
  GL_UNUSED(value);
  for (;;) {
    p->count++;
    trail_add((char)(uintptr_t)p->arg_seen);
    gl_ctx_switch(&p->ctx, p->back, NULL);
  }
}

/* main -> a -> b -> main, ten times round. */
TEST(ctx_pingpong_among_three) {
  gl_ctx self = {0};
  peer a, b;
  int i;
  peer_make(&b, &self, chain);
  peer_make(&a, &b.ctx, chain);
  a.arg_seen = (void *)(uintptr_t)'a';
  b.arg_seen = (void *)(uintptr_t)'b';
  for (i = 0; i < 10; i++) {
    gl_ctx_switch(&self, &a.ctx, NULL);
    trail_add('m');
  }
  CHECK_EQ(a.count, 10);
  CHECK_EQ(b.count, 10);
  CHECK_STR_EQ(trail, "abmabmabmabmabmabmabmabmabmabm");
}

static void echo(void *arg, void *value) {
  peer *p = arg;
  for (;;) {
    CHECK_EQ((uintptr_t)value, p->count);
    p->count++;
    value = gl_ctx_switch(&p->ctx, p->back, (char *)value + 1000);
  }
}

/* The value given to a switch comes out of the other side's switch, in
 * both directions. */
TEST(ctx_passes_values_both_ways) {
  gl_ctx self = {0};
  peer p;
  uintptr_t i;
  peer_make(&p, &self, echo);
  for (i = 0; i < 1000; i++) {
    void *r = gl_ctx_switch(&self, &p.ctx, (void *)i);
    CHECK_EQ((uintptr_t)r, i + 1000);
  }
  CHECK_EQ(p.count, 1000);
}

static void record(void *arg, void *value) {
  peer *p = arg;
  p->arg_seen = arg;
  p->value_seen = value;
  gl_ctx_switch(&p->ctx, p->back, (void *)"back");
  gl_ctx_switch(&p->ctx, p->back, NULL);
  abort();
}

TEST(ctx_new_context_gets_arg_and_first_value) {
  gl_ctx self = {0};
  peer p;
  int first;
  void *r;
  peer_make(&p, &self, record);
  CHECK_PTR_EQ(p.arg_seen, NULL);  /* nothing runs before the switch */
  r = gl_ctx_switch(&self, &p.ctx, &first);
  CHECK_PTR_EQ(p.arg_seen, &p);
  CHECK_PTR_EQ(p.value_seen, &first);
  CHECK_STR_EQ(r, "back");
  CHECK_PTR_EQ(gl_ctx_switch(&self, &p.ctx, NULL), NULL);
}

#define RING 1000

static struct ring {
  gl_ctx ctx;
  long count;
} ring[RING];
static gl_ctx ring_main;

static void ring_entry(void *arg, void *value) {
  struct ring *r = arg;
  size_t i = (size_t)(r - ring);
  for (;;) {
    CHECK_EQ((uintptr_t)value, i);
    r->count++;
    value = gl_ctx_switch(&r->ctx, i + 1 < RING ? &ring[i + 1].ctx
                                                 : &ring_main,
                          (char *)value + 1);
  }
}

/* A thousand contexts hand a counter round a ring, a hundred times. */
TEST(ctx_round_robin_among_1000) {
  size_t size = 64 * 1024, i;
  char *mem = stack_new(RING * size);
  int round;
  for (i = 0; i < RING; i++)
    gl_ctx_make(&ring[i].ctx, mem + i * size, size, ring_entry, &ring[i]);
  for (round = 1; round <= 100; round++) {
    void *v = gl_ctx_switch(&ring_main, &ring[0].ctx, (void *)0);
    CHECK_EQ((uintptr_t)v, RING);
    for (i = 0; i < RING; i += 111) CHECK_EQ(ring[i].count, round);
  }
}
/* }====== */

/* {====== Stacks ====== */

static uintptr_t deepest;  /* the lowest frame's address */

static NOINLINE long recurse(int depth) {
  volatile char buf[48];
  long r;
  buf[0] = (char)depth;
  buf[47] = 1;
  if (depth == 0) {
    deepest = (uintptr_t)buf;
    return 0;
  }
  r = recurse(depth - 1);
  return r + buf[47];
}

static void recurse_entry(void *arg, void *value) {
  peer *p = arg;
  p->count = recurse((int)(intptr_t)value);
  gl_ctx_switch(&p->ctx, p->back, NULL);
  abort();
}

/* 10,000 frames, each with a small array, on a 1 MiB mmap'd stack (8 MiB
 * under sanitizers, whose redzones make the frames four times larger). */
TEST(ctx_recurses_deep_on_mmap_stack) {
  size_t size = (GL_ASAN ? 8 : 1) * 1024 * 1024;
  char *stack = stack_new(size);
  gl_ctx self = {0};
  peer p;
  memset(&p, 0, sizeof p);
  p.back = &self;
  gl_ctx_make(&p.ctx, stack, size, recurse_entry, &p);
  gl_ctx_switch(&self, &p.ctx, (void *)(intptr_t)10000);
  CHECK_EQ(p.count, 10000);
  CHECK(deepest > (uintptr_t)stack && deepest < (uintptr_t)stack + size);
  CHECK_GE((uintptr_t)stack + size - deepest, 10000 * 48);  /* real frames */
}

static void aligned_entry(void *arg, void *value) {
  peer *p = arg;
  char buf[64];
  GL_UNUSED(value);
  /* At a call the ABI wants the stack 16-byte aligned; the frame record
   * sits at such an address on both x86_64 and aarch64. */
  p->count = (long)((uintptr_t)__builtin_frame_address(0) % 16);
  /* printf of doubles uses aligned vector stores on x86_64. */
  snprintf(buf, sizeof buf, "%.3f %.3Lf", 1.5, (long double)2.25);
  p->arg_seen = strcmp(buf, "1.500 2.250") == 0 ? p : NULL;
  gl_ctx_switch(&p->ctx, p->back, NULL);
  abort();
}

TEST(ctx_aligns_stack_at_entry) {
  size_t off;
  char *mem = stack_new(STACK_SIZE + 64);
  for (off = 0; off < 64; off += 16) {  /* whatever the top's alignment */
    gl_ctx self = {0};
    peer p;
    memset(&p, 0, sizeof p);
    p.back = &self;
    p.count = -1;
    gl_ctx_make(&p.ctx, mem + off, STACK_SIZE - off, aligned_entry, &p);
    gl_ctx_switch(&self, &p.ctx, NULL);
    CHECK_EQ(p.count, 0);
    CHECK_PTR_EQ(p.arg_seen, &p);
  }
}

/* Neither gl_ctx_make nor the context itself writes outside the stack it
 * was given. */
TEST(ctx_stays_within_its_stack) {
  size_t pad = 4096, size = STACK_SIZE, i;
  char *mem = stack_new(size + 2 * pad);
  gl_ctx self = {0};
  peer p;
  memset(mem, 0xa5, size + 2 * pad);
  memset(&p, 0, sizeof p);
  p.back = &self;
  gl_ctx_make(&p.ctx, mem + pad, size, recurse_entry, &p);
  gl_ctx_switch(&self, &p.ctx, (void *)(intptr_t)100);
  CHECK_EQ(p.count, 100);
  for (i = 0; i < pad; i++) {
    CHECK_EQ((unsigned char)mem[i], 0xa5);
    CHECK_EQ((unsigned char)mem[pad + size + i], 0xa5);
  }
}
/* }====== */

/* {====== Copying a suspended context's frames ====== */

/* A context that fills a local array with a pattern and checks it after
 * every switch back. */
typedef struct copier {
  gl_ctx ctx;
  gl_ctx *back;
  int seed, rounds;
  uintptr_t local;
} copier;

static void copier_entry(void *arg, void *value) {
  copier *c = arg;
  unsigned char buf[600];
  unsigned char *self = buf;  /* a pointer into its own stack */
  size_t i;
  GL_UNUSED(value);
  for (i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(c->seed + i * 7);
  c->local = (uintptr_t)buf;
  for (;;) {
    gl_ctx_switch(&c->ctx, c->back, NULL);
    for (i = 0; i < sizeof buf; i++)
      CHECK_EQ(self[i], (unsigned char)(c->seed + i * 7));
    c->rounds++;
  }
}

/* Everything a suspended context uses lies between its stack pointer and
 * the top of its stack (or the implementation cannot tell: NULL). */
TEST(ctx_stackptr_bounds_suspended_frames) {
  char *stack = stack_new(STACK_SIZE), *sp;
  gl_ctx self = {0};
  copier c;
  memset(&c, 0, sizeof c);
  c.back = &self;
  gl_ctx_make(&c.ctx, stack, STACK_SIZE, copier_entry, &c);
  sp = gl_ctx_stackptr(&c.ctx);
  if (sp == NULL) {
    CHECK_STR_EQ(gl_ctx_impl, "ucontext");
    return;
  }
  CHECK(sp > stack && sp <= stack + STACK_SIZE);
  gl_ctx_switch(&self, &c.ctx, NULL);
  sp = gl_ctx_stackptr(&c.ctx);
  CHECK(sp > stack && sp < stack + STACK_SIZE);
  CHECK_LE((uintptr_t)sp, c.local);
  CHECK_LT(stack + STACK_SIZE - sp, 4096);  /* a few small frames */
}

static char *save_frames(copier *c, char *top, size_t *n) {
  char *sp = gl_ctx_stackptr(&c->ctx);
  char *copy;
  *n = (size_t)(top - sp);
  copy = malloc(*n);
  CHECK(copy != NULL);
  memcpy(copy, sp, *n);
  return copy;
}

/* Two contexts take turns on one stack: the frames of the one suspended
 * are copied away, the stack is scribbled over, and they are copied back
 * to the same addresses before it resumes (what shared stacks do). */
TEST(ctx_resumes_after_frames_copied_back) {
  char *stack = stack_new(STACK_SIZE), *top = stack + STACK_SIZE;
  gl_ctx self = {0};
  copier c[2];
  char *saved[2];
  size_t n[2];
  int i, round;
  /* ucontext: no stack pointer to copy from; sanitizers: copied frames
   * carry poisoned redzones (coro.c shares no stacks there either). */
  if (strcmp(gl_ctx_impl, "ucontext") == 0 || GL_ASAN) return;
  for (i = 0; i < 2; i++) {
    memset(&c[i], 0, sizeof c[i]);
    c[i].back = &self;
    c[i].seed = 11 + 100 * i;
    gl_ctx_make(&c[i].ctx, stack, STACK_SIZE, copier_entry, &c[i]);
    gl_ctx_switch(&self, &c[i].ctx, NULL);
    saved[i] = save_frames(&c[i], top, &n[i]);
    memset(stack + STACK_SIZE / 2, 0xdd, STACK_SIZE / 2);
  }
  CHECK_EQ(c[0].local, c[1].local);  /* the same addresses */
  for (round = 0; round < 10; round++) {
    for (i = 0; i < 2; i++) {
      memcpy(top - n[i], saved[i], n[i]);
      free(saved[i]);
      gl_ctx_switch(&self, &c[i].ctx, NULL);
      CHECK_EQ(c[i].rounds, round + 1);
      saved[i] = save_frames(&c[i], top, &n[i]);
      memset(stack + STACK_SIZE / 2, 0xdd, STACK_SIZE / 2);
    }
  }
  free(saved[0]);
  free(saved[1]);
}
/* }====== */

/* {====== Registers ====== */

typedef void (*step_fn)(void *ud);

static void no_step(void *ud) { GL_UNUSED(ud); }

/* Keeps many integers and doubles live across each call of step: with
 * optimisation they sit in callee-saved registers (rbx, rbp, r12-r15;
 * x19-x28 and d8-d15), which another context clobbers in between. */
static NOINLINE unsigned long churn(unsigned long seed, int rounds,
                                    step_fn step, void *ud) {
  unsigned long a = seed, b = seed * 3, c = seed ^ 0x5555, d = seed + 7;
  unsigned long e = seed * 11, f = seed ^ 0xf0f0, g = seed + 101;
  unsigned long h = seed * 13, k = seed ^ 0x3c3c, l = seed + 1009;
  unsigned long m = seed * 17, n = seed ^ 0x9999;
  double x = (double)seed * 0.5, y = (double)seed * 0.25, z = 1.0 / 3;
  double u = (double)seed + 0.125, v = 2.5, w = (double)(seed % 97);
  double s = 7.75, t = (double)seed * 1e-3;
  int i;
  for (i = 0; i < rounds; i++) {
    step(ud);
    a = a * 33 + b; b ^= c << 1; c += d; d = d * 7 ^ e;
    e += f; f ^= g; g += h * 3; h ^= k; k += l; l ^= m * 5;
    m += n; n ^= a >> 3;
    x = x * 1.0000001 + y; y = y * 0.999 + z; z += u * 1e-9;
    u -= v * 1e-6; v = v * 1.01 - w * 1e-3; w += s; s *= 0.9999;
    t += x * 1e-12;
  }
  return a ^ b ^ c ^ d ^ e ^ f ^ g ^ h ^ k ^ l ^ m ^ n ^
         (unsigned long)(x + y + z + u + v + w + s + t);
}

#define CHURN_ROUNDS 1000

static gl_ctx churn_main;

static void to_peer(void *ud) {
  peer *p = ud;
  gl_ctx_switch(&churn_main, &p->ctx, NULL);
}

static void to_main(void *ud) {
  peer *p = ud;
  gl_ctx_switch(&p->ctx, p->back, NULL);
}

static void churn_entry(void *arg, void *value) {
  peer *p = arg;
  GL_UNUSED(value);
  p->count = (long)churn(12345, CHURN_ROUNDS, to_main, p);
  gl_ctx_switch(&p->ctx, p->back, NULL);
  abort();
}

/* Two contexts run the same register-hungry loop with different seeds,
 * switching every round; each gets what it gets without switching. */
TEST(ctx_preserves_callee_saved_registers) {
  unsigned long want_main = churn(987654321, CHURN_ROUNDS, no_step, NULL);
  unsigned long want_peer = churn(12345, CHURN_ROUNDS, no_step, NULL);
  unsigned long got;
  peer p;
  CHECK_NE(want_main, want_peer);
  peer_make(&p, &churn_main, churn_entry);
  got = churn(987654321, CHURN_ROUNDS, to_peer, &p);
  CHECK_UEQ(got, want_main);
  gl_ctx_switch(&churn_main, &p.ctx, NULL);  /* its last round */
  CHECK_UEQ((unsigned long)p.count, want_peer);
}
/* }====== */

/* {====== Floating-point control ====== */

/* Each context keeps its own rounding mode: x86_64 saves MXCSR (used by
 * double arithmetic) and the x87 control word (long double); aarch64 and
 * ucontext save FPCR, which both use there.  A new context starts with
 * the mode in force when gl_ctx_make ran. */

/* 1/3 and -1/3: whatever the precision, one of the two rounds differently
 * under each pair of the modes used here. */
typedef struct quotients {
  double d[2];
  long double ld[2];
} quotients;

static quotients divide(void) {
  volatile double one = 1.0, three = 3.0;
  volatile long double lone = 1.0L, lthree = 3.0L;
  quotients q;
  q.d[0] = one / three;
  q.d[1] = -one / three;
  q.ld[0] = lone / lthree;
  q.ld[1] = -lone / lthree;
  return q;
}

static int same_double(quotients a, quotients b) {
  return a.d[0] == b.d[0] && a.d[1] == b.d[1];
}

static int same_long(quotients a, quotients b) {
  return a.ld[0] == b.ld[0] && a.ld[1] == b.ld[1];
}

static quotients near, up, down;

static void rounded_values(void) {
  CHECK_EQ(fesetround(FE_UPWARD), 0);
  up = divide();
  CHECK_EQ(fesetround(FE_DOWNWARD), 0);
  down = divide();
  CHECK_EQ(fesetround(FE_TONEAREST), 0);
  near = divide();
  /* the platform honours rounding modes */
  CHECK(!same_double(up, near) && !same_long(up, near));
  CHECK(!same_double(down, near) && !same_long(down, near));
}

static void upward_entry(void *arg, void *value) {
  peer *p = arg;
  GL_UNUSED(value);
  CHECK_EQ(fesetround(FE_UPWARD), 0);
  for (;;) {
    quotients q = divide();
    CHECK(same_double(q, up));
    CHECK(same_long(q, up));
    CHECK_EQ(fegetround(), FE_UPWARD);
    p->count++;
    gl_ctx_switch(&p->ctx, p->back, NULL);
  }
}

static void check_rounding_kept(int check_long) {
  gl_ctx self = {0};
  peer p;
  int i;
  rounded_values();
  peer_make(&p, &self, upward_entry);
  for (i = 0; i < 100; i++) {
    gl_ctx_switch(&self, &p.ctx, NULL);
    if (check_long) {
      CHECK(same_long(divide(), near));
      CHECK_EQ(fegetround(), FE_TONEAREST);
    } else {
      CHECK(same_double(divide(), near));
    }
  }
  CHECK_EQ(p.count, 100);
}

/* Double arithmetic: MXCSR on x86_64, FPCR on aarch64. */
TEST(ctx_preserves_mxcsr) { check_rounding_kept(0); }

/* Long double arithmetic and fegetround: the x87 control word on x86_64,
 * FPCR (through soft-float) on aarch64. */
TEST(ctx_preserves_x87_control_word) { check_rounding_kept(1); }

static void inherit_entry(void *arg, void *value) {
  peer *p = arg;
  GL_UNUSED(value);
  p->count = fegetround() == FE_DOWNWARD && same_double(divide(), down) &&
             same_long(divide(), down);
  gl_ctx_switch(&p->ctx, p->back, NULL);
  abort();
}

TEST(ctx_new_context_inherits_rounding_mode) {
  gl_ctx self = {0};
  peer p;
  rounded_values();
  CHECK_EQ(fesetround(FE_DOWNWARD), 0);
  peer_make(&p, &self, inherit_entry);
  CHECK_EQ(fesetround(FE_TONEAREST), 0);
  gl_ctx_switch(&self, &p.ctx, NULL);
  CHECK_EQ(p.count, 1);
  CHECK_EQ(fegetround(), FE_TONEAREST);
}
/* }====== */

/* {====== Misuse ====== */

static void returning_entry(void *arg, void *value) {
  GL_UNUSED(arg);
  GL_UNUSED(value);
}

static void switch_to_returning(void *ud) {
  gl_ctx self = {0}, c = {0};
  GL_UNUSED(ud);
  gl_ctx_make(&c, stack_new(STACK_SIZE), STACK_SIZE, returning_entry, NULL);
  gl_ctx_switch(&self, &c, NULL);
}

TEST(ctx_entry_return_aborts) {
  CHECK_CHILD(switch_to_returning, NULL, TEST_KILLED_BY(SIGABRT),
              "entry function returned");
}

TEST(ctx_names_its_implementation) {
  CHECK(strcmp(gl_ctx_impl, "x86_64") == 0 ||
        strcmp(gl_ctx_impl, "aarch64") == 0 ||
        strcmp(gl_ctx_impl, "ucontext") == 0);
}
/* }====== */
