/* The Lua heap on transparent huge pages (see heap.h).
 *
 * glibc's main arena grows with brk.  M_TOP_PAD makes it grow by
 * GL_HEAP_STEP at a time; after each allocation the break is compared with
 * the one last seen, and the new stretch is marked MADV_HUGEPAGE before
 * anything but malloc's own chunk headers is written there.  The kernel
 * does not extend a marked area when the break grows, so each stretch is
 * marked in turn.  The 2 MiB ranges a stretch's ends cut through stay on
 * small pages, about one in eight.  Blocks up to GL_HEAP_MMAP_MAX come
 * from the heap too, so that large tables grow on huge pages as well. */
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

static int on;
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

int gl_heap_init(void) {
  const char *env = getenv("GREENLUA_HUGEPAGES");
  if (GL_ASAN) return 0;  /* the sanitizer's allocator does not use brk */
  if (env != NULL && strcmp(env, "0") == 0) return 0;
  if (!kernel_has_thp()) return 0;
  pagemask = (uintptr_t)sysconf(_SC_PAGESIZE) - 1;
  seen = sbrk(0);
  if (seen == (char *)-1) return 0;
  mallopt(M_TOP_PAD, GL_HEAP_STEP);
  mallopt(M_MMAP_THRESHOLD, GL_HEAP_MMAP_MAX);
  on = 1;
  return 1;
}

static void grown(char *brk) {
  char *lo = (char *)((uintptr_t)seen & ~pagemask);
  if (madvise(lo, (size_t)(brk - lo), MADV_HUGEPAGE) == 0)
    huge += (size_t)(brk - seen);
  seen = brk;
}

void gl_heap_watch(void) {
  char *brk;
  if (!on) return;
  brk = sbrk(0);
  if (GL_UNLIKELY(brk != seen)) {
    if (brk > seen)
      grown(brk);
    else
      seen = brk;  /* trimmed */
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
