/* Helpers shared by the bindings: timeouts, failures, classes. */
#include "lauxgl.h"

uint64_t glL_opttimeout(lua_State *L, int arg) {
  lua_Number s;
  if (lua_isnoneornil(L, arg)) return UINT64_MAX;
  s = luaL_checknumber(L, arg);
  luaL_argcheck(L, s == s, arg, "timeout is not a number (NaN)");
  return gl_hub_ns(s);
}

uint64_t glL_deadline(uint64_t timeout) {
  uint64_t now;
  if (timeout == UINT64_MAX) return UINT64_MAX;
  now = gl_clock_now();
  return timeout >= UINT64_MAX - now ? UINT64_MAX - 1 : now + timeout;
}

uint64_t glL_remaining(uint64_t deadline) {
  uint64_t now;
  if (deadline == UINT64_MAX) return UINT64_MAX;
  now = gl_clock_now();
  return deadline > now ? deadline - now : 0;
}

int glL_fail(lua_State *L, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

int glL_waited(lua_State *L, int rc, gl_waiter *w) {
  GL_UNUSED(w);
  glL_raisepending(L, rc);
  if (rc == GL_ETIMEDOUT) return glL_fail(L, "timeout");
  lua_pushboolean(L, 1);
  return 1;
}

void glL_newclass(lua_State *L, const char *name, const luaL_Reg *methods,
                  const luaL_Reg *meta) {
  luaL_newmetatable(L, name);
  if (meta != NULL) luaL_setfuncs(L, meta, 0);
  if (methods == NULL) return;
  if (lua_getfield(L, -1, "__index") == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
  } else {
    lua_pop(L, 1);
  }
}

/* __call of a constructor table: drops the table and runs the C ctor in
 * this very call, so that argument errors name the constructor. */
static int callctor(lua_State *L) {
  lua_remove(L, 1);
  return lua_tocfunction(L, lua_upvalueindex(1))(L);
}

void glL_setconstructor(lua_State *L, const char *name, lua_CFunction ctor,
                        const luaL_Reg *statics) {
  lua_newtable(L);
  if (statics != NULL) luaL_setfuncs(L, statics, 0);
  lua_newtable(L);
  lua_pushcfunction(L, ctor);
  lua_pushcclosure(L, callctor, 1);
  lua_setfield(L, -2, "__call");
  lua_setmetatable(L, -2);
  lua_setfield(L, -2, name);
}

void glL_setmtkey(lua_State *L, const void **mt) {
  *mt = lua_topointer(L, -1);
}

void *glL_testudatap(lua_State *L, int idx, const void *mt) {
  void *p = lua_touserdata(L, idx);
  if (p != NULL && lua_getmetatable(L, idx)) {
    int same = lua_topointer(L, -1) == mt;
    lua_pop(L, 1);
    if (same) return p;
  }
  return NULL;
}

void *glL_checkudatap(lua_State *L, int arg, const void *mt,
                      const char *tname) {
  void *p = glL_testudatap(L, arg, mt);
  if (p == NULL) luaL_typeerror(L, arg, tname);
  return p;
}

gl_green *glL_current(lua_State *L) {
  GL_UNUSED(L);
  return gl_green_current();
}
