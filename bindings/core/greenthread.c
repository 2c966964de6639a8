/* The greenthread object, green.Greenthread: join, get, kill, link and the
 * fields value, values, error, name and id; and green.joinall and
 * green.killall over lists of them.  A reference to a finished
 * greenthread stays safe: its results live on its ended Lua thread. */
#include <limits.h>
#include <string.h>

#include "lauxgl.h"

static gl_green *checkgreen(lua_State *L, int i) {
  return glL_checkudatap(L, i, gl_green_mt, GL_GREEN_TYPE);
}

/* Waits until g ended or the timeout elapsed; raises a pending interrupt.
 * Returns GL_OK or GL_ETIMEDOUT. */
static int dojoin(lua_State *L, gl_green *g, uint64_t timeout) {
  gl_waiter w;
  int rc;
  if (g->ended) return GL_OK;
  if (g == gl_green_current())
    luaL_error(L, "cannot join the running greenthread");
  gl_waiter_init(&w, GL_WAIT_JOIN, g);
  rc = gl_waitq_wait(&g->joiners, &w, timeout);
  glL_raisepending(L, rc);
  return rc;
}

/* What follows the wait of g:join and g:get (the greenthread at 1, the
 * timeout at 2), which may unwind (green.h): `k` once g ended. */
static int joinwait(lua_State *L, gl_green_k k) {
  gl_green *g = checkgreen(L, 1);
  uint64_t timeout = glL_opttimeout(L, 2);
  if (g->ended) return k(L, GL_OK, NULL);
  if (g == gl_green_current())
    luaL_error(L, "cannot join the running greenthread");
  gl_green_waiter(GL_WAIT_JOIN, g);
  return gl_green_wait(L, &g->joiners, timeout, k);
}

/* g:join([timeout]) -> true | nil, "timeout" */
static int greenthread_join(lua_State *L) {
  return joinwait(L, glL_waited);
}

static int gotten(lua_State *L, int rc, gl_waiter *w) {
  gl_green *g = checkgreen(L, 1);
  GL_UNUSED(w);
  glL_raisepending(L, rc);
  if (rc == GL_ETIMEDOUT) {
    glL_pushtimeout(L, lua_tonumber(L, 2));
    return lua_error(L);
  }
  if (g->ismain) return 0;
  if (g->failed) {
    gl_green_pushresults(L, g, 1);
    return lua_error(L);
  }
  return gl_green_pushresults(L, g, 1);
}

/* g:get([timeout]) -> fn's values; re-raises fn's error; raises a
 * green.Timeout if the timeout elapses. */
static int greenthread_get(lua_State *L) {
  return joinwait(L, gotten);
}

/* Interrupts g with the value at `err` (nil: GreenletExit, put there);
 * raises it at once if g is the running greenthread.  Returns whether g
 * is still to be waited for. */
static int dokill(lua_State *L, gl_green *g, int err) {
  if (lua_isnil(L, err)) {
    gl_green_pushexit(L);
    lua_replace(L, err);
  }
  if (g->ended) return 0;
  if (g == gl_green_current()) {
    lua_pushvalue(L, err);
    lua_error(L);  /* raise err here */
  }
  gl_green_interrupt(L, g, &g->kill, err);
  return 1;
}

/* g:kill([err], [block=true], [timeout]) */
static int greenthread_kill(lua_State *L) {
  gl_green *g = checkgreen(L, 1);
  int block = lua_isnoneornil(L, 3) ? 1 : lua_toboolean(L, 3);
  uint64_t timeout = glL_opttimeout(L, 4);
  lua_settop(L, 2);
  if (dokill(L, g, 2) && block) dojoin(L, g, timeout);
  return 0;
}

/* The greenthread at list[i] (pushed), or NULL past the list's end (nil
 * pushed); anything else in the list is an error of argument #1. */
static gl_green *listitem(lua_State *L, lua_Integer i) {
  gl_green *g;
  if (lua_geti(L, 1, i) == LUA_TNIL) return NULL;
  if ((g = glL_testudatap(L, -1, gl_green_mt)) != NULL) return g;
  return luaL_argerror(L, 1, lua_pushfstring(L, "greenthread expected at "
                       "index %I, got %s", i, luaL_typename(L, -1))), NULL;
}

/* green.joinall(list, [timeout]) -> the greenthreads of list that ended,
 * in list order.  One pass: each greenthread is looked at once, right
 * after its wait, not again in a second scan of a long list whose objects
 * are no longer in the cache. */
static int green_joinall(lua_State *L) {
  uint64_t deadline;
  lua_Integer i, n = 0;
  int waiting = 1;
  gl_green *g;
  luaL_checktype(L, 1, LUA_TTABLE);
  deadline = glL_deadline(glL_opttimeout(L, 2));
  lua_settop(L, 1);
  lua_createtable(L, (int)(lua_rawlen(L, 1) & INT_MAX), 0);
  for (i = 1; (g = listitem(L, i)) != NULL; i++) {
    if (waiting && !g->ended &&
        dojoin(L, g, glL_remaining(deadline)) == GL_ETIMEDOUT)
      waiting = 0;  /* from here on, only collect those that ended */
    if (g->ended)
      lua_rawseti(L, 2, ++n);
    else
      lua_pop(L, 1);
  }
  lua_settop(L, 2);  /* drops the nil that ended the list */
  return 1;
}

