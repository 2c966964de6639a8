/* C coroutines: a context plus the stack it runs on.  Creating, switching
 * and finishing, with the sanitizer annotations a stack switch needs.  No
 * Lua, no libuv. */
#ifndef GL_CORO_H
#define GL_CORO_H

#include "ctx.h"
#include "stack.h"

typedef struct gl_coro gl_coro;
typedef void (*gl_coro_fn)(gl_coro *co);

struct gl_coro {
  gl_ctx ctx;
  gl_stack *stack;     /* NULL for the thread's own stack */
  gl_coro_fn fn;
  void *asan_fake;     /* sanitizer bookkeeping, unused otherwise */
  const void *asan_bottom;
  size_t asan_size;
};

/* Makes `co` the coroutine of the running thread's own stack. */
void gl_coro_init_main(gl_coro *co);

/* Gives `co` a stack and prepares it to run fn(co) at its first switch.
 * Returns 0, or -1 when no stack can be had. */
int gl_coro_init(gl_coro *co, gl_coro_fn fn);

/* Switches from the running coroutine `from` to `to`.  `from` must be the
 * one running.  When `from` has finished (its fn will never resume), pass
 * finishing = 1 so that sanitizers forget its frames. */
void gl_coro_switch(gl_coro *from, gl_coro *to, int finishing);

/* Gives the stack of a finished coroutine back to the pool. */
void gl_coro_release(gl_coro *co);

/* Called with the coroutine whose stack overflowed, before the process
 * stops; the hub sets it to name the greenthread. */
extern void (*gl_coro_overflow_hook)(gl_coro *co);

/* Installs the SIGSEGV handler, on an alternate stack, that turns a hit on
 * a guard page into a message naming the greenthread. */
void gl_coro_catch_overflow(void);

/* The coroutine running now (set by gl_coro_switch). */
extern gl_coro *gl_coro_running;

#endif
