/* The Lua heap: new memory mapped in bulk, huge pages on request.
 *
 * Every greenthread costs a few hundred bytes of fresh heap (its object,
 * its Lua thread, its saved frames), so spawning many at once is bound by
 * how fast the process gets new memory.  By default, each stretch the
 * heap grows by past its highest break so far is mapped in one call
 * (MADV_POPULATE_WRITE, Linux 5.14) instead of one fault per page as it is
 * first written: 1.2 against 2 µs a page on a virtual machine, 13% of the
 * time a million parked greenthreads take to make.  The stretch is what
 * glibc asks the kernel for at a time (the block plus its 128 KiB pad),
 * so at most that is mapped ahead of use.  With GREENLUA_HUGEPAGES=1, where
 * the kernel offers huge pages on request (THP "madvise" or "always"),
 * the heap grows in steps of GL_HEAP_STEP and each new stretch is marked
 * MADV_HUGEPAGE: one fault maps 2 MiB instead of 4 KiB.  Pages are still
 * mapped only when touched, so memory that is never used costs nothing.
 *
 * It is off by default.  A huge page needs a whole free 2 MiB block of
 * the machine's memory, and on a virtual machine with free page reporting
 * (virtio-balloon) exactly those blocks are handed back to the host once
 * free, so each one costs the host 512 faults when taken again: after
 * another program freed its memory, a million parked greenthreads took
 * 6.6-8.0 s on huge pages and 2.3-2.8 s on small ones, whose pages come
 * from the recently freed, still-mapped ones first.  Huge pages win only
 * when free 2 MiB blocks are warm (1.1 s against 2.6 s there).  No Lua,
 * no libuv. */
#ifndef GL_HEAP_H
#define GL_HEAP_H

#include <stddef.h>

#define GL_HEAP_STEP (16u << 20)

/* Turns huge pages on for the heap if GREENLUA_HUGEPAGES=1 and the
 * kernel has them to give.  Returns whether they are on. */
int gl_heap_init(void);

/* A lua_Alloc: glibc's realloc/free, mapping heap growth at once (or
 * marking it for huge pages). */
void *gl_heap_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* Maps (or marks) what the heap grew by since the last call; for code
 * that allocates with malloc and writes at once (coro.c's saved
 * frames). */
void gl_heap_watch(void);

/* Bytes of the heap marked for huge pages so far. */
size_t gl_heap_huge(void);

/* Gives the pages of free heap memory back to the system (malloc_trim)
 * when at least GL_HEAP_TRIM_MIN and an eighth of what is in use lies
 * free: what a burst of work (TLS handshakes, a large response) left
 * between blocks still in use, which free() alone never returns.  For a
 * quiet moment: the pages are faulted in again when used.  Not with huge
 * pages on.  Returns whether any memory was given back. */
#define GL_HEAP_TRIM_MIN (1u << 20)
int gl_heap_trim(void);

#endif
