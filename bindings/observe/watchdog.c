/* green.watchdog(seconds, [opts]): a thread that notices a greenthread
 * running longer than `seconds` without letting others run, and has it
 * report itself (its name and Lua traceback on stderr) or, with
 * opts.interrupt, raise a catchable error where it runs.
 *
 * The thread touches no Lua state.  It watches the hub's switch counter
 * (gl_hub_switches: the one thing the switch path pays, a relaxed
 * increment): when it has not moved for `seconds` while the hub is not in
 * its loop, it asks the hub's thread, with a signal (WD_SIGNAL), to set a
 * hook.  The handler runs on the hub's thread itself, so it reads the
 * running greenthread and the Lua state that really runs (a plain
 * coroutine has its own: gl_green.co) with no race, and no Lua state can
 * be freed under it; there it calls lua_sethook, the one Lua function
 * documented as safe in a signal handler (lua.c stops a chunk on SIGINT
 * the same way).  The hook, an ordinary function of the Lua thread,
 * first puts back the hook it replaced (a user's debug.sethook, main.c's
 * SIGINT hook), then reports or raises.  A greenthread stuck inside a C
 * function runs no hook until the function returns: the thread then
 * reports it by name, from the name the handler copied.
 *
 * Between the two threads: the ask (W.state W_ASKED with the switch count
 * seen, W.asked) is published with release order before the signal; the
 * handler answers W_ARMED (after copying the name) or W_NOTASK with
 * release order, read with acquire order; the hook moves W_ARMED to
 * W_FIRED.  A hook that fires after its greenthread switched (the count
 * moved since the ask) only puts the old hook back. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "lauxgl.h"

#define WD_SIGNAL SIGURG   /* ignored by default, rarely used (Go's) */
#define WD_SIGNAME "SIGURG"
#define MS 1000000u
#define NSAVED 8           /* Lua states with our hook set at once */

enum { W_IDLE, W_ASKED, W_ARMED, W_NOTASK, W_FIRED };

