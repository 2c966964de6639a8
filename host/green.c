/* Greenthreads: hub tasks that run a Lua function on a Lua thread of their
 * own, and the runtime around them (the main greenthread, interrupts that
 * carry Lua values, the report of errors and deadlocks, the embedded Lua
 * parts of the green module).  The Lua objects are in bindings/.
 *
 * Lua errors.  Any Lua API call that allocates can raise a memory error,
 * which longjmps to the innermost protected call of that Lua thread, or,
 * in a thread without one, of the main thread: a handler that lives on
 * another C stack than a greenthread's or the hub's.  So here every call
 * that can raise runs either in a Lua C function called by Lua (the
 * error goes to its caller, on this stack), or under a lua_pcall made on
 * this stack (pcallon), which ends the process with a message if it
 * fails: that happens only when memory ran out where nothing can be
 * undone.  The paths that run for every greenthread (its start from the
 * pool, its end with no more than one result) allocate nothing and call
 * nothing that could raise. */
#include "green.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "gl.h"

/* What the runtime keeps lives in fixed slots of hubL, a Lua thread no
 * greenthread runs on: reaching them costs no registry lookup. */
enum {
  SLOT_POOL = 1,   /* a thread whose stack holds finished greenthreads'
                      Lua threads for reuse */
  SLOT_LIVE,       /* the userdata of every greenthread not ended, by
                      gl_green.ref: what keeps them alive */
  SLOT_INTR,       /* interrupt cause (light userdata) -> value it raises */
  SLOT_EXIT,       /* the GreenletExit value */
  SLOT_MT,         /* the greenthread metatable */
  SLOT_SAFE        /* safeL */
};
const void *gl_green_mt;

/* Values of a greenthread's userdata.  UV_BODY holds, in turn, the
 * function until it starts, its Lua thread while it runs (which keeps the
 * thread alive), and what it ended with: the value itself for one, a table
 * for more.  The arguments wait in UV_ARGS... until the start.  UV_EXTRA
 * is a table of what few greenthreads have (GL_GREEN_NAME...), made on
 * first use: a greenthread costs two values, not five. */
enum { UV_BODY = 1, UV_EXTRA, UV_ARGS };

/* Finished greenthreads give their Lua thread back for the next ones:
 * pushing and popping on a Lua thread's stack costs less than a table. */
#define POOL_MAX 1024
static int npool;          /* threads on poolL's stack */
static lua_State *poolL;

static lua_State *hubL;    /* the runtime's slots; never in a call, so
                              that they stay at fixed indices */
static lua_State *safeL;   /* where the runtime's own protected work runs
                              (pcallon): nothing parks under it */

/* The greenthread whose body runs on L, kept in L's extra space; NULL for
 * other threads (which copy the main thread's, NULL, when made). */
static gl_green **bodyslot(lua_State *L) {
  return (gl_green **)lua_getextraspace(L);
}
static gl_green *bodyof(lua_State *L) { return *bodyslot(L); }

/* Slots of SLOT_LIVE that ended greenthreads left, for the next ones: a
 * free list of our own costs less than luaL_ref's. */
static int *freeslots;
static size_t nfree, capfree;
static int lastslot;

/* Calls f(L) with the n values on top of L's stack under lua_pcall, on
 * the running C stack; f's results replace them (nres: LUA_MULTRET or a
 * count).  Ends the process if f fails (`what` says what was being done):
 * only for work that must not fail halfway. */
static void pcallon(lua_State *L, lua_CFunction f, int n, int nres,
                    gl_green *g, const char *what) {
  char name[64];
  lua_pushcfunction(L, f);
  lua_insert(L, -(n + 1));
  if (lua_pcall(L, n, nres, 0) == LUA_OK) return;
  if (g != NULL)
    gl_fatal("%s greenthread '%s' (id %llu): %s", what,
             gl_task_name(&g->task, name, sizeof name),
             (unsigned long long)g->task.id,
             lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                             : "error object is not a string");
  gl_fatal("%s: %s", what, lua_type(L, -1) == LUA_TSTRING
           ? lua_tostring(L, -1) : "error object is not a string");
}

