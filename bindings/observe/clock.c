/* green.virtual_clock: time that jumps to the next deadline whenever
 * every greenthread waits only for time or for one another (the hub
 * decides, see gl_hub_virtual_clock), for specs of timeouts that should
 * neither wait nor race the real clock.  GREENLUA_VIRTUAL_CLOCK=1 turns
 * it on from the start. */
#include <string.h>

#include "lauxgl.h"

/* green.virtual_clock([on=true]) -> whether it was on
 * green.virtual_clock(fn, ...) -> fn's values, fn having run with the
 * virtual clock on; it is then set back as it was, also when fn raises
 * (the error goes on). */
static int green_virtual_clock(lua_State *L) {
  int was = gl_hub_virtual();
  if (lua_type(L, 1) == LUA_TFUNCTION) {
    int status;
    gl_hub_virtual_clock(1);
    status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    gl_hub_virtual_clock(was);
    if (status != LUA_OK) return lua_error(L);
    return lua_gettop(L);
  }
  gl_hub_virtual_clock(lua_isnone(L, 1) || lua_toboolean(L, 1));
  lua_pushboolean(L, was);
  return 1;
}

int luaopen_green_clock(lua_State *L);
int luaopen_green_clock(lua_State *L) {
  const char *env = getenv("GREENLUA_VIRTUAL_CLOCK");
  if (env != NULL && *env != '\0' && strcmp(env, "0") != 0)
    gl_hub_virtual_clock(1);
  lua_pushcfunction(L, green_virtual_clock);
  lua_setfield(L, -2, "virtual_clock");
  return 0;
}
