/* C stacks for greenthreads.
 *
 * Stacks are slots carved from large mmap'd regions (MAP_NORESERVE: the
 * address range is reserved, a page costs memory only once touched).  A
 * slot is one guard page followed by the usable stack.  Linux counts map
 * areas per process (vm.max_map_count, 65530 by default) and a PROT_NONE
 * page splits its mapping in two, so one mapping or mprotect'd guard per
 * stack stops near 32,000 stacks.  Instead:
 *
 *   - where the kernel has MADV_GUARD_INSTALL (Linux 6.13), every guard
 *     page is a page-table marker that costs no map area;
 *   - otherwise guard pages are mprotect'd while a budget of map areas
 *     lasts (a share of vm.max_map_count), and stacks past it have none:
 *     the switch-time check in coro.c is what catches an overflow there.
 *
 * Finished greenthreads give their stack back to a LIFO pool with its
 * pages; gl_stack_trim, about once a second, returns the pages of stacks
 * that stayed pooled beyond the GL_STACK_HOT most recent for a whole
 * period (MADV_DONTNEED; the range stays reserved). */
#include "stack.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gl.h"

#if GL_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define SLOTS_PER_REGION 256
#define GL_STACK_HOT 64      /* pooled stacks that keep their pages */

#if GL_ASAN
#define DEFAULT_SIZE (1024 * 1024)  /* sanitizers' frames are larger */
#else
#define DEFAULT_SIZE (512 * 1024)
#endif

typedef struct region {
  struct region *next;
  char *mem;
  size_t carved;  /* slots handed out so far */
  gl_stack slots[SLOTS_PER_REGION];
} region;

static size_t pagesize, usable = DEFAULT_SIZE;
static region *current;       /* the region being carved */
static gl_stack *hot, *cold;  /* pooled stacks, LIFO */
static gl_stack_stats stats;
static int madvise_guard = -1;   /* unknown until the first try */
static long mprotect_budget = -1;
static int fail_next;

static size_t slotsize(void) { return pagesize + usable; }

static void init(void) {
  if (pagesize == 0) pagesize = (size_t)sysconf(_SC_PAGESIZE);
}

int gl_stack_setsize(size_t size) {
  init();
  if (size < GL_STACK_MIN || size > ((size_t)1 << 30)) return -1;
  if (stats.total != 0) return -1;  /* slots already carved at the old size */
  usable = (size + pagesize - 1) / pagesize * pagesize;
  return 0;
}

size_t gl_stack_getsize(void) {
  init();
  return usable;
}

/* Spends at most a third of the map areas on mprotect'd guards.  A guard
 * page inside a region splits its mapping: it adds two map areas (itself
 * and the usable range after it), so a third of the areas buys a sixth as
 * many guards (spec/c/test_stack.c counts them). */
static long guard_budget(void) {
  long max = 65530;
  FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
  if (f != NULL) {
    if (fscanf(f, "%ld", &max) != 1) max = 65530;
    fclose(f);
  }
  return max / 6;
}

static void guard(gl_stack *s) {
  char *page = s->base - pagesize;
  if (madvise_guard != 0) {
    if (madvise(page, pagesize, MADV_GUARD_INSTALL) == 0) {
      madvise_guard = 1;
      s->guard = GL_GUARD_MADVISE;
      stats.guard_madvise++;
      return;
    }
    madvise_guard = 0;  /* EINVAL: an older kernel */
  }
  if (mprotect_budget < 0) mprotect_budget = guard_budget();
  if (mprotect_budget > 0 && mprotect(page, pagesize, PROT_NONE) == 0) {
    mprotect_budget--;
    s->guard = GL_GUARD_MPROTECT;
    stats.guard_mprotect++;
    return;
  }
  s->guard = GL_GUARD_NONE;
  stats.guard_none++;
}

static region *newregion(void) {
  size_t len = SLOTS_PER_REGION * slotsize();
  region *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (r->mem == MAP_FAILED) {
    free(r);
    return NULL;
  }
  stats.regions++;
  return r;
}

/* Carves a new slot, in a new region when the current one is full. */
static gl_stack *carve(void) {
  gl_stack *s;
  if (current == NULL || current->carved == SLOTS_PER_REGION) {
    region *r = newregion();
    if (r == NULL) return NULL;
    r->next = current;
    current = r;
  }
  s = &current->slots[current->carved];
  s->base = current->mem + current->carved * slotsize() + pagesize;
  s->size = usable;
  current->carved++;
  stats.total++;
  guard(s);
  return s;
}

gl_stack *gl_stack_alloc(void) {
  gl_stack *s;
  init();
  if (GL_UNLIKELY(fail_next > 0)) {
    fail_next--;
    return NULL;
  }
  if (hot != NULL) {
    s = hot;
    hot = s->next;
    stats.hot--;
    stats.pooled--;
  } else if (cold != NULL) {
    s = cold;
    cold = s->next;
    stats.pooled--;
  } else if ((s = carve()) == NULL) {
    return NULL;
  }
  stats.in_use++;
  s->next = NULL;
  s->hot = 0;
  s->age = 0;
#if GL_ASAN
  /* LeakSanitizer does not scan mmap'd memory, and parked stacks hold the
   * only pointers to some objects; only stacks in use are scanned, and
   * never their guard pages. */
  __lsan_register_root_region(s->base, s->size);
#endif
  return s;
}

void gl_stack_free(gl_stack *s) {
  GL_ASSERT(s != NULL && stats.in_use > 0);
#if GL_ASAN
  /* Frames of the finished greenthread leave poisoned shadow behind. */
  ASAN_UNPOISON_MEMORY_REGION(s->base, s->size);
  __lsan_unregister_root_region(s->base, s->size);
#endif
  stats.in_use--;
  stats.pooled++;
  stats.hot++;
  s->hot = 1;
  s->age = 0;
  s->next = hot;
  hot = s;
}

void gl_stack_trim(void) {
  gl_stack **link = &hot, *s;
  size_t kept = 0;
  while ((s = *link) != NULL) {
    if (kept < GL_STACK_HOT || s->age == 0) {
      if (kept++ >= GL_STACK_HOT) s->age = 1;  /* next time, unless reused */
      link = &s->next;
      continue;
    }
    *link = s->next;  /* unused for a whole period: give its pages back */
    madvise(s->base, s->size, MADV_DONTNEED);
    s->hot = 0;
    s->next = cold;
    cold = s;
    stats.hot--;
  }
}

int gl_stack_in_guard(const gl_stack *s, const void *addr) {
  const char *a = addr;
  return s != NULL && a >= s->base - pagesize && a < s->base;
}

void gl_stack_getstats(gl_stack_stats *st) { *st = stats; }

void gl_stack_fail_next(int n) { fail_next = n; }