/* Anchors the greenthread userdata on top of L's stack (which stays) in
 * SLOT_LIVE; returns its slot.  L is a caller's, in a Lua C function: a
 * memory error of the table goes to it. */
static int anchor(lua_State *L) {
  int slot = nfree > 0 ? freeslots[--nfree] : ++lastslot;
  lua_pushvalue(hubL, SLOT_LIVE);
  lua_xmove(hubL, L, 1);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, slot);
  lua_pop(L, 1);
  return slot;
}

static void unanchor(int slot) {
  if (nfree == capfree) {
    size_t cap = capfree ? capfree * 2 : 256;
    int *p = realloc(freeslots, cap * sizeof *p);
    if (p == NULL) gl_fatal("out of memory");
    freeslots = p;
    capfree = cap;
  }
  lua_pushnil(hubL);
  lua_rawseti(hubL, SLOT_LIVE, slot);
  freeslots[nfree++] = slot;
}

static void pushslot(lua_State *L, int slot) {
  lua_pushvalue(hubL, slot);
  lua_xmove(hubL, L, 1);
}

void gl_green_pushexit(lua_State *L) { pushslot(L, SLOT_EXIT); }
static gl_green *maing;

void (*gl_green_end_hook)(lua_State *L, gl_green *g);

gl_green *gl_green_current(void) {
  gl_task *t = gl_hub_current();
  GL_ASSERT(t != NULL);
  return gl_container_of(t, gl_green, task);
}

void gl_green_push(lua_State *L, gl_green *g) {
  GL_ASSERT(g->ref != LUA_NOREF);
  lua_rawgeti(hubL, SLOT_LIVE, g->ref);
  lua_xmove(hubL, L, 1);
}

int gl_green_getextra(lua_State *L, int idx, int key) {
  if (lua_getiuservalue(L, idx, UV_EXTRA) != LUA_TTABLE) return LUA_TNIL;
  key = lua_rawgeti(L, -1, key);
  lua_remove(L, -2);
  return key;
}

void gl_green_setextra(lua_State *L, int idx, int key) {
  idx = lua_absindex(L, idx);
  if (lua_getiuservalue(L, idx, UV_EXTRA) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, GL_GREEN_TRACE, 0);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, idx, UV_EXTRA);
  }
  lua_insert(L, -2);
  lua_rawseti(L, -2, key);
  lua_pop(L, 1);
}

int gl_green_pushresults(lua_State *L, gl_green *g, int idx) {
  int i, t;
  if (g->nres == 0 || !g->ended) return 0;
  lua_getiuservalue(L, idx, UV_BODY);
  if (g->nres == 1) return 1;
  luaL_checkstack(L, g->nres, "too many results");
  t = lua_gettop(L);
  for (i = 1; i <= g->nres; i++) lua_rawgeti(L, t, i);
  lua_remove(L, t);
  return g->nres;
}

/* {====== Interrupts ====== */

/* Pushes the value the first pending interrupt of g raises, and takes it
 * (hub.h, rule 2).  The caller saw GL_EINTR, and nothing ran since: one
 * is pending. */
static void pushpending(lua_State *L, gl_green *g) {
  gl_intr *cause = gl_hub_take_interrupt(&g->task);
  GL_ASSERT(cause != NULL);
  luaL_checkstack(L, 4, NULL);
  pushslot(L, SLOT_INTR);
  lua_pushlightuserdata(L, cause);
  lua_rawget(L, -2);
  lua_pushlightuserdata(L, cause);
  lua_pushnil(L);
  lua_rawset(L, -4);
  lua_remove(L, -2);
  if (cause->kind == GL_INTR_TIMEOUT && cause->ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, cause->ref);  /* raised: unanchor */
    cause->ref = LUA_NOREF;
  }
}

int gl_green_raise(lua_State *L) {
  pushpending(L, gl_green_current());
  return lua_error(L);
}

