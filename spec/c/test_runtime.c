/* Tests of the runtime (host/green.c) when memory runs out: a Lua
 * allocator of the test's own fails, in turn, at every allocation a
 * script makes (spawning, starting from the pool, ending with several
 * results, links, failures and their tracebacks, kills before the start,
 * Timeouts, a deadlock report).  Each run is a child process, which must
 * either go on (the memory error raised where Lua code catches or
 * reports it: exit status 0 or 1) or stop with a "greenlua: fatal:"
 * message; never crash, hang, or draw a sanitizer report, which is what
 * an error jumping to a handler on another C stack does. */
#include "test.h"

#include <lauxlib.h>
#include <lualib.h>

#include "green.h"
#include "hub.h"

#if defined(__SANITIZE_ADDRESS__)
/* Leaks are expected where the process stops in the middle of things. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "detect_leaks=0"; }
#endif

/* {====== The failing allocator ====== */

static unsigned long nalloc, fail_from = (unsigned long)-1, fail_to;
static int counting;

/* Fails the allocations numbered fail_from to fail_to (counted from the
 * start of the script; growing blocks only: Lua cannot fail a shrink). */
static void *failing_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  GL_UNUSED(ud);
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  if (counting && (ptr == NULL || nsize > osize)) {
    nalloc++;
    if (nalloc >= fail_from && nalloc <= fail_to) return NULL;
  }
  return realloc(ptr, nsize);
}
/* }====== */

/* {====== Running a script as greenlua does ====== */

static int pmain(lua_State *L) {
  const char *script = lua_touserdata(L, 1);
  luaL_openlibs(L);
  gl_runtime_open(L);
  if (luaL_loadstring(L, script) != LUA_OK) return lua_error(L);
  counting = 1;
  lua_call(L, 0, 0);
  gl_runtime_wait(L);
  counting = 0;
  return 0;
}

static void print_count(void) {
  fprintf(stderr, "allocations: %lu\n", nalloc);
}

/* Runs `script` in the main greenthread, then waits for the others.
 * Exits 0, or 1 after printing an error that reached the main chunk (or
 * a deadlock report).  Prints how many allocations were counted. */
static void run_script(const char *script) {
  lua_State *L = lua_newstate(failing_alloc, NULL);
  int status;
  CHECK(L != NULL);
  atexit(print_count);
  lua_pushcfunction(L, pmain);
  lua_pushlightuserdata(L, (void *)script);
  status = lua_pcall(L, 1, 0, 0);
  counting = 0;
  /* An error raised outside any protected call of its greenthread lands
   * here, in the main thread's handler, on another C stack: the task the
   * hub thinks is running then is not the main one. */
  if (status != LUA_OK && gl_hub_current() != gl_hub_main()) {
    fprintf(stderr, "an error jumped across C stacks: %s\n",
            lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
    fflush(NULL);
    _exit(3);
  }
  if (status != LUA_OK) {
    fprintf(stderr, "error: %s\n", lua_type(L, -1) == LUA_TSTRING
                                   ? lua_tostring(L, -1) : "(not a string)");
    exit(1);
  }
  exit(0);
}
/* }====== */

/* {====== Each allocation in turn ====== */

typedef struct outcome {
  int ok, errors, fatals;
} outcome;

typedef struct trial_args {
  const char *script;
  unsigned long from, to;
} trial_args;

static void trial_child(void *ud) {
  trial_args *a = ud;
  alarm(30);  /* a hang fails by SIGALRM */
  fail_from = a->from;
  fail_to = a->to;
  run_script(a->script);
}

/* Runs `script` in a child with allocations [from, to] failing, and
 * checks how it ended.  Returns the child's stderr. */
static const char *trial(const char *script, unsigned long from,
                         unsigned long to, outcome *out) {
  static char err[64 * 1024];
  trial_args a;
  int status;
  a.script = script;
  a.from = from;
  a.to = to;
  status = test_run_child(__FILE__, __LINE__, trial_child, &a, err,
                          sizeof err);
  if (strstr(err, "Sanitizer") != NULL || strstr(err, "runtime error") != NULL)
    test_fail(__FILE__, __LINE__, "allocations %lu-%lu failing: a sanitizer "
              "report:\n%s", from, to, err);
  if (WIFEXITED(status) && WEXITSTATUS(status) <= 1) {
    if (WEXITSTATUS(status) == 0) out->ok++;
    else out->errors++;
  } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT &&
             strstr(err, "greenlua: fatal: ") != NULL &&
             strstr(err, "assertion failed") == NULL) {
    out->fatals++;
  } else {
    test_fail(__FILE__, __LINE__, "allocations %lu-%lu failing: %s %d; "
              "stderr:\n%s", from, to,
              WIFSIGNALED(status) ? "signal" : "exit status",
              WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
              err);
  }
  return err;
}

