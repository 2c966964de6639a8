/* Plain coroutines inside greenthreads: coroutine.resume and
 * coroutine.wrap behave as Lua's own, and also record in the running
 * greenthread the coroutine it runs in (gl_green.co, the innermost, back
 * to the outer one when it yields or ends).  With it the watchdog hooks
 * the Lua state that really runs (a hook is per Lua thread: one set on
 * the greenthread's own would wait until the coroutine gives control
 * back), and green.dump shows where a greenthread parked inside a
 * coroutine waits.  The record costs two stores per resume; nothing can
 * raise between them, so it is never left pointing at a coroutine that
 * stopped running. */
#include "lauxgl.h"

static gl_green *running(void) {
  gl_task *t = gl_hub_current();
  return t != NULL ? gl_container_of(t, gl_green, task) : NULL;
}

/* Resumes co with the narg values on top of L.  Returns how many values
 * it yielded or returned, moved onto L, or -1 with the error on L. */
static int resume(lua_State *L, lua_State *co, int narg) {
  gl_green *g = running();
  lua_State *outer = NULL;
  int status, nres;
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  lua_xmove(L, co, narg);
  if (g != NULL) {
    outer = g->co;
    g->co = co;
  }
  status = lua_resume(co, L, narg, &nres);
  if (g != NULL) g->co = outer;
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);  /* the error */
  return -1;
}

/* coroutine.resume(co, ...) -> true, values | false, error */
static int co_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  int r;
  luaL_argexpected(L, co != NULL, 1, "coroutine");
  r = resume(L, co, lua_gettop(L) - 1);
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}

static int closethread(lua_State *co, lua_State *L) {
#if LUA_VERSION_NUM > 504 || LUA_VERSION_RELEASE_NUM >= 50406
  return lua_closethread(co, L);
#else
  GL_UNUSED(L);
  return lua_resetthread(co);
#endif
}

/* The function coroutine.wrap returns: resumes its coroutine and returns
 * what it yields; an error is propagated, with the position of the call
 * in front of a string message, after the coroutine's pending
 * to-be-closed variables are closed. */
static int co_wrapped(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  int r = resume(L, co, lua_gettop(L));
  if (r < 0) {
    int status = lua_status(co);
    if (status != LUA_OK && status != LUA_YIELD) {  /* it failed */
      status = closethread(co, L);
      lua_xmove(co, L, 1);
    }
    if (status != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
    return lua_error(L);
  }
  return r;
}

/* coroutine.wrap(f) -> a function resuming a new coroutine running f */
static int co_wrap(lua_State *L) {
  lua_State *co;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, co_wrapped, 1);
  return 1;
}

int luaopen_green_coroutine(lua_State *L);
int luaopen_green_coroutine(lua_State *L) {
  if (lua_getglobal(L, "coroutine") == LUA_TTABLE) {
    lua_pushcfunction(L, co_resume);
    lua_setfield(L, -2, "resume");
    lua_pushcfunction(L, co_wrap);
    lua_setfield(L, -2, "wrap");
  }
  lua_pop(L, 1);
  return 0;
}
