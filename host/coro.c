/* C coroutines on gl_ctx and gl_stack.
 *
 * Stacks without a guard page (see stack.c) are checked at every switch
 * away from them: a stack pointer already below the usable range means an
 * overflow that may have written over the next stack, and the process
 * stops at once, naming the greenthread. */
#include "coro.h"

#include <signal.h>
#include <sys/mman.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "gl.h"
#include "heap.h"

/* {====== AddressSanitizer ======
 * ASan keeps a shadow of every stack: which bytes are a frame's
 * redzones.  It must be told when the running code moves to another stack
 * (the fiber annotations around every switch), and what frame copies do:
 * frames copied out of a shared stack leave their redzones behind, and
 * frames copied back find those of others.  So the part of a shared stack
 * being copied out, or copied into, is made all addressable first (the
 * copies are then plain memcpy), and so is the part a finished coroutine
 * leaves.  Restored frames lose their redzones until they return, which
 * costs some detection, never a false report.  Everything here vanishes
 * in other builds. */
#if GL_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>

static gl_coro *switched_from;  /* whose bounds the destination learns */

/* The running context leaves its stack for to's; a finished one's frames
 * (and its fake stack) are forgotten. */
#define FIBER_LEAVE(from, to, finishing)                               \
  (switched_from = (from),                                             \
   __sanitizer_start_switch_fiber((finishing) ? NULL : &(from)->asan_fake, \
                                  (to)->asan_bottom, (to)->asan_size))

/* Arrived on a stack (`fake`: what FIBER_LEAVE saved when this context
 * left it; NULL at a first entry).  The stack just left, if it was the
 * thread's own, has bounds ASan knows and we did not: learn them. */
static void fiber_arrive(void *fake) {
  const void *bottom;
  size_t size;
  __sanitizer_finish_switch_fiber(fake, &bottom, &size);
  if (switched_from != NULL && switched_from->asan_bottom == NULL) {
    switched_from->asan_bottom = bottom;
    switched_from->asan_size = size;
  }
}
#define FIBER_ARRIVE(co) fiber_arrive((co) != NULL ? (co)->asan_fake : NULL)

#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define FIBER_LEAVE(from, to, finishing) ((void)(finishing))
#define FIBER_ARRIVE(co) ((void)0)
#define UNPOISON(p, n) ((void)0)
#endif
/* }====== */

gl_coro *gl_coro_running;
void (*gl_coro_overflow_hook)(gl_coro *co);

void gl_coro_init_main(gl_coro *co) {
  memset(co, 0, sizeof *co);
  gl_coro_running = co;
}

static void entry(void *arg, void *value) {
  gl_coro *co = arg;
  GL_UNUSED(value);
  FIBER_ARRIVE((gl_coro *)NULL);  /* a first entry: no fake stack yet */
  co->fn(co);
  gl_fatal("a coroutine's function returned instead of switching away");
}

int gl_coro_init(gl_coro *co, gl_coro_fn fn) {
  gl_stack *s = gl_stack_alloc();
  if (s == NULL) return -1;
  co->stack = s;
  co->fn = fn;
  co->shared = 0;
  co->made = 1;
  co->saved = NULL;
#if GL_ASAN
  co->asan_fake = NULL;
  co->asan_bottom = s->base;
  co->asan_size = s->size;
#endif
  gl_ctx_make(&co->ctx, s->base, s->size, entry, co);
  return 0;
}

static GL_NORETURN void overflow(gl_coro *co) {
  if (gl_coro_overflow_hook != NULL) gl_coro_overflow_hook(co);
  gl_fatal_raw("stack overflow in a greenthread", NULL);
}

void gl_coro_switch(gl_coro *from, gl_coro *to, int finishing) {
  GL_ASSERT(from == gl_coro_running && from != to);
  if (from->stack != NULL && from->stack->guard == GL_GUARD_NONE) {
    char here;
    if ((uintptr_t)&here < (uintptr_t)from->stack->base + 1024)
      overflow(from);
  }
  gl_coro_running = to;
  FIBER_LEAVE(from, to, finishing);
  gl_ctx_switch(&from->ctx, &to->ctx, NULL);
  FIBER_ARRIVE(from);  /* back: someone switched to `from` again */
}