/* green.killall(list, [err]): kills them all, then waits for each to
 * end. */
static int green_killall(lua_State *L) {
  lua_Integer i;
  gl_green *g;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  for (i = 1; (g = listitem(L, i)) != NULL; i++) {
    dokill(L, g, 2);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  for (i = 1; (g = listitem(L, i)) != NULL; i++) {
    dojoin(L, g, UINT64_MAX);
    lua_pop(L, 1);
  }
  return 0;
}

/* g:link(fn): fn(g) runs in its own greenthread once g ends. */
static int greenthread_link(lua_State *L) {
  gl_green *g = checkgreen(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  if (g->ended && !g->ismain) {
    lua_pushvalue(L, 1);
    gl_green_spawn(L, 1, 0);
    return 0;
  }
  if (gl_green_getextra(L, 1, GL_GREEN_LINKS) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    gl_green_setextra(L, 1, GL_GREEN_LINKS);
  }
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, luaL_len(L, -2) + 1);
  g->haslinks = 1;
  return 0;
}

static int greenthread_ready(lua_State *L) {
  lua_pushboolean(L, checkgreen(L, 1)->ended);
  return 1;
}

static int greenthread_successful(lua_State *L) {
  gl_green *g = checkgreen(L, 1);
  lua_pushboolean(L, g->ended && !g->failed);
  return 1;
}

static const char *statename(gl_green *g) {
  if (g->ended) return g->failed ? "failed" : "dead";
  switch (g->task.state) {
    case GL_TASK_NEW: return "new";
    case GL_TASK_RUNNING: return "running";
    case GL_TASK_PARKED: return "blocked";
    default: return "ready";
  }
}

static int greenthread_tostring(lua_State *L) {
  gl_green *g = checkgreen(L, 1);
  char name[64];
  lua_pushfstring(L, "Greenthread '%s' (id %I, %s)",
                  gl_task_name(&g->task, name, sizeof name),
                  (lua_Integer)g->task.id, statename(g));
  return 1;
}

/* Methods (the upvalue) first: g:join() is the common case; then the
 * fields. */
static int greenthread_index(lua_State *L) {
  gl_green *g = checkgreen(L, 1);
  const char *k;
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  k = lua_tostring(L, 2);
  if (k != NULL && lua_type(L, 2) == LUA_TSTRING) {
    if (strcmp(k, "value") == 0) {
      if (g->ended && !g->failed && !g->ismain && g->nres > 0) {
        gl_green_pushresults(L, g, 1);
        lua_settop(L, 3);
      } else {
        lua_pushnil(L);
      }
      return 1;
    }
    if (strcmp(k, "values") == 0) {
      if (g->ended && !g->failed && !g->ismain) {
        int n = gl_green_pushresults(L, g, 1);
        lua_createtable(L, n, 1);
        lua_insert(L, -(n + 1));
        while (n > 0) lua_rawseti(L, -(n + 1), n), n--;
        lua_pushinteger(L, g->nres);
        lua_setfield(L, -2, "n");
      } else {
        lua_pushnil(L);
      }
      return 1;
    }
    if (strcmp(k, "error") == 0) {
      if (g->failed) gl_green_pushresults(L, g, 1);
      else lua_pushnil(L);
      return 1;
    }
    if (strcmp(k, "name") == 0) {
      if (gl_green_getextra(L, 1, GL_GREEN_NAME) == LUA_TNIL) {
        char name[64];
        lua_pushstring(L, gl_task_name(&g->task, name, sizeof name));
      }
      return 1;
    }
    if (strcmp(k, "id") == 0) {
      lua_pushinteger(L, (lua_Integer)g->task.id);
      return 1;
    }
  }
  lua_pushnil(L);
  return 1;
}

/* g.name = "..." is the only settable field. */
static int greenthread_newindex(lua_State *L) {
  gl_green *g = checkgreen(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "name") != 0)
    return luaL_error(L, "cannot set field '%s' of a greenthread", k);
  if (lua_type(L, 3) != LUA_TSTRING)
    return luaL_typeerror(L, 3, "string");
  lua_settop(L, 3);
  g->task.name = lua_tostring(L, 3);  /* kept alive by the userdata */
  gl_green_setextra(L, 1, GL_GREEN_NAME);
  return 0;
}

static const luaL_Reg greenthread_methods[] = {
  {"join", greenthread_join},
  {"get", greenthread_get},
  {"kill", greenthread_kill},
  {"link", greenthread_link},
  {"ready", greenthread_ready},
  {"successful", greenthread_successful},
  {"dead", greenthread_ready},
  {NULL, NULL}
};

int luaopen_green_greenthread(lua_State *L);
int luaopen_green_greenthread(lua_State *L) {
  lua_pushcfunction(L, green_joinall);
  lua_setfield(L, -2, "joinall");
  lua_pushcfunction(L, green_killall);
  lua_setfield(L, -2, "killall");
  luaL_newmetatable(L, GL_GREEN_TYPE);
  glL_setmtkey(L, &gl_green_mt);
  lua_newtable(L);
  luaL_setfuncs(L, greenthread_methods, 0);
  lua_pushcclosure(L, greenthread_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, greenthread_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, greenthread_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  return 0;
}