void gl_green_setcause(lua_State *L, gl_intr *cause, int idx) {
  idx = lua_absindex(L, idx);
  pushslot(L, SLOT_INTR);
  lua_pushlightuserdata(L, cause);
  lua_pushvalue(L, idx);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

void gl_green_interrupt(lua_State *L, gl_green *g, gl_intr *cause, int idx) {
  if (g->ended || gl_cause_pending(cause)) return;
  gl_green_setcause(L, cause, idx);
  gl_hub_interrupt(&g->task, cause);
}

void gl_green_forget(lua_State *L, gl_intr *cause) {
  pushslot(L, SLOT_INTR);
  lua_pushlightuserdata(L, cause);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}
/* }====== */

/* {====== Running a greenthread ====== */

static const char *name_of(gl_green *g) {
  static char buf[64];
  return gl_task_name(&g->task, buf, sizeof buf);
}

/* Prints the error of g with its traceback; allocates nothing. */
static void report(gl_green *g) {
  lua_State *L = g->L;
  const char *trace;
  gl_green_push(L, g);
  gl_green_getextra(L, -1, GL_GREEN_TRACE);
  trace = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  fflush(stdout);
  fprintf(stderr, "greenlua: error in greenthread '%s' (id %llu):\n%s\n",
          name_of(g), (unsigned long long)g->task.id,
          trace ? trace : "(no traceback)");
  fflush(stderr);
  lua_pop(L, 2);
}

/* Under pcallon on safeL: a new Lua thread, left on hubL's stack. */
static int newthread(lua_State *S) {
  lua_newthread(S);
  lua_xmove(S, hubL, 1);
  return 0;
}

/* Takes a Lua thread from the pool, or makes one, for g.  The pool and
 * new threads are reached through hubL, which no greenthread runs on;
 * nothing here yields, so using it from any greenthread's stack is safe.
 * A pooled thread may still carry a hook its last greenthread set
 * (debug.sethook): it is cleared. */
static lua_State *takethread(gl_green *g) {
  lua_State *T;
  if (npool > 0) {
    lua_xmove(poolL, hubL, 1);
    npool--;
    T = lua_tothread(hubL, -1);
    lua_sethook(T, NULL, 0, 0);
  } else {
    pcallon(safeL, newthread, 0, 0, g, "cannot start");
    T = lua_tothread(hubL, -1);
  }
  return T;  /* on hubL's stack: the caller anchors it */
}

/* Gives an ended greenthread's thread to the pool, unless Lua code may
 * still hold it (coroutine.running handed it out): a stale handle must
 * never reach a later greenthread that would get the thread. */
static void givethread(gl_green *g, lua_State *T) {
  lua_settop(T, 0);
  if (npool < POOL_MAX && !g->escaped) {
    lua_pushthread(T);
    lua_xmove(T, poolL, 1);
    npool++;
  }
}

/* Records what g's body ended with, above g's userdata at 1 on L: its
 * results, or its error.  Allocates nothing for one value or none. */
static void record(lua_State *L, gl_green *g) {
  g->nres = lua_gettop(L) - 1;  /* above ud */
  if (g->nres == 0) {
    lua_pushnil(L);
    lua_setiuservalue(L, 1, UV_BODY);
  } else if (g->nres == 1) {
    lua_setiuservalue(L, 1, UV_BODY);
  } else {
    int i;
    lua_createtable(L, g->nres, 0);
    lua_insert(L, 2);
    for (i = g->nres; i >= 1; i--) lua_rawseti(L, 2, i);
    lua_setiuservalue(L, 1, UV_BODY);
  }
  g->ended = 1;
}

/* Under pcallon, with g's userdata at 1 and what its body ended with
 * above it: records it, settles what is still pending (the end hook
 * cancels the Timeouts g started, a kill has nothing left to stop),
 * wakes joiners and starts links. */
static int conclude(lua_State *L) {
  gl_green *g = lua_touserdata(L, 1);
  record(L, g);
  if (gl_green_end_hook != NULL) gl_green_end_hook(L, g);
  while (gl_hub_pending(&g->task)) {
    pushpending(L, g);
    lua_pop(L, 1);
  }
  gl_waitq_wake_all(&g->joiners, GL_OK);
  if (g->haslinks && gl_green_getextra(L, 1, GL_GREEN_LINKS) == LUA_TTABLE) {
    lua_Integer i, n = luaL_len(L, -1);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      lua_pushvalue(L, 1);
      gl_green_spawn(L, 1, 0);
      lua_pop(L, 1);
    }
  }
  return 0;
}

