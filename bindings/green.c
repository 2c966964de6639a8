/* luaopen_green: the green module.  Its own functions are the greenthread
 * basics (spawn, sleep, getcurrent, now, exit); every C file of a layer's
 * folder (bindings/core, bindings/net, ...) that defines
 * luaopen_green_<name> adds its objects through it, and the Lua parts
 * (bindings/<layer>/<name>.lua, preloaded as green.<name>) are loaded
 * last, in name order. */
#include <stdlib.h>
#include <string.h>

#include "lauxgl.h"

#define GL_MODULE(n) int luaopen_green_##n(lua_State *L);
#include "gl_modules.h"
#undef GL_MODULE

typedef struct gl_embedded {
  const char *name, *src;
  size_t len;
} gl_embedded;
extern const gl_embedded gl_embedded_lua[];

/* green.spawn(fn, ...) -> g */
static int green_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  gl_green_spawn(L, lua_gettop(L) - 1, 0);
  return 1;
}

/* green.spawn_later(seconds, fn, ...) -> g */
static int green_spawn_later(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s == s, 1, "not a number (NaN)");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_remove(L, 1);
  gl_green_spawn(L, lua_gettop(L) - 1, gl_hub_ns(s));
  return 1;
}

static int slept(lua_State *L, int rc, gl_waiter *w) {
  GL_UNUSED(w);
  glL_raisepending(L, rc);
  return 0;
}

/* green.sleep([seconds]): 0, nil or a negative number yields once. */
static int green_sleep(lua_State *L) {
  int isnum;
  lua_Number s;
  if (lua_tointegerx(L, 1, &isnum) == 0 && isnum)  /* sleep(0): a yield */
    return slept(L, gl_hub_yield(), NULL);
  s = lua_tonumberx(L, 1, &isnum);              /* the common case, cheaply */
  if (!isnum) s = luaL_optnumber(L, 1, 0);      /* nil, none, or an error */
  luaL_argcheck(L, s == s, 1, "not a number (NaN)");
  if (s > 0) {
    gl_green_waiter(GL_WAIT_SLEEP, NULL);
    return gl_green_wait(L, NULL, gl_hub_ns(s), slept);
  }
  return slept(L, gl_hub_yield(), NULL);
}

/* green.getcurrent() -> the running greenthread */
static int green_getcurrent(lua_State *L) {
  gl_green_push(L, glL_current(L));
  return 1;
}

/* green.now() -> seconds on a monotonic clock */
static int green_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)gl_clock_now() / 1e9);
  return 1;
}

/* green.exit([code=0]): ends the process at once, as os.exit does. */
static int green_exit(lua_State *L) {
  int code;
  if (lua_isboolean(L, 1))
    code = lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE;
  else
    code = (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
  fflush(NULL);
  exit(code);
  return 0;
}

static const luaL_Reg green_funcs[] = {
  {"spawn", green_spawn},
  {"spawn_later", green_spawn_later},
  {"sleep", green_sleep},
  {"getcurrent", green_getcurrent},
  {"now", green_now},
  {"exit", green_exit},
  {NULL, NULL}
};

/* GreenletExit: the value g:kill() raises by default. */
static int exit_tostring(lua_State *L) {
  lua_pushliteral(L, "GreenletExit");
  return 1;
}

static void newgreenletexit(lua_State *L) {
  lua_newtable(L);
  lua_newtable(L);
  lua_pushcfunction(L, exit_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "green.GreenletExit");
  lua_setfield(L, -2, "__name");
  lua_setmetatable(L, -2);
}

/* Loader of an embedded Lua part: runs the chunk with the green table. */
static int loadembedded(lua_State *L) {
  const gl_embedded *e = lua_touserdata(L, lua_upvalueindex(1));
  char chunkname[64];
  snprintf(chunkname, sizeof chunkname, "@%s.lua", e->name);
  for (char *p = chunkname; *p; p++)
    if (*p == '.' && strcmp(p, ".lua") != 0) *p = '/';
  if (luaL_loadbuffer(L, e->src, e->len, chunkname) != LUA_OK)
    return lua_error(L);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "green");
  lua_remove(L, -2);
  lua_call(L, 1, 1);
  return 1;
}

int luaopen_green(lua_State *L) {
  const gl_embedded *e;
  luaL_newlib(L, green_funcs);
  newgreenletexit(L);
  lua_setfield(L, -2, "GreenletExit");
  /* Visible to the Lua parts' require before this function returns. */
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "green");
  lua_pop(L, 1);
#define GL_MODULE(n) luaopen_green_##n(L);
#include "gl_modules.h"
#undef GL_MODULE
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  for (e = gl_embedded_lua; e->name != NULL; e++) {
    lua_pushlightuserdata(L, (void *)e);
    lua_pushcclosure(L, loadembedded, 1);
    lua_setfield(L, -2, e->name);
  }
  lua_pop(L, 2);
  for (e = gl_embedded_lua; e->name != NULL; e++) {
    lua_getglobal(L, "require");
    lua_pushstring(L, e->name);
    lua_call(L, 1, 0);
  }
  lua_pushvalue(L, -1);
  lua_setglobal(L, "green");
  return 1;
}
