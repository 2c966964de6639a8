/* A small harness for the C unit tests, in the manner of libuv's
 * test/task.h: CHECK macros that print both sides and abort, TEST(name)
 * cases, helpers for cases that must kill a child process, and a main. */
#ifndef GL_TEST_H
#define GL_TEST_H

#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* `<unit> <case>` runs one case: ctest runs each in its own process, so a
 * crash fails one test.  With no argument every case runs, each in a child
 * of its own, and the last line is "N passed, N failed".  `--list` prints
 * the names. */

typedef struct test_case {
  const char *name;
  void (*fn)(void);
  struct test_case *next;
} test_case;

static test_case *test_cases, **test_last = &test_cases;

#define TEST_UNUSED __attribute__((unused))

/* Declares a case.  Each registers itself before main runs, in the order
 * of the source (spec/c/CMakeLists.txt finds them with a regex). */
#define TEST(name)                                                       \
  static void test_##name(void);                                         \
  __attribute__((constructor)) static void test_register_##name(void) { \
    static test_case c = {#name, test_##name, NULL};                     \
    *test_last = &c;                                                     \
    test_last = &c.next;                                                 \
  }                                                                      \
  static void test_##name(void)

__attribute__((noreturn, format(printf, 3, 4), unused))
static void test_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  fflush(stdout);
  fprintf(stderr, "%s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  abort();
}

#define CHECK(cond)                                                \
  do {                                                             \
    if (!(cond)) test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond); \
  } while (0)

