/* The Lua heap: growth mapped at once, or on transparent huge pages (see
 * heap.h).
 *
 * By default, after each allocation the break is compared with the one
 * last seen; the part of a new stretch above the highest break so far is
 * populated with one madvise.
 *
 * With huge pages: glibc's main arena grows with brk.  M_TOP_PAD makes
 * it grow by about GL_HEAP_STEP at a time; after each allocation the break
 * is compared with the one last seen, and the new stretch is marked
 * MADV_HUGEPAGE before anything but malloc's own chunk header is written
 * there.  The kernel does not extend a marked area when the break grows,
 * so each stretch is marked in turn.
 *
 * A 2 MiB range that already has a small page can only get more small
 * pages, one fault each.  Two kinds of range would: one that a stretch's
 * end cuts through (its lower part is faulted before the next stretch
 * exists), and the one that holds the header malloc wrote into the new
 * stretch before it was marked.  So the pad is chosen after each growth
 * to end the next stretch on a 2 MiB boundary, and the range holding the
 * header is collapsed into a huge page at once (MADV_COLLAPSE, Linux 6.1;
 * without it that one range stays on small pages).  Blocks up to
 * GL_HEAP_MMAP_MAX come from the heap too, so that large tables grow on
 * huge pages as well. */
#include "heap.h"

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gl.h"

#define GL_HEAP_MMAP_MAX (32u << 20)
#define GL_HUGE_PAGE ((uintptr_t)2 << 20)

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static int on;
static int populate;  /* new stretches are populated at once (default) */
static char *high;    /* the highest break populated so far */
static char *start;   /* the break when the heap was taken over */
static char *seen;    /* the break when last looked at */
static size_t huge;   /* bytes marked */
static uintptr_t pagemask;

static int kernel_has_thp(void) {
  char buf[128];
  size_t n;
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (f == NULL) return 0;
  n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  return strstr(buf, "[always]") != NULL || strstr(buf, "[madvise]") != NULL;
}

/* Sets the pad so that the next growth of the break ends on a 2 MiB
 * boundary.  glibc grows by the page-rounded sum of the request, the pad
 * and a chunk header, less what is left at the top; for the small blocks
 * that make up most of the heap that sum rounds to the pad plus one page.
 * A large block overshoots, and the growth after it is aimed again. */
static void pad_next(void) {
  uintptr_t brk = (uintptr_t)seen;
  uintptr_t end = (brk + GL_HEAP_STEP + GL_HUGE_PAGE - 1) & ~(GL_HUGE_PAGE - 1);
  mallopt(M_TOP_PAD, (int)(end - brk - (pagemask + 1)));
}

int gl_heap_init(void) {
  const char *env = getenv("GREENLUA_HUGEPAGES");
  on = populate = 0;
  if (GL_ASAN) return 0;  /* the sanitizer's allocator does not use brk */
  pagemask = (uintptr_t)sysconf(_SC_PAGESIZE) - 1;
  seen = start = sbrk(0);
  if (seen == (char *)-1) return 0;
  if (env == NULL || strcmp(env, "1") != 0 || !kernel_has_thp()) {
    populate = 1;  /* huge pages are opt-in: heap.h */
    if (high < seen) high = seen;
    return 0;
  }
  pad_next();
  mallopt(M_MMAP_THRESHOLD, GL_HEAP_MMAP_MAX);
  on = 1;
  return 1;
}

static void grown(char *brk) {
  char *lo = (char *)((uintptr_t)seen & ~pagemask);
  char *range = (char *)((uintptr_t)seen & ~(GL_HUGE_PAGE - 1));
  if (madvise(lo, (size_t)(brk - lo), MADV_HUGEPAGE) == 0) {
    huge += (size_t)(brk - seen);
    if (range >= start && range + GL_HUGE_PAGE <= brk)
      madvise(range, GL_HUGE_PAGE, MADV_COLLAPSE);  /* best effort */
  }
  seen = brk;
  pad_next();
}

/* Maps the pages of a stretch the heap grew by beyond its highest break
 * so far, all in one call: a fault for each page as it is first written
 * costs about two thirds more (2 against 1.2 µs a page on a virtual
 * machine).  A stretch given
 * back and taken again (free() trims the top) is left to fault in as it
 * is used, so that a heap that moves up and down at its top maps no more
 * than it touches. */
static void populated(char *brk) {
  char *lo = (char *)(((uintptr_t)(seen > high ? seen : high) + pagemask) &
                      ~pagemask);
  if (brk > high) {
    if (brk > lo && madvise(lo, (size_t)(brk - lo), MADV_POPULATE_WRITE) != 0)
      populate = 0;  /* before Linux 5.14: fault as before */
    high = brk;
  }
  seen = brk;
}

void gl_heap_watch(void) {
  char *brk;
  if (!on) {
    if (populate && GL_UNLIKELY((brk = sbrk(0)) != seen)) populated(brk);
    return;
  }
  brk = sbrk(0);
  if (GL_UNLIKELY(brk != seen)) {
    if (brk > seen)
      grown(brk);
    else {
      seen = brk;  /* trimmed */
      pad_next();
    }
  }
}

void *gl_heap_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  void *p;
  GL_UNUSED(ud);
  GL_UNUSED(osize);
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  p = realloc(ptr, nsize);
  gl_heap_watch();
  return p;
}

size_t gl_heap_huge(void) { return huge; }

int gl_heap_trim(void) {
#if GL_ASAN
  return 0;  /* the sanitizer's allocator is not glibc's */
#else
  struct mallinfo2 mi;
  if (on) return 0;  /* the pad is kept on purpose, and the huge pages */
  mi = mallinfo2();
  if (mi.fordblks < GL_HEAP_TRIM_MIN || mi.fordblks < mi.uordblks / 8)
    return 0;
  return malloc_trim(0);
#endif
}
