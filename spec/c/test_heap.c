/* Tests of the Lua heap (host/heap.h): the allocator keeps realloc/free
 * semantics; growth of the heap is mapped at once by default; with
 * GREENLUA_HUGEPAGES=1 it is marked MADV_HUGEPAGE where the kernel offers
 * transparent huge pages, and blocks up to 32 MiB come from the heap. */
#include "test.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

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

/* Huge pages are asked for: returns whether the heap got them. */
static int init_huge(void) {
  setenv("GREENLUA_HUGEPAGES", "1", 1);
  return gl_heap_init();
}

TEST(heap_alloc_keeps_realloc_semantics) {
  char *p;
  int i;
  init_huge();
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
  if (!init_huge()) {
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
  if (!init_huge()) {
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
  if (!init_huge()) {
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

/* Off unless asked for: unset, or set to anything but 1. */
TEST(heap_huge_pages_are_off_by_default) {
  char *p;
  size_t before = gl_heap_huge();
  unsetenv("GREENLUA_HUGEPAGES");
  CHECK_EQ(gl_heap_init(), 0);
  setenv("GREENLUA_HUGEPAGES", "0", 1);
  CHECK_EQ(gl_heap_init(), 0);
  p = gl_heap_alloc(NULL, NULL, 0, 8u << 20);
  CHECK(p != NULL);
  memset(p, 1, 8u << 20);
  CHECK_UEQ(gl_heap_huge(), before);
  gl_heap_alloc(NULL, p, 8u << 20, 0);
}


/* Whether the page holding p is resident. */
static int resident(const void *p) {
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  unsigned char v = 0;
  CHECK_EQ(mincore((void *)((uintptr_t)p & ~(page - 1)), page, &v), 0);
  return v & 1;
}

/* By default, a stretch the heap grows by past its highest break so far
 * is mapped at once: the heap's last page is resident though nothing
 * wrote there (glibc's pad lies between it and the last block). */
TEST(heap_growth_is_mapped_at_once) {
  enum { BLOCK = 64 * 1024, N = 4096 };  /* up to 256 MiB */
  static char *blocks[N];
  char *top;
  int i, n, found = 0;
  if (GL_ASAN) {
    printf("skipped: the sanitizer's allocator is not glibc's\n");
    return;
  }
  unsetenv("GREENLUA_HUGEPAGES");
  CHECK_EQ(gl_heap_init(), 0);
  top = sbrk(0);
  for (n = 0; n < N && !found; n++) {  /* earlier tests left a high break */
    char *brk;
    blocks[n] = gl_heap_alloc(NULL, NULL, 0, BLOCK);
    CHECK(blocks[n] != NULL);
    brk = sbrk(0);
    if (brk > top) {
      found = resident(brk - 1);
      top = brk;
    }
  }
  CHECK(found);
  for (i = 0; i < n; i++) gl_heap_alloc(NULL, blocks[i], BLOCK, 0);
}

/* Free memory between blocks still in use goes back at a trim. */
TEST(heap_trim_gives_back_free_pages_between_blocks) {
  enum { BLOCK = 32 * 1024, N = 256 };  /* 8 MiB */
  static char *blocks[N];
  char *pin;
  int i;
  if (GL_ASAN) {
    printf("skipped: the sanitizer's allocator is not glibc's\n");
    return;
  }
  unsetenv("GREENLUA_HUGEPAGES");
  CHECK_EQ(gl_heap_init(), 0);
  gl_heap_trim();  /* what earlier tests left */
  for (i = 0; i < N; i++) {
    blocks[i] = gl_heap_alloc(NULL, NULL, 0, BLOCK);
    CHECK(blocks[i] != NULL);
    memset(blocks[i], 1, BLOCK);
  }
  pin = gl_heap_alloc(NULL, NULL, 0, 100);  /* keeps free() from trimming */
  for (i = 0; i < N; i++)
    if (i % 16 != 0) gl_heap_alloc(NULL, blocks[i], BLOCK, 0);
  CHECK(resident(blocks[N / 2 + 1] + BLOCK / 2));
  CHECK_EQ(gl_heap_trim(), 1);
  CHECK(!resident(blocks[N / 2 + 1] + BLOCK / 2));
  for (i = 0; i < N; i += 16) {  /* the blocks in use kept their bytes */
    CHECK_EQ(blocks[i][0], 1);
    CHECK_EQ(blocks[i][BLOCK - 1], 1);
    gl_heap_alloc(NULL, blocks[i], BLOCK, 0);
  }
  gl_heap_alloc(NULL, pin, 100, 0);
}