#define CHECK_OP_(a, op, b, type, fmt)                                    \
  do {                                                                    \
    type chk_a_ = (type)(a);                                              \
    type chk_b_ = (type)(b);                                              \
    if (!(chk_a_ op chk_b_))                                              \
      test_fail(__FILE__, __LINE__, "CHECK(%s %s %s): " fmt " vs " fmt,   \
                #a, #op, #b, chk_a_, chk_b_);                             \
  } while (0)

/* Integers, compared and printed as long long. */
#define CHECK_EQ(a, b) CHECK_OP_(a, ==, b, long long, "%lld")
#define CHECK_NE(a, b) CHECK_OP_(a, !=, b, long long, "%lld")
#define CHECK_LT(a, b) CHECK_OP_(a, <, b, long long, "%lld")
#define CHECK_LE(a, b) CHECK_OP_(a, <=, b, long long, "%lld")
#define CHECK_GT(a, b) CHECK_OP_(a, >, b, long long, "%lld")
#define CHECK_GE(a, b) CHECK_OP_(a, >=, b, long long, "%lld")

/* Unsigned 64-bit values (clocks, sizes near the top of the range). */
#define CHECK_UEQ(a, b) CHECK_OP_(a, ==, b, unsigned long long, "%llu")
#define CHECK_UGE(a, b) CHECK_OP_(a, >=, b, unsigned long long, "%llu")
#define CHECK_ULT(a, b) CHECK_OP_(a, <, b, unsigned long long, "%llu")

/* Pointers. */
#define CHECK_PTR_EQ(a, b) CHECK_OP_(a, ==, b, const void *, "%p")
#define CHECK_PTR_NE(a, b) CHECK_OP_(a, !=, b, const void *, "%p")

/* Doubles, printed so that distinct values look distinct. */
#define CHECK_DBL_EQ(a, b) CHECK_OP_(a, ==, b, double, "%.17g")
#define CHECK_DBL_NE(a, b) CHECK_OP_(a, !=, b, double, "%.17g")
#define CHECK_DBL_LT(a, b) CHECK_OP_(a, <, b, double, "%.17g")
#define CHECK_DBL_GT(a, b) CHECK_OP_(a, >, b, double, "%.17g")

#define CHECK_STR_EQ(a, b)                                                \
  do {                                                                    \
    const char *chk_a_ = (a), *chk_b_ = (b);                              \
    if (strcmp(chk_a_, chk_b_) != 0)                                      \
      test_fail(__FILE__, __LINE__, "CHECK_STR_EQ(%s, %s): \"%s\" vs \"%s\"", \
                #a, #b, chk_a_, chk_b_);                                  \
  } while (0)

/* {====== Cases that end their process ====== */

/* How a child is expected to end: killed by `sig`, or, when sig is 0,
 * exiting with `code`. */
typedef struct test_end {
  int sig, code;
} test_end;

#define TEST_KILLED_BY(s) ((test_end){(s), 0})
#define TEST_EXITS_WITH(c) ((test_end){0, (c)})

/* Runs fn(ud) in a child whose stderr is captured, then checks that it
 * ended as `end` says and that its stderr contains `msg` (NULL: anything).
 * A child that returns from fn exits with 0. */
#define CHECK_CHILD(fn, ud, end, msg) \
  test_child(__FILE__, __LINE__, #fn, (fn), (ud), (end), (msg))

/* Runs fn(ud) in a child whose stderr is captured into out (n bytes, the
 * text ends with a NUL); a child that returns from fn exits with 0.
 * Returns the child's wait status. */
TEST_UNUSED static int test_run_child(const char *file, int line,
                                      void (*fn)(void *), void *ud,
                                      char *out, size_t size) {
  size_t len = 0;
  int fds[2], status;
  pid_t pid;
  ssize_t n;

  fflush(stdout);
  fflush(stderr);
  if (pipe(fds) != 0) test_fail(file, line, "pipe: %s", strerror(errno));
  pid = fork();
  if (pid < 0) test_fail(file, line, "fork: %s", strerror(errno));
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    close(fds[1]);
    fn(ud);
    fflush(NULL);
    _exit(0);
  }
  close(fds[1]);
  while (len < size - 1 &&
         ((n = read(fds[0], out + len, size - 1 - len)) > 0 ||
          (n < 0 && errno == EINTR)))
    if (n > 0) len += (size_t)n;
  out[len] = '\0';
  close(fds[0]);
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) test_fail(file, line, "waitpid: %s", strerror(errno));
  return status;
}

TEST_UNUSED static void test_child(const char *file, int line,
                                   const char *what, void (*fn)(void *),
                                   void *ud, test_end end, const char *msg) {
  static char out[64 * 1024];
  int status = test_run_child(file, line, fn, ud, out, sizeof out);

  if (end.sig != 0 &&
      !(WIFSIGNALED(status) && WTERMSIG(status) == end.sig))
    test_fail(file, line, "%s: expected death by signal %d, got %s %d; "
              "stderr:\n%s", what, end.sig,
              WIFSIGNALED(status) ? "signal" : "exit status",
              WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
              out);
  if (end.sig == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == end.code))
    test_fail(file, line, "%s: expected exit status %d, got %s %d; "
              "stderr:\n%s", what, end.code,
              WIFSIGNALED(status) ? "signal" : "exit status",
              WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
              out);
  if (msg != NULL && strstr(out, msg) == NULL)
    test_fail(file, line, "%s: stderr lacks \"%s\"; stderr:\n%s", what, msg,
              out);
}
/* }====== */

static int test_run_all(const char *argv0) {
  int passed = 0, failed = 0;
  test_case *c;
  for (c = test_cases; c != NULL; c = c->next) {
    int status;
    pid_t pid;
    fflush(stdout);
    pid = fork();
    if (pid < 0) {
      perror("fork");
      return 1;
    }
    if (pid == 0) {
      c->fn();
      fflush(NULL);
      _exit(0);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      passed++;
      printf("ok     %s\n", c->name);
    } else {
      failed++;
      printf("FAILED %s (%s %d)\n", c->name,
             WIFSIGNALED(status) ? "signal" : "exit status",
             WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
  }
  printf("%s: %d passed, %d failed\n", argv0, passed, failed);
  return failed != 0;
}

int main(int argc, char **argv) {
  test_case *c;
  setvbuf(stdout, NULL, _IONBF, 0);
  if (argc < 2) return test_run_all(argv[0]);
  if (strcmp(argv[1], "--list") == 0) {
    for (c = test_cases; c != NULL; c = c->next) puts(c->name);
    return 0;
  }
  for (c = test_cases; c != NULL; c = c->next) {
    if (strcmp(c->name, argv[1]) == 0) {
      c->fn();
      return 0;
    }
  }
  fprintf(stderr, "%s: no case named '%s' (--list shows them)\n", argv[0],
          argv[1]);
  return 2;
}

#endif
