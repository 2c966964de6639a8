/* The Lua heap on transparent huge pages.
 *
 * Every greenthread costs a few hundred bytes of fresh heap (its object,
 * its Lua thread, its saved frames), so spawning many at once is bound by
 * how fast the process gets new memory.  Where the kernel offers huge
 * pages on request (THP "madvise" or "always"), the heap grows in steps
 * of GL_HEAP_STEP and each new stretch is marked MADV_HUGEPAGE: one fault
 * maps 2 MiB instead of 4 KiB.  Pages are still mapped only when touched,
 * so memory that is never used costs nothing.  No Lua, no libuv. */
#ifndef GL_HEAP_H
#define GL_HEAP_H

#include <stddef.h>

#define GL_HEAP_STEP (16u << 20)

/* Turns huge pages on for the heap unless GREENLUA_HUGEPAGES=0 or the
 * kernel has none to give.  Returns whether they are on. */
int gl_heap_init(void);

/* A lua_Alloc: glibc's realloc/free, marking heap growth for huge
 * pages. */
void *gl_heap_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* Marks what the heap grew by since the last call; for code that
 * allocates with malloc and writes at once (coro.c's saved frames). */
void gl_heap_watch(void);

/* Bytes of the heap marked for huge pages so far. */
size_t gl_heap_huge(void);

#endif