/* How many allocations the script makes when none fails. */
static unsigned long count(const char *script, int ends_in_error) {
  outcome o = {0, 0, 0};
  const char *err = trial(script, (unsigned long)-1, 0, &o);
  const char *p = strstr(err, "allocations: ");
  CHECK_EQ(ends_in_error ? o.errors : o.ok, 1);
  CHECK(p != NULL);
  return strtoul(p + strlen("allocations: "), NULL, 10);
}

/* Fails each allocation of the script in turn (with the one retried
 * after Lua's emergency collection), at most `runs` of them spread
 * evenly; with `exhaust`, every allocation from there on fails.  The
 * script ends in an error (exit status 1) when nothing fails if
 * `ends_in_error`. */
static void sweep(const char *script, int ends_in_error, int exhaust,
                  unsigned long runs) {
  unsigned long total = count(script, ends_in_error), k, step;
  outcome o = {0, 0, 0};
  CHECK_GT(total, 50);
  step = total / runs + 1;
  for (k = 1; k <= total; k += step)
    trial(script, k, exhaust ? (unsigned long)-1 : k + 1, &o);
  printf("%lu allocations: %d went on, %d raised to the main chunk, "
         "%d stopped cleanly\n", total, o.ok, o.errors, o.fatals);
  CHECK_GT(o.ok + o.errors, 0);
}
/* }====== */

static const char lifecycle[] =
  "local green = require 'green'\n"
  "local gs = {}\n"
  "for i = 1, 6 do\n"
  "  gs[i] = green.spawn(function(a, b)\n"
  "    green.sleep(0); return a, b, 'x'\n"
  "  end, i, {i})\n"
  "end\n"
  "gs[1]:link(function(g) return g.value end)\n"
  "green.spawn(function() error({}) end)\n"
  "green.spawn(function() error('boom') end)\n"
  "green.spawn(function() coroutine.yield(1) end)\n"
  "local k = green.spawn(function() end); k:kill('k', false)\n"
  "green.spawn(function()\n"
  "  local t = green.Timeout(0):start(); pcall(green.sleep, 1)\n"
  "end)\n"
  "green.spawn(function()\n"
  "  local t <close> = green.Timeout(10):start(); return 1, 2\n"
  "end)\n"
  "local v = green.spawn(function() green.sleep(5) end)\n"
  "green.sleep(0); v:kill()\n"
  "green.joinall(gs)\n";

static const char deadlocked[] =
  "local green = require 'green'\n"
  "local e = green.Event()\n"
  "for i = 1, 4 do green.spawn(function() e:wait() end) end\n"
  "green.spawn(function() green.sleep(0); e:wait() end)\n";

TEST(runtime_survives_each_failed_allocation) {
  sweep(lifecycle, 0, 0, 400);
}

TEST(runtime_survives_running_out_of_memory) {
  sweep(lifecycle, 0, 1, 150);
}

TEST(runtime_reports_deadlock_or_stops_cleanly_without_memory) {
  sweep(deadlocked, 1, 0, 200);
  sweep(deadlocked, 1, 1, 100);
}
