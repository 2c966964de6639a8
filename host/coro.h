/* C coroutines: a context plus the stack it runs on.  Creating, switching
 * and finishing, with the sanitizer annotations a stack switch needs.  No
 * Lua, no libuv. */
#ifndef GL_CORO_H
#define GL_CORO_H

#include "ctx.h"
#include "gl.h"
#include "stack.h"

typedef struct gl_coro gl_coro;
typedef void (*gl_coro_fn)(gl_coro *co);

struct gl_coro {
  gl_ctx ctx;
  gl_stack *stack;     /* NULL for the thread's own stack */
  gl_coro_fn fn;
  char *saved;         /* shared stack: its frames while displaced */
  size_t nsaved;
  unsigned char shared;  /* runs on a stack it shares with others */
  unsigned char made;    /* its context exists (shared: made lazily) */
#if GL_ASAN
  void *asan_fake;     /* the sanitizer's bookkeeping of the switch */
  const void *asan_bottom;
  size_t asan_size;
#endif
};

/* Makes `co` the coroutine of the running thread's own stack. */
void gl_coro_init_main(gl_coro *co);

/* Gives `co` a stack and prepares it to run fn(co) at its first switch.
 * Returns 0, or -1 when no stack can be had. */
int gl_coro_init(gl_coro *co, gl_coro_fn fn);

/* {====== Shared stacks ======
 * A coroutine bound to a shared stack keeps its frames there only while it
 * holds the stack.  Before another coroutine bound to the same stack runs,
 * gl_coro_activate copies the used part of the holder's stack (from its
 * saved stack pointer to the top) into memory of its own, and copies the
 * newcomer's back to the very same addresses, so pointers into a stack
 * stay right.  The rule that makes this safe: while a coroutine is
 * suspended, nothing outside it may point into its stack, except what
 * the caller repoints at the saved copy once its frames are displaced
 * (the hub does so for the waiter a task is parked on). */

/* Binds `co` to the shared stack `s`; it is made at its first activation. */
void gl_coro_bind(gl_coro *co, gl_coro_fn fn, gl_stack *s);

/* The coroutine whose frames `co`'s shared stack holds, if not co's. */
gl_coro *gl_coro_occupant(const gl_coro *co);

/* Makes `co`'s shared stack hold co's frames: saves the occupant's, then
 * restores co's (or makes co at its first activation).  Must run on
 * another stack.  Returns 0, or -1 when no memory is left to save. */
int gl_coro_activate(gl_coro *co);

/* A finished coroutine leaves its shared stack. */
void gl_coro_leave(gl_coro *co);

/* Whether shared stacks work with this context switch and build. */
int gl_coro_can_share(void);
/* }====== */

/* Switches from the running coroutine `from` to `to`.  `from` must be the
 * one running.  When `from` has finished (its fn will never resume), pass
 * finishing = 1 so that sanitizers forget its frames. */
void gl_coro_switch(gl_coro *from, gl_coro *to, int finishing);

/* Gives back the pages of a suspended coroutine's private stack that lie
 * below its saved stack pointer: what deeper calls touched once and no
 * frame uses now.  They read as zeros when touched again.  Nothing for a
 * shared stack, the thread's own, or where the stack pointer is unknown.
 * Returns the bytes given back. */
size_t gl_coro_trim(gl_coro *co);

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
