/* green.Local: a table-like object whose fields are separate for each
 * greenthread.  Its uservalue is a weak-keyed table from a greenthread's
 * userdata to that greenthread's fields, so the fields of a finished
 * greenthread go with its userdata. */
#include "lauxgl.h"

#define LOCAL_TYPE "green.Local"
#define STORE_META "green.Local.store"   /* {__mode = "k"} */

static void checklocal(lua_State *L, int i) {
  luaL_checkudata(L, i, LOCAL_TYPE);
}

/* green.Local() -> l */
static int local_new(lua_State *L) {
  lua_newuserdatauv(L, 1, 1);
  luaL_setmetatable(L, LOCAL_TYPE);
  lua_newtable(L);
  luaL_setmetatable(L, STORE_META);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

/* Pushes the running greenthread's fields table of the Local at index 1,
 * creating it if `create`; otherwise pushes nil when there is none.
 * Identifies the greenthread through the hub, never through L, which may
 * be a plain coroutine running inside it. */
static int pushfields(lua_State *L, int create) {
  lua_getiuservalue(L, 1, 1);
  gl_green_push(L, glL_current(L));
  if (lua_rawget(L, -2) == LUA_TNIL && create) {
    lua_pop(L, 1);
    lua_newtable(L);
    gl_green_push(L, glL_current(L));
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
  lua_remove(L, -2);
  return lua_type(L, -1);
}

/* l[k] -> the running greenthread's value, or nil */
static int local_index(lua_State *L) {
  checklocal(L, 1);
  lua_settop(L, 2);
  if (pushfields(L, 0) == LUA_TNIL) return 1;
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

/* l[k] = v, for the running greenthread only */
static int local_newindex(lua_State *L) {
  checklocal(L, 1);
  lua_settop(L, 3);
  pushfields(L, !lua_isnil(L, 3));
  if (lua_isnil(L, -1)) return 0;  /* assigning nil to nothing */
  lua_insert(L, 2);
  lua_rawset(L, 2);
  return 0;
}

/* pairs(l): the running greenthread's fields */
static int local_pairs(lua_State *L) {
  checklocal(L, 1);
  lua_getglobal(L, "next");
  if (pushfields(L, 0) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
  }
  lua_pushnil(L);
  return 3;
}

static int local_tostring(lua_State *L) {
  checklocal(L, 1);
  lua_pushfstring(L, "green.Local: %p", lua_topointer(L, 1));
  return 1;
}

static const luaL_Reg local_meta[] = {
  {"__index", local_index},
  {"__newindex", local_newindex},
  {"__pairs", local_pairs},
  {"__tostring", local_tostring},
  {NULL, NULL}
};

int luaopen_green_local(lua_State *L);
int luaopen_green_local(lua_State *L) {
  luaL_newmetatable(L, LOCAL_TYPE);  /* no methods: all keys are fields */
  luaL_setfuncs(L, local_meta, 0);
  lua_pop(L, 1);
  luaL_newmetatable(L, STORE_META);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_pop(L, 1);
  glL_setconstructor(L, "Local", local_new, NULL);
  return 0;
}
