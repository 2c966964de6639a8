/* socket.newtry and socket.protect, LuaSocket's exceptions: a try
 * function raises its second argument, wrapped in a table that carries a
 * private metatable, when its first is nil or false (after calling its
 * finalizer); a protected function turns those errors, and only those,
 * into nil, err.  protect calls through lua_pcallk, so the function may
 * yield (a plain coroutine around it). */
#include "luasocket.h"

static const char marker = 0;  /* registry key of the errors' metatable */

/* Pushes the metatable that marks try's errors. */
static void pushmarker(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &marker) != LUA_TNIL) return;
  lua_pop(L, 1);
  lua_createtable(L, 0, 1);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &marker);
}

/* try(ok, err, ...) -> ok, err, ... when ok is true, else raises {err} */
static int finalize(lua_State *L) {
  if (lua_toboolean(L, 1)) return lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  if (!lua_isnil(L, -1)) lua_call(L, 0, 0);
  else lua_pop(L, 1);
  lua_settop(L, 2);
  lua_createtable(L, 1, 0);
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, 1);
  pushmarker(L);
  lua_setmetatable(L, -2);
  return lua_error(L);
}

/* socket.newtry([finalizer]) -> try */
static int socket_newtry(lua_State *L) {
  lua_settop(L, 1);
  lua_pushcclosure(L, finalize, 1);
  return 1;
}

/* What follows the protected call: its results, or nil, err for an
 * error raised by a try function; other errors go on. */
static int protected_k(lua_State *L, int status, lua_KContext ctx) {
  int marked;
  GL_UNUSED(ctx);
  if (status == LUA_OK || status == LUA_YIELD) return lua_gettop(L);
  marked = lua_type(L, -1) == LUA_TTABLE && lua_getmetatable(L, -1);
  if (marked) {
    pushmarker(L);
    marked = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  if (!marked) return lua_error(L);
  lua_pushnil(L);
  lua_rawgeti(L, -2, 1);
  return 2;
}

static int protected_(lua_State *L) {
  int status;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  status = lua_pcallk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, 0, protected_k);
  return protected_k(L, status, 0);
}

/* socket.protect(f) -> a function that runs f, with try's errors as
 * nil, err */
static int socket_protect(lua_State *L) {
  lua_settop(L, 1);
  lua_pushcclosure(L, protected_, 1);
  return 1;
}

void glC_open_except(lua_State *L) {
  lua_pushcfunction(L, socket_newtry);
  lua_setfield(L, -2, "newtry");
  lua_pushcfunction(L, socket_protect);
  lua_setfield(L, -2, "protect");
}
