/* The context-switch contract: one struct, two calls.  Which implementation
 * is in use (x86_64, aarch64 assembly or ucontext) is chosen by CMake; no
 * other file knows.
 *
 * What is saved: only what the platform ABI makes callee-saved, plus the
 * floating-point control words (x86_64: rbx, rbp, r12-r15, rsp, the return
 * address, the x87 control word and MXCSR; aarch64: x19-x28, fp, lr, sp,
 * d8-d15 and FPCR).  The assembly versions push these onto the stack being left and
 * keep only the stack pointer in the struct.
 *
 * A new context starts in `entry(arg, value)`, where `value` is the third
 * argument of the switch that first entered it, on a stack aligned as the
 * ABI wants at a call.  `entry` must never return: a context has no caller.
 * If it does, the process stops with a message (the first return address
 * of every new context is a trap). */
#ifndef GL_CTX_H
#define GL_CTX_H

#include <stddef.h>

typedef struct gl_ctx {
  void *sp;     /* assembly: the saved stack pointer */
  void *impl;   /* ucontext: the saved ucontext_t; unused otherwise */
} gl_ctx;

typedef void (*gl_ctx_entry)(void *arg, void *value);

/* Prepares `ctx` to run `entry(arg, ...)` on the stack [stack, stack+size).
 * The stack must be 16-byte aligned at both ends. */
void gl_ctx_make(gl_ctx *ctx, void *stack, size_t size, gl_ctx_entry entry,
                 void *arg);

/* Saves the running context into `from` and resumes `to`.  Returns, once
 * something switches back to `from`, the `value` of that switch. */
void *gl_ctx_switch(gl_ctx *from, gl_ctx *to, void *value);

/* The stack pointer a suspended context resumes with: everything above it
 * up to the top of its stack is that context's.  NULL where the
 * implementation cannot tell (ucontext), which turns shared stacks off. */
void *gl_ctx_stackptr(const gl_ctx *ctx);

/* Frees what gl_ctx_make allocated (only ucontext allocates). */
void gl_ctx_free(gl_ctx *ctx);

/* The name of the implementation, for `greenlua -v` and the tests. */
extern const char gl_ctx_impl[];

#endif
