/* green.Timeout: a deadline that raises a value in the greenthread that
 * started it, at its current or next blocking call.  A started Timeout is
 * anchored (it must fire even if no variable holds it) and linked to its
 * greenthread, which cancels it when it ends.  When it fires, its cause
 * becomes pending in that greenthread, by the hub's rules (hub.h): raised
 * once, after a pending kill, or cancelled, alone, by cancel or start. */
#include <string.h>

#include "lauxgl.h"

#define TIMEOUT_TYPE "green.Timeout"

typedef struct gl_timeout {
  gl_intr intr;            /* kind GL_INTR_TIMEOUT; ref: the anchor */
  gl_timer timer;
  gl_green *owner;         /* the greenthread that started it */
  struct gl_timeout *prev, *next;   /* the owner's started Timeouts */
  uint64_t ns;             /* UINT64_MAX: never fires */
  double seconds;
} gl_timeout;

/* t.pending: started, and neither raised nor cancelled yet (it may have
 * fired, its raise waiting for its greenthread to run). */
static int pending(const gl_timeout *t) {
  return t->timer.slot != 0 || gl_cause_pending(&t->intr);
}

static const void *timeout_mt;

static gl_timeout *checktimeout(lua_State *L, int i) {
  return glL_checkudatap(L, i, timeout_mt, TIMEOUT_TYPE);
}

static void unlink(gl_timeout *t) {
  gl_green *g = t->owner;
  if (g == NULL) return;
  if (t->prev) t->prev->next = t->next;
  else g->timeouts = t->next;
  if (t->next) t->next->prev = t->prev;
  t->prev = t->next = NULL;
  t->owner = NULL;
}

static void fire(gl_timer *tm) {
  gl_timeout *t = gl_container_of(tm, gl_timeout, timer);
  if (t->owner != NULL) gl_hub_interrupt(&t->owner->task, &t->intr);
}

/* Stops t and forgets everything started: timer, pending raise (its own
 * cause alone), anchor. */
static void cancel(lua_State *L, gl_timeout *t) {
  gl_timer_stop(&t->timer);
  if (t->owner != NULL) {
    gl_hub_cancel(&t->owner->task, &t->intr);
    unlink(t);
  }
  gl_green_forget(L, &t->intr);
  if (t->intr.ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, t->intr.ref);
    t->intr.ref = LUA_NOREF;
  }
}

static gl_timeout *newtimeout(lua_State *L, double seconds) {
  gl_timeout *t = lua_newuserdatauv(L, sizeof *t, 1);
  memset(t, 0, sizeof *t);
  t->intr.kind = GL_INTR_TIMEOUT;
  t->intr.ref = LUA_NOREF;
  t->timer.cb = fire;
  t->seconds = seconds;
  t->ns = seconds == seconds ? gl_hub_ns(seconds) : UINT64_MAX;
  luaL_setmetatable(L, TIMEOUT_TYPE);
  return t;
}

void glL_pushtimeout(lua_State *L, double seconds) {
  newtimeout(L, seconds);
}

/* green.Timeout([seconds], [err]) -> t; nil seconds never fires. */
static int timeout_new(lua_State *L) {
  double s = (double)luaL_optnumber(L, 1, 0);
  gl_timeout *t;
  if (lua_isnoneornil(L, 1)) s = 0.0 / 0.0;  /* NaN marks "never" */
  else luaL_argcheck(L, s == s, 1, "not a number (NaN)");
  lua_settop(L, 2);
  t = newtimeout(L, s);
  if (!lua_isnil(L, 2)) {
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 1);
  }
  GL_UNUSED(t);
  return 1;
}

/* t:start() -> t; restarts a pending Timeout. */
static int timeout_start(lua_State *L) {
  gl_timeout *t = checktimeout(L, 1);
  gl_green *g = glL_current(L);
  lua_settop(L, 1);
  cancel(L, t);
  if (t->ns == UINT64_MAX) return 1;  /* Timeout(nil): never fires */
  /* What it raises: err, or t itself. */
  if (lua_getiuservalue(L, 1, 1) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushvalue(L, 1);
  }
  gl_green_setcause(L, &t->intr, -1);
  lua_pop(L, 1);
  lua_pushvalue(L, 1);
  t->intr.ref = luaL_ref(L, LUA_REGISTRYINDEX);
  t->owner = g;
  t->next = g->timeouts;
  if (t->next) ((gl_timeout *)t->next)->prev = t;
  g->timeouts = t;
  gl_timer_start(&t->timer, gl_clock_now() + t->ns);
  return 1;
}

/* t:cancel() */
static int timeout_cancel(lua_State *L) {
  cancel(L, checktimeout(L, 1));
  return 0;
}

/* Timeout.start_new(seconds, [err]) -> a started t */
static int timeout_start_new(lua_State *L) {
  lua_settop(L, 2);
  timeout_new(L);
  lua_replace(L, 1);
  lua_settop(L, 1);
  return timeout_start(L);
}

static int timeout_gc(lua_State *L) {
  gl_timeout *t = checktimeout(L, 1);
  gl_timer_stop(&t->timer);
  if (t->owner != NULL) {
    gl_hub_cancel(&t->owner->task, &t->intr);
    unlink(t);
  }
  return 0;
}

static int timeout_tostring(lua_State *L) {
  gl_timeout *t = checktimeout(L, 1);
  if (t->ns == UINT64_MAX)
    lua_pushliteral(L, "timeout (never)");
  else
    lua_pushfstring(L, "timeout (%f s)", (lua_Number)t->seconds);
  return 1;
}

static int timeout_index(lua_State *L) {
  gl_timeout *t = checktimeout(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k != NULL && strcmp(k, "pending") == 0) {
    lua_pushboolean(L, pending(t));
    return 1;
  }
  if (k != NULL && strcmp(k, "seconds") == 0) {
    if (t->ns == UINT64_MAX) lua_pushnil(L);
    else lua_pushnumber(L, t->seconds);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

/* green.is_timeout(v) -> true for a green.Timeout value */
static int green_is_timeout(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, TIMEOUT_TYPE) != NULL);
  return 1;
}

/* A greenthread that ends cancels the Timeouts it started. */
static void onend(lua_State *L, gl_green *g) {
  while (g->timeouts != NULL) cancel(L, g->timeouts);
}

static const luaL_Reg timeout_methods[] = {
  {"start", timeout_start},
  {"cancel", timeout_cancel},
  {NULL, NULL}
};

static const luaL_Reg timeout_statics[] = {
  {"start_new", timeout_start_new},
  {NULL, NULL}
};

int luaopen_green_timeout(lua_State *L);
int luaopen_green_timeout(lua_State *L) {
  luaL_newmetatable(L, TIMEOUT_TYPE);
  glL_setmtkey(L, &timeout_mt);
  lua_newtable(L);
  luaL_setfuncs(L, timeout_methods, 0);
  lua_pushcclosure(L, timeout_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, timeout_cancel);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, timeout_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, timeout_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  glL_setconstructor(L, "Timeout", timeout_new, timeout_statics);
  lua_pushcfunction(L, green_is_timeout);
  lua_setfield(L, -2, "is_timeout");
  gl_green_end_hook = onend;
  return 0;
}