size_t gl_coro_trim(gl_coro *co) {
  static uintptr_t page;
  uintptr_t sp, lo, hi;
  if (co == gl_coro_running || co->stack == NULL || co->shared || !co->made)
    return 0;
  sp = (uintptr_t)gl_ctx_stackptr(&co->ctx);
  if (sp == 0) return 0;
  if (page == 0) page = (uintptr_t)sysconf(_SC_PAGESIZE);
  lo = (uintptr_t)co->stack->base;
  hi = (sp - page) & ~(page - 1);  /* a page of margin below the frames */
  if (hi <= lo || madvise((void *)lo, hi - lo, MADV_DONTNEED) != 0) return 0;
  return hi - lo;
}

void gl_coro_release(gl_coro *co) {
  GL_ASSERT(co != gl_coro_running);
  if (co->stack != NULL) {
    gl_stack_free(co->stack);
    co->stack = NULL;
  }
  gl_ctx_free(&co->ctx);
}

/* {====== Shared stacks ====== */

void gl_coro_bind(gl_coro *co, gl_coro_fn fn, gl_stack *s) {
  memset(&co->ctx, 0, sizeof co->ctx);
  co->stack = s;
  co->fn = fn;
  co->shared = 1;
  co->made = 0;
  co->saved = NULL;
  co->nsaved = 0;
#if GL_ASAN
  co->asan_fake = NULL;
  co->asan_bottom = s->base;
  co->asan_size = s->size;
#endif
}

gl_coro *gl_coro_occupant(const gl_coro *co) {
  gl_coro *occ = co->stack->occupant;
  return occ == co ? NULL : occ;
}

int gl_coro_activate(gl_coro *co) {
  gl_stack *s = co->stack;
  gl_coro *occ = s->occupant;
  char *top = s->base + s->size;
  GL_ASSERT(co->shared && co != gl_coro_running);
  if (occ == co) return 0;
  if (occ != NULL) {  /* displace it */
    char *sp = gl_ctx_stackptr(&occ->ctx);
    size_t n = (size_t)(top - sp);
    GL_ASSERT(sp >= s->base && sp <= top && occ->saved == NULL);
    occ->saved = malloc(n > 0 ? n : 1);
    if (occ->saved == NULL) return -1;
    gl_heap_watch();  /* before the copy first touches fresh heap */
    UNPOISON(sp, n);  /* its redzones: for the copy and the next frames */
    memcpy(occ->saved, sp, n);
    occ->nsaved = n;
  }
  if (co->saved != NULL) {  /* back to the very same addresses */
    UNPOISON(top - co->nsaved, co->nsaved);
    memcpy(top - co->nsaved, co->saved, co->nsaved);
    free(co->saved);
    co->saved = NULL;
    co->nsaved = 0;
  } else {
    GL_ASSERT(!co->made);
    gl_ctx_make(&co->ctx, s->base, s->size, entry, co);
    co->made = 1;
  }
  s->occupant = co;
  return 0;
}

void gl_coro_leave(gl_coro *co) {
  GL_ASSERT(co->shared && co != gl_coro_running);
  if (co->stack->occupant == co) {
#if GL_ASAN  /* its frames, never returned from, leave redzones behind */
    char *sp = gl_ctx_stackptr(&co->ctx);
    UNPOISON(sp, (size_t)(co->stack->base + co->stack->size - sp));
#endif
    co->stack->occupant = NULL;
  }
  free(co->saved);
  co->saved = NULL;
  co->stack = NULL;
  gl_ctx_free(&co->ctx);
}

int gl_coro_can_share(void) {
  gl_ctx probe;
  char stack[256] __attribute__((aligned(16)));
  memset(&probe, 0, sizeof probe);
  gl_ctx_make(&probe, stack, sizeof stack, entry, NULL);
  {
    int ok = gl_ctx_stackptr(&probe) != NULL;
    gl_ctx_free(&probe);
    return ok;
  }
}
/* }====== */

/* {====== Overflow handler ====== */

#if !GL_ASAN  /* AddressSanitizer reports stack overflows itself */
static void on_segv(int sig, siginfo_t *si, void *uc) {
  gl_coro *co = gl_coro_running;
  GL_UNUSED(uc);
  if (co != NULL && co->stack != NULL &&
      gl_stack_in_guard(co->stack, si->si_addr))
    overflow(co);
  /* Not ours: let the default action report it. */
  signal(sig, SIG_DFL);
  raise(sig);
}
#endif

void gl_coro_catch_overflow(void) {
#if !GL_ASAN
  static char altstack[64 * 1024];
  stack_t ss;
  struct sigaction sa;
  ss.ss_sp = altstack;
  ss.ss_size = sizeof altstack;
  ss.ss_flags = 0;
  if (sigaltstack(&ss, NULL) != 0) return;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);
#endif
}
/* }====== */