/* Runs after the body, with L holding the greenthread's userdata and
 * what the body ended with (its results, or its error if status is not
 * LUA_OK): reports a failure, concludes (above), and drops the reference
 * that kept the greenthread alive.  The common end (one result or none,
 * nothing pending, no Timeout, no link) does the same without a
 * protected call: there it allocates nothing, and the end hook has
 * nothing to do. */
static void finish(gl_green *g, int status) {
  lua_State *L = g->L;
  int anchor;
  lua_pushthread(L);  /* L stays alive once its result replaces it */
  lua_xmove(L, hubL, 1);
  anchor = lua_gettop(hubL);
  if (status != LUA_OK) {
    pushslot(L, SLOT_EXIT);
    g->failed = !lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
    if (g->failed) report(g);
  }
  if (lua_gettop(L) <= 2 && g->timeouts == NULL && !g->haslinks &&
      !gl_hub_pending(&g->task)) {
    record(L, g);
    gl_waitq_wake_all(&g->joiners, GL_OK);
  } else {
    pcallon(L, conclude, lua_gettop(L), 0, g, "cannot end");
  }
  unanchor(g->ref);
  g->ref = LUA_NOREF;
  g->L = NULL;
  *bodyslot(L) = NULL;
  givethread(g, L);
  GL_ASSERT(lua_gettop(hubL) == anchor);
  lua_pop(hubL, 1);
}

static int closethread(lua_State *L) {
#if LUA_VERSION_NUM > 504 || LUA_VERSION_RELEASE_NUM >= 50406
  return lua_closethread(L, NULL);
#else
  return lua_resetthread(L);
#endif
}

/* Under lua_pcall: the error message of the error object at 1, with the
 * traceback at 2 after it. */
static int tracemsg(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)",
                            luaL_typename(L, 1));
  }
  lua_pushfstring(L, "%s\n%s", msg, lua_tostring(L, 2));
  return 1;
}

/* What failed() works on, handed to its protected parts. */
typedef struct failure {
  gl_green *g;
  lua_State *L;      /* the body's thread */
  int yielded;       /* it yielded to nobody, rather than failed */
  int report;        /* not a GreenletExit: print it with a traceback */
} failure;

/* Under lua_pcall on safeL, while L still holds the failed body's frames
 * and its error on top (left there): whether to report it and, if so,
 * its traceback, kept in g's userdata. */
static int tracefailure(lua_State *S) {
  failure *f = lua_touserdata(S, 1);
  f->report = 1;
  if (!f->yielded) {
    lua_xmove(f->L, S, 1);  /* a copy of the error, the original back */
    lua_pushvalue(S, -1);
    lua_xmove(S, f->L, 1);
    pushslot(S, SLOT_EXIT);
    f->report = !lua_rawequal(S, -1, -2);  /* killed: nothing to report */
  }
  if (f->report) {
    gl_green_push(S, f->g);
    luaL_traceback(S, f->L, NULL, 0);
    gl_green_setextra(S, -2, GL_GREEN_TRACE);
  }
  return 0;
}

/* Under lua_pcall on L, reset: the error at 1 (nil: the yield's), the
 * failure at 2.  Puts the message in front of the traceback; returns
 * the error. */
