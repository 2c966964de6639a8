/* Portable context switch on <ucontext.h>: slow (swapcontext saves the
 * signal mask with a system call) but builds wherever POSIX.1-2001 does.
 * CMake picks it when no assembly version fits the processor, or when
 * GL_CTX_UCONTEXT is set. */
#define _XOPEN_SOURCE 700
#include <stdint.h>
#include <stdlib.h>
#include <ucontext.h>

#include "../ctx.h"
#include "../gl.h"

const char gl_ctx_impl[] = "ucontext";

/* makecontext passes only ints, so a new context learns its entry, arg
 * and first value from these, set just before the switch into it. */
static gl_ctx_entry start_entry;
static void *start_arg, *passed_value;

static ucontext_t *uc(gl_ctx *ctx) {
  if (ctx->impl == NULL) {
    ctx->impl = calloc(1, sizeof(ucontext_t));
    if (ctx->impl == NULL) gl_fatal("out of memory for a context");
  }
  return ctx->impl;
}

static void trampoline(void) {
  gl_ctx_entry entry = start_entry;
  void *arg = start_arg;
  entry(arg, passed_value);
  gl_fatal("a context's entry function returned");
}

typedef struct pending {
  gl_ctx_entry entry;
  void *arg;
} pending;

void gl_ctx_make(gl_ctx *ctx, void *stack, size_t size, gl_ctx_entry entry,
                 void *arg) {
  ucontext_t *u = uc(ctx);
  pending *p;
  if (getcontext(u) != 0) gl_fatal("getcontext failed");
  /* Keep entry and arg at the top of the new stack until it first runs. */
  p = (pending *)(((uintptr_t)stack + size - sizeof(pending)) & ~(uintptr_t)15);
  p->entry = entry;
  p->arg = arg;
  u->uc_stack.ss_sp = stack;
  u->uc_stack.ss_size = (size_t)((char *)p - (char *)stack);
  u->uc_link = NULL;
  makecontext(u, trampoline, 0);
  ctx->sp = p;  /* marks "not started": the pending entry lives here */
}

void *gl_ctx_switch(gl_ctx *from, gl_ctx *to, void *value) {
  passed_value = value;
  if (to->sp != NULL) {  /* first switch into a made context */
    pending *p = to->sp;
    start_entry = p->entry;
    start_arg = p->arg;
    to->sp = NULL;
  }
  if (swapcontext(uc(from), uc(to)) != 0) gl_fatal("swapcontext failed");
  return passed_value;
}

void *gl_ctx_stackptr(const gl_ctx *ctx) {
  GL_UNUSED(ctx);
  return NULL;  /* saved inside ucontext_t, in a machine-specific field */
}

void gl_ctx_free(gl_ctx *ctx) {
  free(ctx->impl);
  ctx->impl = NULL;
}
