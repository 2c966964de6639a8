/* C stacks for greenthreads: carved from large mmap'd regions, guarded,
 * pooled for reuse, and given back to the system when the pool is large.
 * No Lua, no libuv. */
#ifndef GL_STACK_H
#define GL_STACK_H

#include <stddef.h>

typedef struct gl_stack gl_stack;

struct gl_stack {
  char *base;        /* lowest usable address */
  size_t size;       /* usable bytes; the stack grows down from base+size */
  gl_stack *next;    /* free list link while pooled */
  void *occupant;    /* a shared stack: the coroutine whose frames it
                        holds (coro.c); NULL otherwise */
  unsigned char guard;  /* a gl_stack_guard value */
  unsigned char hot;    /* pooled with its pages still resident */
  unsigned char age;    /* trims survived in the pool past the hot ones */
};

/* How the page below a stack is protected. */
enum {
  GL_GUARD_NONE = 0,   /* no guard page: switch-time checks only */
  GL_GUARD_MADVISE,    /* MADV_GUARD_INSTALL: costs no map area */
  GL_GUARD_MPROTECT    /* PROT_NONE page: costs a map area */
};

/* Sets the usable size of stacks allocated from now on (rounded up to whole
 * pages; at least GL_STACK_MIN).  Returns 0, or -1 if the size is
 * unusable.  Must be called before the first gl_stack_alloc. */
int gl_stack_setsize(size_t size);
size_t gl_stack_getsize(void);

#define GL_STACK_MIN (16 * 1024)

/* Returns a stack, reusing a pooled one when it can; NULL when memory or
 * address space is exhausted. */
gl_stack *gl_stack_alloc(void);

/* Gives a stack back to the pool, pages and all. */
void gl_stack_free(gl_stack *s);

/* Returns to the system the pages of pooled stacks that stayed unused,
 * beyond the GL_STACK_HOT most recently freed, since the previous trim;
 * the address ranges stay reserved for reuse.  The hub calls it about
 * once a second, so a pool that cycles keeps its pages. */
void gl_stack_trim(void);

/* Whether `addr` lies in the guard page below `s`: the overflow handler
 * uses it to tell a stack overflow from another fault. */
int gl_stack_in_guard(const gl_stack *s, const void *addr);

/* Statistics for benchmarks and tests. */
typedef struct gl_stack_stats {
  size_t regions, total, in_use, pooled, hot;
  size_t guard_madvise, guard_mprotect, guard_none;
} gl_stack_stats;
void gl_stack_getstats(gl_stack_stats *st);

/* Test hook: make the next `n` allocations fail. */
void gl_stack_fail_next(int n);

#endif