static int messagefailure(lua_State *L) {
  failure *f = lua_touserdata(L, 2);
  lua_settop(L, 1);
  if (lua_isnil(L, 1) && f->yielded) {
    lua_pushliteral(L, "attempt to yield from outside a coroutine");
    lua_replace(L, 1);
  }
  if (f->report) {
    gl_green_push(L, f->g);
    lua_pushcfunction(L, tracemsg);
    lua_pushvalue(L, 1);
    gl_green_getextra(L, 2, GL_GREEN_TRACE);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {  /* __tostring failed */
      gl_green_getextra(L, 2, GL_GREEN_TRACE);
      lua_pushfstring(L, "(error object is a %s value)\n%s",
                      luaL_typename(L, 1), lua_tostring(L, -1));
    }
    gl_green_setextra(L, 2, GL_GREEN_TRACE);
    lua_settop(L, 1);
  }
  return 1;
}

/* The body of g failed (or yielded with coroutine.yield, to nobody), and
 * L still holds its frames with the error (or the yielded values) on
 * top.  Records the traceback, unless the error is a GreenletExit, and
 * resets L for reuse, which closes its pending to-be-closed variables
 * (their __close may block: nothing is left on hubL or safeL meanwhile).
 * Leaves L holding g's userdata and the error; returns the status to
 * finish with. */
static int failed(gl_green *g, lua_State *L, int status) {
  failure f;
  f.g = g;
  f.L = L;
  f.yielded = status == LUA_YIELD;
  f.report = 0;
  /* Without memory for the traceback, the error is reported without. */
  lua_pushcfunction(safeL, tracefailure);
  lua_pushlightuserdata(safeL, &f);
  if (lua_pcall(safeL, 1, 0, 0) != LUA_OK) lua_pop(safeL, 1);
  if (closethread(L) == LUA_OK) {  /* it had yielded: the error is gone */
    lua_settop(L, 0);
    lua_pushnil(L);
    f.yielded = 1;
  } else {  /* the error, or that of a __close that failed */
    lua_settop(L, 1);
    f.yielded = 0;
  }
  /* Without memory for the message, the error stays as it is (for a
   * yield: the memory error's message). */
  lua_pushcfunction(L, messagefailure);
  lua_pushvalue(L, 1);
  lua_pushlightuserdata(L, &f);
  if (lua_pcall(L, 2, 1, 0) == LUA_OK || f.yielded) lua_replace(L, 1);
  else lua_pop(L, 1);
  gl_green_push(L, g);
  lua_insert(L, 1);
  return LUA_ERRRUN;
}

/* Under pcallon on g's thread, holding g's userdata: the value of the
 * kill of a greenthread killed before it started, as its error. */
static int killedunstarted(lua_State *L) {
  pushpending(L, bodyof(L));
  return 1;
}

static void run(gl_task *t) {
  gl_green *g = gl_container_of(t, gl_green, task);
  lua_State *L = g->L;
  int status, nres, i;
  if (L != NULL) {  /* back after it unwound its frames while parked */
    status = lua_resume(L, NULL, 0, &nres);
  } else {
    if (g->ns > 0) gl_hub_sleep(g->ns);  /* spawn_later */
    L = g->L = takethread(g);  /* anchored on hubL's stack meanwhile */
    *bodyslot(L) = g;
    gl_green_push(L, g);
    lua_getiuservalue(L, 1, UV_BODY);  /* L: ud fn */
    lua_pushthread(L);
    lua_setiuservalue(L, 1, UV_BODY);  /* anchored by g while it runs */
    lua_pop(hubL, 1);
    if (gl_hub_pending(t)) {  /* killed before it started: fn never runs */
      lua_settop(L, 1);
      pcallon(L, killedunstarted, 0, 1, g, "cannot end");
      finish(g, LUA_ERRRUN);
      return;
    }
    if (!lua_checkstack(L, g->nargs))  /* raises nothing */
      gl_fatal("cannot start greenthread '%s' (id %llu): no memory for "
               "its %d arguments", name_of(g),
               (unsigned long long)t->id, g->nargs);
    for (i = UV_ARGS; i < UV_ARGS + g->nargs; i++) {
      lua_getiuservalue(L, 1, i);
      lua_pushnil(L);
      lua_setiuservalue(L, 1, i);  /* let them be collected */
    }
    status = lua_resume(L, NULL, g->nargs, &nres);
  }
  if (status == LUA_YIELD && t->unwinding) gl_hub_leave_stack();
  if (status != LUA_OK) status = failed(g, L, status);
  finish(g, status);
}

