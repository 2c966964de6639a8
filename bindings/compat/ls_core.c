/* The socket.core module, and what makes require find it: under greenlua,
 * package.preload (searched before package.path and package.cpath) has
 * "socket.core" and "socket.unix", so LuaSocket's C modules are never
 * loaded; "socket" is LuaSocket's own socket.lua when it is installed
 * (Debian's lua-socket), run on our core, else a small module of ours
 * with the same helpers (bindings/compat/luasocket.lua). */
#include "luasocket.h"

static int slept(lua_State *L, int rc, gl_waiter *w) {
  GL_UNUSED(w);
  glL_raisepending(L, rc);
  return 0;
}

/* socket.sleep(seconds): only the calling greenthread sleeps (a wait that
 * gives its stack up, as green.sleep's). */
static int socket_sleep(lua_State *L) {
  lua_Number n = luaL_checknumber(L, 1);
  if (n > 2147483647) n = 2147483647;
  if (n > 0) {
    gl_green_waiter(GL_WAIT_SLEEP, NULL);
    return gl_green_wait(L, NULL, gl_hub_ns(n), slept);
  }
  return slept(L, gl_hub_yield(), NULL);
}

/* socket.gettime() -> seconds since the epoch */
static int socket_gettime(lua_State *L) {
  lua_pushnumber(L, glC_gettime());
  return 1;
}

/* socket.skip(n, ...) -> the arguments after the first n */
static int socket_skip(lua_State *L) {
  int amount = (int)luaL_checkinteger(L, 1);
  int ret = lua_gettop(L) - amount - 1;
  return ret >= 0 ? ret : 0;
}

static int socket_unload(lua_State *L) {
  GL_UNUSED(L);
  return 0;
}

static const luaL_Reg core_funcs[] = {
  {"sleep", socket_sleep},
  {"gettime", socket_gettime},
  {"skip", socket_skip},
  {"__unload", socket_unload},
  {NULL, NULL}
};

/* require "socket.core" */
static int luaopen_socket_core(lua_State *L) {
  glC_open_streams();
  lua_newtable(L);
  luaL_setfuncs(L, core_funcs, 0);
  glC_open_tcp(L);
  glC_open_udp(L);
  glC_open_select(L);
  glC_open_dns(L);
  glC_open_except(L);
  lua_pushliteral(L, GLC_VERSION);
  lua_setfield(L, -2, "_VERSION");
  lua_pushinteger(L, 8192);
  lua_setfield(L, -2, "_DATAGRAMSIZE");
  lua_pushinteger(L, 1024);
  lua_setfield(L, -2, "_SETSIZE");
  lua_pushinteger(L, -1);
  lua_setfield(L, -2, "_SOCKETINVALID");
  return 1;
}

/* require "socket": LuaSocket's socket.lua from package.path, run as the
 * Lua searcher would run it; without it, our own helpers over the core. */
static int loadsocket(lua_State *L) {
  const char *path;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchpath");
  lua_pushliteral(L, "socket");
  lua_getfield(L, -3, "path");
  lua_call(L, 2, 1);
  if ((path = lua_tostring(L, -1)) != NULL) {
    if (luaL_loadfile(L, path) != LUA_OK) return lua_error(L);
    lua_pushliteral(L, "socket");
    lua_pushstring(L, path);
    lua_call(L, 2, 1);
    return 1;
  }
  lua_getglobal(L, "require");
  lua_pushliteral(L, "green.luasocket");
  lua_call(L, 1, 1);  /* a function that builds the module */
  lua_call(L, 0, 1);
  return 1;
}

static int loadunix(lua_State *L) { return glC_luaopen_socket_unix(L); }

/* Called while the green module is built: the preload entries. */
int luaopen_green_ecosystem(lua_State *L);
int luaopen_green_ecosystem(lua_State *L) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_socket_core);
  lua_setfield(L, -2, "socket.core");
  lua_pushcfunction(L, loadunix);
  lua_setfield(L, -2, "socket.unix");
  lua_pushcfunction(L, loadsocket);
  lua_setfield(L, -2, "socket");
  lua_pop(L, 2);
  return 0;
}