static struct {
  pthread_t thread, hub;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int on;                    /* the thread runs */
  int stop;                  /* under mu */
  uint64_t limit;            /* ns, under mu */
  struct sigaction oldact;   /* WD_SIGNAL's action before ours */
  _Atomic int state;         /* W_* */
  _Atomic uint64_t asked;    /* the switch count when it asked */
  _Atomic uint64_t since;    /* monotonic ns the runaway started at */
  _Atomic uint64_t limitns;  /* the limit, for the hook */
  _Atomic int interrupt;     /* opts.interrupt */
  char name[64];             /* the runaway's, copied by the handler */
  uint64_t id;
} W = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint64_t mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* {====== On the hub's thread: the handler and the hook ====== */

/* The hook each hooked Lua state had before ours, to put back.  Only the
 * hub's thread touches them: the handler, and the hook, during which the
 * handler leaves them alone (inhook). */
typedef struct saved {
  lua_State *L;              /* NULL: free */
  lua_Hook hook;
  int mask, count;
} saved;
static saved saves[NSAVED];
static unsigned nextsave;
static volatile sig_atomic_t inhook;

static saved *findsave(lua_State *L) {
  int i;
  for (i = 0; i < NSAVED; i++)
    if (saves[i].L == L) return &saves[i];
  return NULL;
}

static void hook(lua_State *L, lua_Debug *ar);

/* Copies t's name for the watchdog's thread, without stdio. */
static void copyname(const gl_task *t) {
  size_t i = 0;
  char id[24];
  const char *s = t->name;
  if (s == NULL) {
    memcpy(W.name, "greenthread-", 12);
    i = 12;
    s = gl_fmt_u64(id, t->id);
  }
  for (; *s != '\0' && i + 1 < sizeof W.name; s++) W.name[i++] = *s;
  W.name[i] = '\0';
  W.id = t->id;
}

/* Sets the hook on the Lua state the asked-about greenthread runs; 0 if
 * it is no longer the one running (or none is). */
static int arm(void) {
  gl_task *t = gl_hub_current();
  gl_green *g;
  lua_State *L;
  saved *sv;
  if (inhook || t == NULL ||
      gl_hub_switches() != atomic_load_explicit(&W.asked,
                                                memory_order_acquire))
    return 0;
  g = gl_container_of(t, gl_green, task);
  L = g->co != NULL ? g->co : g->L;
  if (L == NULL) return 0;
  if ((sv = findsave(L)) == NULL && (sv = findsave(NULL)) == NULL)
    sv = &saves[nextsave++ % NSAVED];  /* none free: the oldest goes */
  if (sv->L != L || lua_gethook(L) != hook) {
    sv->L = L;
    sv->hook = lua_gethook(L);
    sv->mask = lua_gethookmask(L);
    sv->count = lua_gethookcount(L);
  }
  copyname(t);
  lua_sethook(L, hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE |
              LUA_MASKCOUNT, 1);
  return 1;
}

static void onsignal(int sig) {
  int e = errno;
  GL_UNUSED(sig);
  if (atomic_load_explicit(&W.state, memory_order_acquire) == W_ASKED)
    atomic_store_explicit(&W.state, arm() ? W_ARMED : W_NOTASK,
                          memory_order_release);
  errno = e;
}

/* Runs in the runaway greenthread at its next Lua step (or as soon as the
 * C function it is in returns): puts back the hook it replaced, then
 * reports or raises, unless the greenthread let others run since. */
static void hook(lua_State *L, lua_Debug *ar) {
  saved *sv;
  int expected = W_ARMED;
  double ran, limit;
  char name[64];
  gl_task *t = gl_hub_current();
  lua_State *body;
  GL_UNUSED(ar);
  inhook = 1;
  if ((sv = findsave(L)) != NULL) {
    lua_sethook(L, sv->hook, sv->mask, sv->count);
    sv->L = NULL;
  } else {
    lua_sethook(L, NULL, 0, 0);
  }
  inhook = 0;
  if (t == NULL ||
      gl_hub_switches() != atomic_load_explicit(&W.asked,
                                                memory_order_acquire) ||
      !atomic_compare_exchange_strong(&W.state, &expected, W_FIRED))
    return;
  ran = (double)(mono() - atomic_load(&W.since)) / 1e9;
  limit = (double)atomic_load(&W.limitns) / 1e9;
  gl_task_name(t, name, sizeof name);
  if (atomic_load(&W.interrupt)) {
    char msg[192];
    snprintf(msg, sizeof msg, "watchdog: greenthread '%s' (id %llu) ran "
             "%.3f s without letting others run (limit %g s)", name,
             (unsigned long long)t->id, ran, limit);
    luaL_error(L, "%s", msg);
  }
  luaL_traceback(L, L, NULL, 0);
  body = gl_container_of(t, gl_green, task)->L;
  if (body != NULL && body != L)  /* L is a coroutine: the rest */
    luaL_traceback(L, body, "in the greenthread:", 0);
  else
    lua_pushliteral(L, "");
  fflush(stdout);
  fprintf(stderr, "greenlua: watchdog: greenthread '%s' (id %llu) has run "
          "%.3f s without letting others run (limit %g s)\n%s%s%s\n", name,
          (unsigned long long)t->id, ran, limit, lua_tostring(L, -2),
          *lua_tostring(L, -1) ? "\n" : "", lua_tostring(L, -1));
  fflush(stderr);
  lua_pop(L, 2);
}
/* }====== */

/* {====== The watchdog's thread ====== */

static void pause_ms(unsigned ms) {
  struct timespec ts = {0, (long)ms * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Waits up to `ms` for W.state to leave `from`; returns the state. */
static int await(int from, unsigned ms) {
  int s;
  while ((s = atomic_load_explicit(&W.state, memory_order_acquire)) ==
             from && ms-- > 0)
    pause_ms(1);
  return s;
}

/* The count `c` has not moved for `ran` ns since `since`: has the
 * runaway greenthread hooked, and reports it by name if it is stuck in C
 * (no hook ran within a few milliseconds). */
static void runaway(uint64_t c, uint64_t since, uint64_t limit) {
  int s;
  double ran;
  atomic_store_explicit(&W.since, since, memory_order_relaxed);
  atomic_store_explicit(&W.asked, c, memory_order_relaxed);
  atomic_store_explicit(&W.state, W_ASKED, memory_order_release);
  if (pthread_kill(W.hub, WD_SIGNAL) != 0) return;
  s = await(W_ASKED, 200);
  if (s == W_ASKED) {  /* the hub's thread blocks the signal */
    atomic_store(&W.state, W_IDLE);
    return;
  }
  if (s != W_ARMED) return;
  s = await(W_ARMED, 20);
  if (s != W_ARMED || gl_hub_switches() != c) return;
  ran = (double)(mono() - since) / 1e9;
  fprintf(stderr, "greenlua: watchdog: greenthread '%s' (id %llu) has run "
          "%.3f s without letting others run (limit %g s), inside a C "
          "function; %s when it returns\n", W.name,
          (unsigned long long)W.id, ran, (double)limit / 1e9,
          atomic_load(&W.interrupt) ? "it is interrupted"
                                    : "its traceback follows");
  fflush(stderr);
}

/* Checks the counter a few times per limit (every quarter, between 1 ms
 * and 250 ms).  A runaway is reported when it has run the limit, then
 * each time it has run twice as long as at the last report; it is
 * interrupted again each limit if it goes on after an interrupt. */
static void *watch(void *arg) {
  uint64_t last = gl_hub_switches(), since = mono(), next = 0;
  GL_UNUSED(arg);
  pthread_mutex_lock(&W.mu);
  next = W.limit;
  while (!W.stop) {
    uint64_t limit = W.limit, tick = limit / 4, now, c;
    struct timespec ts;
    if (tick < 1 * MS) tick = 1 * MS;
    if (tick > 250 * MS) tick = 250 * MS;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    tick += (uint64_t)ts.tv_nsec;
    ts.tv_sec += (time_t)(tick / 1000000000u);
    ts.tv_nsec = (long)(tick % 1000000000u);
    pthread_cond_timedwait(&W.cv, &W.mu, &ts);
    if (W.stop) break;
    pthread_mutex_unlock(&W.mu);
    now = mono();
    c = gl_hub_switches();
    if (c != last || gl_hub_inloop()) {
      last = c;
      since = now;
      next = limit;
    } else if (now - since >= next) {
      runaway(c, since, limit);
      next = atomic_load(&W.interrupt) ? mono() - since + limit
                                      : 2 * (mono() - since);
    }
    pthread_mutex_lock(&W.mu);
  }
  pthread_mutex_unlock(&W.mu);
  return NULL;
}
/* }====== */

/* {====== Turning it on and off ====== */

static int start(lua_State *L) {
  struct sigaction sa;
  sigset_t all, old;
  int e;
  if (sigaction(WD_SIGNAL, NULL, &W.oldact) != 0) return -1;
  if (W.oldact.sa_handler != SIG_DFL && W.oldact.sa_handler != SIG_IGN)
    return luaL_error(L, "watchdog: " WD_SIGNAME " has a handler already");
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = onsignal;
  sa.sa_flags = SA_RESTART | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGINT);  /* main.c's SIGINT hook waits */
  if (sigaction(WD_SIGNAL, &sa, NULL) != 0) return -1;
  W.hub = pthread_self();
  W.stop = 0;
  /* The thread takes no signal meant for the process (SIGINT, SIGCHLD,
   * SIGQUIT...): they must reach the hub's thread. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  e = pthread_create(&W.thread, NULL, watch, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (e != 0) {
    sigaction(WD_SIGNAL, &W.oldact, NULL);
    return -1;
  }
  W.on = 1;
  return 0;
}

static void stop(void) {
  if (!W.on) return;
  pthread_mutex_lock(&W.mu);
  W.stop = 1;
  pthread_cond_signal(&W.cv);
  pthread_mutex_unlock(&W.mu);
  pthread_join(W.thread, NULL);
  W.on = 0;
  atomic_store(&W.state, W_IDLE);
  sigaction(WD_SIGNAL, &W.oldact, NULL);
}

/* green.watchdog(seconds, [opts]) -> true; green.watchdog(nil) turns it
 * off.  opts.interrupt: raise an error in the runaway greenthread instead
 * of reporting it. */
static int green_watchdog(lua_State *L) {
  lua_Number s;
  int interrupt = 0;
  if (lua_isnoneornil(L, 1)) {
    stop();
    lua_pushboolean(L, 1);
    return 1;
  }
  s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s > 0 && s < 1e6, 1, "seconds must be positive");
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "interrupt");
    interrupt = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  glL_current(L);
  pthread_mutex_lock(&W.mu);
  W.limit = gl_hub_ns(s);
  pthread_cond_signal(&W.cv);
  pthread_mutex_unlock(&W.mu);
  atomic_store(&W.limitns, gl_hub_ns(s));
  atomic_store(&W.interrupt, interrupt);
  if (!W.on && start(L) != 0)
    return luaL_error(L, "watchdog: cannot start its thread (%s)",
                      strerror(errno));
  lua_pushboolean(L, 1);
  return 1;
}
/* }====== */

/* Collected when the Lua state closes: the thread stops before the
 * states it might ask the hub to hook go away. */
static int watchdog_gc(lua_State *L) {
  GL_UNUSED(L);
  stop();
  return 0;
}

int luaopen_green_watchdog(lua_State *L);
int luaopen_green_watchdog(lua_State *L) {
  static int inited;
  if (!inited) {  /* the thread's waits are on the monotonic clock */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&W.cv, &ca);
    pthread_condattr_destroy(&ca);
    inited = 1;
  }
  lua_newuserdatauv(L, 1, 0);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, watchdog_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushcfunction(L, green_watchdog);
  lua_setfield(L, -2, "watchdog");
  return 0;
}