gl_green *gl_green_spawn(lua_State *L, int nargs, uint64_t delay_ns) {
  gl_green *g;
  int i;
  luaL_checkstack(L, 4, NULL);
  g = lua_newuserdatauv(L, sizeof *g, UV_ARGS - 1 + nargs);
  memset(g, 0, sizeof *g);
  pushslot(L, SLOT_MT);
  lua_setmetatable(L, -2);
  lua_insert(L, -(nargs + 2));             /* ud fn args... */
  for (i = UV_ARGS - 1 + nargs; i >= UV_ARGS; i--)
    lua_setiuservalue(L, -(i - UV_ARGS + 3), i);
  lua_setiuservalue(L, -2, UV_BODY);
  g->nargs = nargs;
  gl_task_init(&g->task, run);
  gl_waitq_init(&g->joiners);
  g->kill.kind = GL_INTR_KILL;
  g->kill.ref = LUA_NOREF;
  g->ns = delay_ns;
  g->ref = anchor(L);
  gl_hub_spawn(&g->task);
  return g;
}
/* }====== */

/* {====== Waits that give the stack up ====== */

/* Ends a wait: the waiter leaves its queue (GL_EINTR before parking
 * leaves it linked) and k runs. */
static int waited(lua_State *L, gl_green *g, int rc, gl_green_k k) {
  g->task.unwindable = 0;
  gl_waitq_remove(&g->w);
  return k(L, rc, &g->w);
}

static int resumed(lua_State *L, int status, lua_KContext ctx);

/* Parks g on its waiter (linked already) for g->ns, then runs k, and
 * does so again while k returns GL_GREEN_AGAIN.  The frames unwind from
 * here when the hub asks. */
static int park(lua_State *L, gl_green *g, gl_green_k k) {
  for (;;) {
    int rc, n;
    g->task.unwindable = L == g->L && lua_isyieldable(L);
    rc = gl_hub_park(&g->w, g->ns);
    if (rc == GL_EUNWIND) return lua_yieldk(L, 0, (lua_KContext)k, resumed);
    if ((n = waited(L, g, rc, k)) != GL_GREEN_AGAIN) return n;
  }
}

/* The continuation of a wait whose frames unwound, run by the body's
 * lua_resume once the greenthread was woken.  Anyone else resuming the
 * greenthread's thread (which coroutine.running hands out) finds it still
 * parked and gets it back suspended as it was. */
static int resumed(lua_State *L, int status, lua_KContext ctx) {
  gl_task *t = gl_hub_current();
  gl_green *g = t != NULL ? gl_container_of(t, gl_green, task) : NULL;
  gl_green_k k = (gl_green_k)ctx;
  int n;
  GL_UNUSED(status);
  if (g == NULL || g->L != L || t->waiter != NULL)
    return lua_yieldk(L, 0, ctx, resumed);
  if ((n = waited(L, g, g->w.status, k)) != GL_GREEN_AGAIN) return n;
  return park(L, g, k);
}

gl_waiter *gl_green_waiter(int kind, const void *obj) {
  gl_waiter *w = &gl_green_current()->w;
  gl_waiter_init(w, kind, obj);
  return w;
}

int gl_green_again(gl_waitq *q, uint64_t timeout_ns) {
  gl_green *g = gl_green_current();
  if (q != NULL) gl_waitq_link(q, &g->w);
  g->ns = timeout_ns;
  return GL_GREEN_AGAIN;
}

int gl_green_wait(lua_State *L, gl_waitq *q, uint64_t timeout_ns,
                  gl_green_k k) {
  gl_green_again(q, timeout_ns);
  return park(L, gl_green_current(), k);
}
/* }====== */

