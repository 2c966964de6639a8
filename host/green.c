/* Greenthreads: hub tasks that run a Lua function on a Lua thread of their
 * own, and the runtime around them (the main greenthread, interrupts that
 * carry Lua values, the report of errors and deadlocks, the embedded Lua
 * parts of the green module).  The Lua objects are in bindings/. */
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
  SLOT_MT          /* the greenthread metatable */
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

static lua_State *hubL;    /* the runtime's slots, and reports on the hub */

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

/* Anchors the greenthread userdata on top of L's stack (which stays) in
 * SLOT_LIVE; returns its slot. */
static int anchor(lua_State *L) {
  int slot = nfree > 0 ? freeslots[--nfree] : ++lastslot;
  lua_pushvalue(L, -1);
  lua_xmove(L, hubL, 1);
  lua_rawseti(hubL, SLOT_LIVE, slot);
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

static void report(gl_green *g) {
  lua_State *L = g->L;
  const char *trace;
  gl_green_push(L, g);
  gl_green_getextra(L, -1, GL_GREEN_TRACE);
  trace = lua_tostring(L, -1);
  fflush(stdout);
  fprintf(stderr, "greenlua: error in greenthread '%s' (id %llu):\n%s\n",
          name_of(g), (unsigned long long)g->task.id,
          trace ? trace : "(no traceback)");
  fflush(stderr);
  lua_pop(L, 2);
}

/* Takes a Lua thread from the pool, or makes one.  The pool and new
 * threads are reached through hubL, which no greenthread runs on; nothing
 * here yields, so using it from any greenthread's stack is safe. */
static lua_State *takethread(void) {
  if (npool > 0) {
    lua_xmove(poolL, hubL, 1);
    npool--;
  } else {
    lua_newthread(hubL);
  }
  return lua_tothread(hubL, -1);  /* on hubL's stack: the caller anchors it */
}

static void givethread(lua_State *T) {
  lua_settop(T, 0);
  if (npool < POOL_MAX) {
    lua_pushthread(T);
    lua_xmove(T, poolL, 1);
    npool++;
  }
}

/* Runs after the body, with L holding the greenthread's userdata and
 * what the body ended with (its results, or its error if status is not
 * LUA_OK): records the outcome, wakes joiners, starts links and drops the
 * reference that kept the greenthread alive. */
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
  /* Causes that came after the last blocking call: the Timeouts g started
   * are cancelled by the end hook; a kill has nothing left to stop. */
  if (gl_green_end_hook != NULL) gl_green_end_hook(L, g);
  while (gl_hub_pending(&g->task)) {
    pushpending(L, g);
    lua_pop(L, 1);
  }
  gl_waitq_wake_all(&g->joiners, GL_OK);
  gl_green_push(L, g);
  if (gl_green_getextra(L, -1, GL_GREEN_LINKS) == LUA_TTABLE) {
    lua_Integer i, n = luaL_len(L, -1);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      lua_pushvalue(L, -3);
      gl_green_spawn(L, 1, 0);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 2);
  unanchor(g->ref);
  g->ref = LUA_NOREF;
  g->L = NULL;
  *bodyslot(L) = NULL;
  givethread(L);
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

/* The body of g failed (or yielded with coroutine.yield, to nobody), and
 * L still holds its frames with the error (or the yielded values) on
 * top.  Records the traceback, unless the error is a GreenletExit, and
 * resets L for reuse, which closes its pending to-be-closed variables
 * (their __close may block: nothing is left on hubL meanwhile).  Leaves L
 * holding g's userdata and the error; returns the status to finish with. */
static int failed(gl_green *g, lua_State *L, int status) {
  int report;
  if (status == LUA_YIELD) {
    lua_pushliteral(L, "attempt to yield from outside a coroutine");
    status = LUA_ERRRUN;
  }
  lua_xmove(L, hubL, 1);  /* a copy of the error for hubL, in its place */
  lua_pushvalue(hubL, -1);
  lua_xmove(hubL, L, 1);
  pushslot(hubL, SLOT_EXIT);
  report = !lua_rawequal(hubL, -1, -2);  /* killed: nothing to report */
  lua_pop(hubL, 2);
  if (report) {  /* the traceback, while L has the frames */
    gl_green_push(hubL, g);
    luaL_traceback(hubL, L, NULL, 0);
    gl_green_setextra(hubL, -2, GL_GREEN_TRACE);
    lua_pop(hubL, 1);
  }
  if (closethread(L) == LUA_OK) {  /* it had yielded: the error is gone */
    lua_settop(L, 0);
    lua_pushliteral(L, "attempt to yield from outside a coroutine");
  } else {  /* the error, or that of a __close that failed */
    lua_settop(L, 1);
  }
  if (report) {  /* the message in front of the traceback */
    gl_green_push(L, g);
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
  gl_green_push(L, g);
  lua_insert(L, 1);
  return status;
}

static void run(gl_task *t) {
  gl_green *g = gl_container_of(t, gl_green, task);
  lua_State *L = g->L;
  int status, nres, i;
  if (L != NULL) {  /* back after it unwound its frames while parked */
    status = lua_resume(L, NULL, 0, &nres);
  } else {
    if (g->ns > 0) gl_hub_sleep(g->ns);  /* spawn_later */
    L = g->L = takethread();  /* anchored on hubL's stack meanwhile */
    *bodyslot(L) = g;
    gl_green_push(L, g);
    lua_getiuservalue(L, 1, UV_BODY);  /* L: ud fn */
    lua_pushthread(L);
    lua_setiuservalue(L, 1, UV_BODY);  /* anchored by g while it runs */
    lua_pop(hubL, 1);
    if (gl_hub_pending(t)) {  /* killed before it started: fn never runs */
      lua_settop(L, 1);
      pushpending(L, g);
      finish(g, LUA_ERRRUN);
      return;
    }
    luaL_checkstack(L, g->nargs, "too many arguments");
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
  luaL_checkstack(L, 2, NULL);
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

static void report_blocked(gl_task *t, void *ud) {
  gl_green *g = gl_container_of(t, gl_green, task);
  lua_State *L = ud;
  if (g->ismain && g->ended) return;  /* main waits for the others */
  luaL_traceback(L, g->L, NULL, 0);
  fprintf(stderr, "greenthread '%s' (id %llu) is blocked:\n%s\n",
          name_of(g), (unsigned long long)t->id, lua_tostring(L, -1));
  lua_pop(L, 1);
}

static void deadlock(void) {
  fflush(stdout);
  fprintf(stderr, "greenlua: deadlock: every greenthread is blocked and "
                  "nothing (timer, socket, signal, child) can wake one\n");
  gl_hub_foreach(report_blocked, hubL);
  fflush(stderr);
  exit(EXIT_FAILURE);
}
/* }====== */

/* {====== Runtime ====== */

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
  if (lua_getglobal(L, "coroutine") == LUA_TTABLE) {
    lua_pushcfunction(L, isyieldable);
    lua_setfield(L, -2, "isyieldable");
  }
  lua_pop(L, 1);
  lua_getfield(L, -1, "GreenletExit");
  lua_xmove(L, hubL, 1);                 /* SLOT_EXIT */
  luaL_getmetatable(L, GL_GREEN_TYPE);
  lua_xmove(L, hubL, 1);                 /* SLOT_MT */
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
