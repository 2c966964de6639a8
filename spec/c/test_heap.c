/* Tests of the Lua heap on huge pages (host/heap.h): the allocator keeps
 * realloc/free semantics, growth of the heap is marked MADV_HUGEPAGE where
 * the kernel offers transparent huge pages, blocks up to 32 MiB come from
 * the heap, and GREENLUA_HUGEPAGES=0 turns it all off. */
#include "test.h"

#include <stdint.h>

#include "gl.h"
#include "heap.h"

/* Whether an area of /proc/self/smaps that holds [lo, hi) is marked for
 * huge pages ("hg" among its VmFlags). */
static int marked_huge(const void *lo, const void *hi) {
  FILE *f = fopen("/proc/self/smaps", "r");
  char line[512];
  int inside = 0, found = 0;
  CHECK(f != NULL);
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long a, b;
    if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, '-') != NULL &&
        line[0] != 'V') {
      inside = (uintptr_t)lo < b && (uintptr_t)hi > a;
    } else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
      if (strstr(line, " hg") != NULL) found = 1;
    }
  }
  fclose(f);
  return found;
}

TEST(heap_alloc_keeps_realloc_semantics) {
  char *p;
  int i;
  gl_heap_init();
  p = gl_heap_alloc(NULL, NULL, 0, 100);
  CHECK(p != NULL);
  for (i = 0; i < 100; i++) p[i] = (char)i;
  p = gl_heap_alloc(NULL, p, 100, 1 << 20);  /* grows, keeps contents */
  CHECK(p != NULL);
  for (i = 0; i < 100; i++) CHECK_EQ(p[i], (char)i);
  p = gl_heap_alloc(NULL, p, 1 << 20, 10);   /* shrinks */
  CHECK(p != NULL);
  for (i = 0; i < 10; i++) CHECK_EQ(p[i], (char)i);
  CHECK(gl_heap_alloc(NULL, p, 10, 0) == NULL);     /* frees */
  CHECK(gl_heap_alloc(NULL, NULL, 0, 0) == NULL);   /* nothing to free */
}

TEST(heap_growth_is_marked_for_huge_pages) {
  enum { BLOCK = 64 * 1024, N = 1024 };  /* 64 MiB in all */
  static char *blocks[N];
  int i;
  if (!gl_heap_init()) {
    printf("skipped: no transparent huge pages here (or a sanitizer)\n");
    return;
  }
  for (i = 0; i < N; i++) {
    blocks[i] = gl_heap_alloc(NULL, NULL, 0, BLOCK);
    CHECK(blocks[i] != NULL);
    memset(blocks[i], 1, BLOCK);
  }
  CHECK_UGE(gl_heap_huge(), (unsigned long long)N * BLOCK / 2);
  CHECK(marked_huge(blocks[N / 2], blocks[N / 2] + BLOCK));
  for (i = 0; i < N; i++) gl_heap_alloc(NULL, blocks[i], BLOCK, 0);
}

TEST(heap_stretches_end_on_huge_page_boundaries) {
  enum { BLOCK = 1000, N = 40 * 1024 };  /* about 40 MiB of small blocks */
  static char *blocks[N];
  uintptr_t huge = (uintptr_t)2 << 20;
  int i, aligned = 0, grew = 0;
  char *brk;
  if (!gl_heap_init()) {
    printf("skipped: no transparent huge pages here (or a sanitizer)\n");
    return;
  }
  brk = sbrk(0);
  for (i = 0; i < N; i++) {
    blocks[i] = gl_heap_alloc(NULL, NULL, 0, BLOCK);
    CHECK(blocks[i] != NULL);
    memset(blocks[i], 1, BLOCK);
    if ((char *)sbrk(0) != brk) {
      brk = sbrk(0);
      grew++;
      aligned += ((uintptr_t)brk & (huge - 1)) == 0;
    }
  }
  /* for small blocks, every growth ends where it was aimed */
  CHECK(grew >= 2);
  CHECK_EQ(aligned, grew);
  for (i = 0; i < N; i++) gl_heap_alloc(NULL, blocks[i], BLOCK, 0);
}

TEST(heap_large_blocks_come_from_the_heap) {
  char *brk0, *p;
  size_t n = 20u << 20;
  if (!gl_heap_init()) {
    printf("skipped: no transparent huge pages here (or a sanitizer)\n");
    return;
  }
  brk0 = sbrk(0);
  p = gl_heap_alloc(NULL, NULL, 0, n);
  CHECK(p != NULL);
  memset(p, 1, n);
  CHECK((char *)sbrk(0) >= brk0 + n);  /* the break moved: not an mmap */
  CHECK(p + n <= (char *)sbrk(0));
  CHECK(marked_huge(p + n / 2, p + n / 2 + 1));
  gl_heap_alloc(NULL, p, n, 0);
}

TEST(heap_env_turns_huge_pages_off) {
  char *p;
  setenv("GREENLUA_HUGEPAGES", "0", 1);
  CHECK_EQ(gl_heap_init(), 0);
  p = gl_heap_alloc(NULL, NULL, 0, 8u << 20);
  CHECK(p != NULL);
  memset(p, 1, 8u << 20);
  CHECK_UEQ(gl_heap_huge(), 0);
  gl_heap_alloc(NULL, p, 8u << 20, 0);
}