/* {====== Deadlock report ====== */

/* Under pcallon on safeL (the ud), on the hub's stack. */
static void report_blocked(gl_task *t, void *ud) {
  gl_green *g = gl_container_of(t, gl_green, task);
  lua_State *S = ud;
  if (g->ismain && g->ended) return;  /* main waits for the others */
  if (g->L != NULL) luaL_traceback(S, g->L, NULL, 0);
  else lua_pushliteral(S, "(not started)");
  fprintf(stderr, "greenthread '%s' (id %llu) is blocked:\n%s\n",
          name_of(g), (unsigned long long)t->id, lua_tostring(S, -1));
  lua_pop(S, 1);
}

static int report_deadlock(lua_State *S) {
  gl_hub_foreach(report_blocked, S);
  return 0;
}

static void deadlock(void) {
  fflush(stdout);
  fprintf(stderr, "greenlua: deadlock: every greenthread is blocked and "
                  "nothing (timer, socket, signal, child) can wake one\n");
  pcallon(safeL, report_deadlock, 0, 0, NULL,
          "deadlock, and no memory left to show where");
  fflush(stderr);
  exit(EXIT_FAILURE);
}
/* }====== */

/* {====== The coroutine library and greenthreads ======
 * A greenthread's body runs on a Lua thread, which coroutine.running()
 * hands out.  Seen from any other greenthread, that thread is a "normal"
 * coroutine (one that resumed another and waits for it), even where it
 * gave its stack up and Lua would call it suspended: it cannot be
 * resumed or closed, and coroutine.status says so.  Once the greenthread
 * ended, a thread handed out is never given to another (givethread): a
 * handle kept from a greenthread that ended finds a dead coroutine. */

static lua_CFunction co_status, co_resume, co_close;  /* Lua's own */

/* A thread another greenthread's body runs on. */
static int otherbody(lua_State *L, lua_State *co) {
  return co != NULL && co != L && bodyof(co) != NULL;
}

static int corunning(lua_State *L) {
  gl_green *g = bodyof(L);
  int ismain;
  if (g != NULL) g->escaped = 1;
  ismain = lua_pushthread(L);
  lua_pushboolean(L, ismain);
  return 2;
}

static int costatus(lua_State *L) {
  if (otherbody(L, lua_tothread(L, 1))) {
    lua_pushliteral(L, "normal");
    return 1;
  }
  return co_status(L);
}

static int coresume(lua_State *L) {
  if (otherbody(L, lua_tothread(L, 1))) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "cannot resume non-suspended coroutine");
    return 2;
  }
  return co_resume(L);
}

static int coclose(lua_State *L) {
  if (otherbody(L, lua_tothread(L, 1)))
    return luaL_error(L, "cannot close a normal coroutine");
  return co_close(L);
}

/* coroutine.isyieldable([co]): false for the Lua thread a greenthread's
 * body runs on, as it was before bodies ran under lua_resume.  A library
 * that yields when it may would yield out of the greenthread, which has
 * no scheduler to go back to; it takes its blocking path instead, which
 * blocks only the greenthread. */
static int isyieldable(lua_State *L) {
  lua_State *co = lua_isnone(L, 1) ? L : lua_tothread(L, 1);
  luaL_argexpected(L, co != NULL, 1, "coroutine");
  lua_pushboolean(L, lua_isyieldable(co) && bodyof(co) == NULL);
  return 1;
}

/* Replaces coroutine[name] (the table on top) with f, keeping Lua's own
 * in *orig. */
static void override(lua_State *L, const char *name, lua_CFunction f,
                     lua_CFunction *orig) {
  if (orig != NULL) {
    lua_getfield(L, -1, name);
    *orig = lua_tocfunction(L, -1);
    lua_pop(L, 1);
    if (*orig == NULL) return;  /* not Lua's: leave it */
  }
  lua_pushcfunction(L, f);
  lua_setfield(L, -2, name);
}

