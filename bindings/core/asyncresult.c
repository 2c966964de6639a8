/* green.AsyncResult: a value (or an error) that arrives once.  set(...) or
 * set_error(err) stores it in the userdata's uservalue and wakes every
 * waiter; get() returns the values or re-raises the error value intact. */
#include <string.h>

#include "lauxgl.h"

#define ASYNCRESULT_TYPE "green.AsyncResult"

enum { AR_PENDING, AR_VALUE, AR_ERROR };

typedef struct gl_asyncresult {
  gl_waitq waiters;
  int state;
  int n;           /* AR_VALUE: how many values */
} gl_asyncresult;

/* Uservalue 1: the error value, the single value, or a table of them. */

static gl_asyncresult *checkresult(lua_State *L, int i) {
  return luaL_checkudata(L, i, ASYNCRESULT_TYPE);
}

/* green.AsyncResult() -> r, not ready */
static int asyncresult_new(lua_State *L) {
  gl_asyncresult *r = lua_newuserdatauv(L, sizeof *r, 1);
  memset(r, 0, sizeof *r);
  gl_waitq_init(&r->waiters);
  luaL_setmetatable(L, ASYNCRESULT_TYPE);
  return 1;
}

/* Pushes what r holds (ready): its values or its error value; returns how
 * many. */
static int pushresult(lua_State *L, gl_asyncresult *r, int idx) {
  int i, t;
  if (r->state == AR_ERROR || r->n == 1) {
    lua_getiuservalue(L, idx, 1);
    return 1;
  }
  if (r->n == 0) return 0;
  luaL_checkstack(L, r->n + 1, "too many results");
  lua_getiuservalue(L, idx, 1);
  t = lua_gettop(L);
  for (i = 1; i <= r->n; i++) lua_rawgeti(L, t, i);
  lua_remove(L, t);
  return r->n;
}

static void checkunset(lua_State *L, gl_asyncresult *r) {
  if (r->state != AR_PENDING) luaL_error(L, "AsyncResult already set");
}

/* r:set(...): stores the values and wakes every waiter.  Raises if r was
 * already set. */
static int asyncresult_set(lua_State *L) {
  gl_asyncresult *r = checkresult(L, 1);
  int i, n = lua_gettop(L) - 1;
  checkunset(L, r);
  if (n == 1) {
    lua_setiuservalue(L, 1, 1);
  } else if (n > 1) {
    lua_createtable(L, n, 0);
    for (i = 1; i <= n; i++) {
      lua_pushvalue(L, i + 1);
      lua_rawseti(L, -2, i);
    }
    lua_setiuservalue(L, 1, 1);
  }
  r->n = n;
  r->state = AR_VALUE;
  gl_waitq_wake_all(&r->waiters, GL_OK);
  return 0;
}

/* r:set_error(err): stores err, which get() raises, and wakes every
 * waiter.  Raises if r was already set. */
static int asyncresult_set_error(lua_State *L) {
  gl_asyncresult *r = checkresult(L, 1);
  luaL_checkany(L, 2);
  checkunset(L, r);
  lua_settop(L, 2);
  lua_setiuservalue(L, 1, 1);
  r->n = 1;
  r->state = AR_ERROR;
  gl_waitq_wake_all(&r->waiters, GL_OK);
  return 0;
}

/* What follows the wait of r:wait and r:get (the result at 1, the
 * timeout at 2), which may unwind (green.h): `k` once r is ready. */
static int readywait(lua_State *L, gl_green_k k) {
  gl_asyncresult *r = checkresult(L, 1);
  uint64_t timeout = glL_opttimeout(L, 2);
  if (r->state != AR_PENDING) return k(L, GL_OK, NULL);
  if (timeout == 0) return k(L, GL_ETIMEDOUT, NULL);
  gl_green_waiter(GL_WAIT_ASYNCRESULT, r);
  return gl_green_wait(L, &r->waiters, timeout, k);
}

/* r:wait([timeout]) -> true | nil, "timeout" */
static int asyncresult_wait(lua_State *L) {
  return readywait(L, glL_waited);
}

/* r:get([timeout]) -> the values; re-raises the error value; raises a
 * green.Timeout value if the timeout elapses first. */
static int gotten(lua_State *L, int rc, gl_waiter *w) {
  gl_asyncresult *r = checkresult(L, 1);
  GL_UNUSED(w);
  glL_raisepending(L, rc);
  if (rc == GL_ETIMEDOUT) {
    glL_pushtimeout(L, lua_tonumber(L, 2));
    return lua_error(L);
  }
  if (r->state == AR_ERROR) {
    pushresult(L, r, 1);
    return lua_error(L);
  }
  return pushresult(L, r, 1);
}

static int asyncresult_get(lua_State *L) {
  return readywait(L, gotten);
}

/* r:ready() -> boolean */
static int asyncresult_ready(lua_State *L) {
  lua_pushboolean(L, checkresult(L, 1)->state != AR_PENDING);
  return 1;
}

/* r:successful() -> true once set with values */
static int asyncresult_successful(lua_State *L) {
  lua_pushboolean(L, checkresult(L, 1)->state == AR_VALUE);
  return 1;
}

/* Fields (value, values, error) first, then methods (the upvalue).  Like
 * the greenthread's: value is the first value, values a table with n. */
static int asyncresult_index(lua_State *L) {
  gl_asyncresult *r = checkresult(L, 1);
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
  if (strcmp(k, "value") == 0) {
    if (r->state == AR_VALUE && r->n > 0) {
      pushresult(L, r, 1);
      lua_settop(L, 3);
    } else {
      lua_pushnil(L);
    }
    return 1;
  }
  if (strcmp(k, "values") == 0) {
    if (r->state == AR_VALUE) {
      int n = pushresult(L, r, 1);
      lua_createtable(L, n, 1);
      lua_insert(L, -(n + 1));
      while (n > 0) lua_rawseti(L, -(n + 1), n), n--;
      lua_pushinteger(L, r->n);
      lua_setfield(L, -2, "n");
    } else {
      lua_pushnil(L);
    }
    return 1;
  }
  if (strcmp(k, "error") == 0) {
    if (r->state == AR_ERROR) pushresult(L, r, 1);
    else lua_pushnil(L);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static int asyncresult_tostring(lua_State *L) {
  gl_asyncresult *r = checkresult(L, 1);
  static const char *const states[] = {"pending", "value", "error"};
  lua_pushfstring(L, "green.AsyncResult (%s): %p", states[r->state],
                  (void *)r);
  return 1;
}

static const luaL_Reg asyncresult_methods[] = {
  {"set", asyncresult_set},
  {"set_error", asyncresult_set_error},
  {"wait", asyncresult_wait},
  {"get", asyncresult_get},
  {"ready", asyncresult_ready},
  {"successful", asyncresult_successful},
  {NULL, NULL}
};

int luaopen_green_asyncresult(lua_State *L);
int luaopen_green_asyncresult(lua_State *L) {
  luaL_newmetatable(L, ASYNCRESULT_TYPE);
  luaL_newlib(L, asyncresult_methods);
  lua_pushcclosure(L, asyncresult_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, asyncresult_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  glL_setconstructor(L, "AsyncResult", asyncresult_new, NULL);
  return 0;
}
