/* Shared macros of the C core: assertions, container_of, unused marks and
 * the status codes every blocking primitive returns.  No Lua, no libuv. */
#ifndef GL_H
#define GL_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define GL_UNUSED(x) ((void)(x))

#define gl_container_of(ptr, type, field) \
  ((type *)((char *)(ptr) - offsetof(type, field)))

/* Invariants stay on in every build: a broken one means memory is already
 * in a state we cannot reason about. */
#define GL_ASSERT(cond)                                                    \
  do {                                                                     \
    if (!(cond)) gl_fatal("%s:%d: assertion failed: %s", __FILE__,        \
                          __LINE__, #cond);                                \
  } while (0)

#if defined(__GNUC__)
#define GL_NORETURN __attribute__((noreturn))
#define GL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define GL_LIKELY(x) __builtin_expect(!!(x), 1)
#define GL_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define GL_NORETURN
#define GL_PRINTF(a, b)
#define GL_LIKELY(x) (x)
#define GL_UNLIKELY(x) (x)
#endif

/* AddressSanitizer builds annotate stack switches and double stacks. */
#if defined(__SANITIZE_ADDRESS__)
#define GL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GL_ASAN 1
#endif
#endif
#ifndef GL_ASAN
#define GL_ASAN 0
#endif

/* Status codes of parking calls (gl_hub_park, gl_waitq_wait, ...). */
enum {
  GL_OK = 0,        /* woken normally */
  GL_ETIMEDOUT = 1, /* the timeout given to the call elapsed */
  GL_EINTR = 2,     /* an interrupt (kill, Timeout) is pending: raise it */
  GL_ECLOSED = 3,   /* the object waited on was closed */
  GL_EUNWIND = 4    /* still parked: unwind to the task's body, which
                       gives the stack up (gl_hub_leave_stack) */
};

/* Prints "greenlua: fatal: <message>" on stderr and aborts (fatal.c). */
GL_NORETURN void gl_fatal(const char *fmt, ...) GL_PRINTF(1, 2);

/* The same for signal handlers: writes "greenlua: fatal: ", then each of
 * the strings given up to a NULL, then a newline, with write(2) alone,
 * and aborts. */
GL_NORETURN void gl_fatal_raw(const char *s, ...);

/* Writes n in decimal into buf (at least 21 bytes) without stdio, for
 * gl_fatal_raw's messages; returns buf. */
char *gl_fmt_u64(char *buf, unsigned long long n);

#endif