static void opencoroutine(lua_State *L) {
  if (lua_getglobal(L, "coroutine") == LUA_TTABLE) {
    override(L, "isyieldable", isyieldable, NULL);
    override(L, "running", corunning, NULL);
    override(L, "status", costatus, &co_status);
    override(L, "resume", coresume, &co_resume);
    override(L, "close", coclose, &co_close);
  }
  lua_pop(L, 1);
}
/* }====== */

/* {====== Runtime ====== */

int gl_runtime_stacksize(const char *text) {
  char *end;
  double v;
  errno = 0;
  v = strtod(text, &end);
  if (end == text || errno != 0 || v <= 0) return -1;
  switch (tolower((unsigned char)*end)) {
    case 'k': v *= 1024; end++; break;
    case 'm': v *= 1024 * 1024; end++; break;
    case 'g': v *= 1024.0 * 1024 * 1024; end++; break;
    default: break;
  }
  if (*end == 'b' || *end == 'B') end++;
  if (*end != '\0' || v > (double)((size_t)1 << 30)) return -1;
  return gl_stack_setsize((size_t)v);
}

void gl_runtime_open(lua_State *L) {
  gl_green *g;
  const char *env = getenv("GREENLUA_PRIVATE_STACKS");
  if (env != NULL && *env != '\0') {
    char *end;
    unsigned long long n = strtoull(env, &end, 10);
    if (*end == '\0') gl_hub_private_stacks((size_t)n);
  }
  env = getenv("GREENLUA_UNWIND_EAGERLY");  /* tests: see hub.h */
  if (env != NULL && *env != '\0' && strcmp(env, "0") != 0)
    gl_hub_unwind_eagerly(1);
  *bodyslot(L) = NULL;  /* every thread made later copies it */
  hubL = lua_newthread(L);
  luaL_ref(L, LUA_REGISTRYINDEX);
  poolL = lua_newthread(hubL);           /* SLOT_POOL */
  luaL_checkstack(poolL, POOL_MAX + LUA_MINSTACK, "thread pool");
  lua_newtable(hubL);                    /* SLOT_LIVE */
  lua_newtable(hubL);                    /* SLOT_INTR */
  luaL_requiref(L, "green", luaopen_green, 1);  /* metatables, preloads */
  opencoroutine(L);
  lua_getfield(L, -1, "GreenletExit");
  lua_xmove(L, hubL, 1);                 /* SLOT_EXIT */
  luaL_getmetatable(L, GL_GREEN_TYPE);
  lua_xmove(L, hubL, 1);                 /* SLOT_MT */
  safeL = lua_newthread(hubL);           /* SLOT_SAFE */
  luaL_checkstack(hubL, LUA_MINSTACK, "runtime");
  lua_pop(L, 1);
  /* The main greenthread: the running context and the main Lua thread. */
  g = lua_newuserdatauv(L, sizeof *g, UV_ARGS - 1);
  memset(g, 0, sizeof *g);
  pushslot(L, SLOT_MT);
  lua_setmetatable(L, -2);
  lua_pushthread(L);
  lua_setiuservalue(L, -2, UV_BODY);
  g->L = L;
  g->ismain = 1;
  gl_task_init(&g->task, NULL);
  gl_waitq_init(&g->joiners);
  g->kill.kind = GL_INTR_KILL;
  g->kill.ref = LUA_NOREF;
  g->task.name = "main";
  g->ref = anchor(L);
  lua_pop(L, 1);
  maing = g;
  gl_hub_init(uv_default_loop(), &g->task);
  gl_hub_deadlock_hook = deadlock;
}

void gl_runtime_wait(lua_State *L) {
  GL_ASSERT(gl_green_current() == maing);
  maing->ended = 1;  /* for the deadlock report: main only waits */
  if (gl_green_end_hook != NULL) gl_green_end_hook(L, maing);
  gl_waitq_wake_all(&maing->joiners, GL_OK);
  gl_hub_wait_others();
}
/* }====== */
