/* green.Event: a flag greenthreads wait on.  set() wakes every current
 * waiter; a waiter woken by set() returns true even if clear() ran before
 * it resumed (gevent's semantics).  The waiters park on a gl_waitq. */
#include <string.h>

#include "lauxgl.h"

#define EVENT_TYPE "green.Event"

typedef struct gl_event {
  gl_waitq waiters;
  int is_set;
} gl_event;

static gl_event *checkevent(lua_State *L, int i) {
  return luaL_checkudata(L, i, EVENT_TYPE);
}

/* green.Event() -> e, not set */
static int event_new(lua_State *L) {
  gl_event *e = lua_newuserdatauv(L, sizeof *e, 0);
  memset(e, 0, sizeof *e);
  gl_waitq_init(&e->waiters);
  luaL_setmetatable(L, EVENT_TYPE);
  return 1;
}

/* e:set(): sets the flag and wakes every greenthread waiting now. */
static int event_set(lua_State *L) {
  gl_event *e = checkevent(L, 1);
  e->is_set = 1;
  gl_waitq_wake_all(&e->waiters, GL_OK);
  return 0;
}

/* e:clear(): later waits block again. */
static int event_clear(lua_State *L) {
  checkevent(L, 1)->is_set = 0;
  return 0;
}

/* e:is_set() -> boolean */
static int event_is_set(lua_State *L) {
  lua_pushboolean(L, checkevent(L, 1)->is_set);
  return 1;
}

/* e:wait([timeout]) -> true | nil, "timeout".  A zero timeout polls
 * without parking. */
static int event_wait(lua_State *L) {
  gl_event *e = checkevent(L, 1);
  uint64_t timeout = glL_opttimeout(L, 2);
  if (!e->is_set) {
    if (timeout == 0) return glL_fail(L, "timeout");
    gl_green_waiter(GL_WAIT_EVENT, e);
    return gl_green_wait(L, &e->waiters, timeout, glL_waited);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int event_tostring(lua_State *L) {
  gl_event *e = checkevent(L, 1);
  lua_pushfstring(L, "green.Event (%s, %I waiting): %p",
                  e->is_set ? "set" : "clear", (lua_Integer)e->waiters.n,
                  (void *)e);
  return 1;
}

static const luaL_Reg event_methods[] = {
  {"set", event_set},
  {"clear", event_clear},
  {"is_set", event_is_set},
  {"wait", event_wait},
  {NULL, NULL}
};

static const luaL_Reg event_meta[] = {
  {"__tostring", event_tostring},
  {NULL, NULL}
};

int luaopen_green_event(lua_State *L);
int luaopen_green_event(lua_State *L) {
  glL_newclass(L, EVENT_TYPE, event_methods, event_meta);
  lua_pop(L, 1);
  glL_setconstructor(L, "Event", event_new, NULL);
  return 0;
}
