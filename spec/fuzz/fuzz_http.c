/* libFuzzer harness of green.http's parser glue (bindings/http/parser.c
 * on Debian's http-parser): bytes -> request tables (FUZZ_RESPONSE 0) or
 * -> response tables and bodies, as the client reads them (1).  The
 * checks are in fuzz_http.lua: every input is parsed whole and again cut
 * in pieces, and both must give the same messages; any Lua error, and
 * anything AddressSanitizer or UndefinedBehaviorSanitizer sees, stops
 * the run.  Built with -DGL_FUZZ=ON and clang (spec/fuzz/CMakeLists.txt);
 * scripts/tools/test.sh runs each harness on a bounded number of inputs
 * from the seed corpus in spec/fuzz/corpus/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

int luaopen_green_http_parser(lua_State *L);
int luaopen_green_http_codec(lua_State *L);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;
static int fuzzref;

/* A Lua state with the parser's functions (as green.http.core) and the
 * checking function of fuzz_http.lua. */
static void setup(void) {
  L = luaL_newstate();
  luaL_openlibs(L);
  lua_newtable(L);  /* the openers run with a module table on the stack */
  luaopen_green_http_codec(L);
  luaopen_green_http_parser(L);
  lua_pop(L, 1);
  if (luaL_loadfile(L, FUZZ_SCRIPT) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    abort();
  }
  lua_pushboolean(L, FUZZ_RESPONSE);
  lua_call(L, 1, 1);
  fuzzref = luaL_ref(L, LUA_REGISTRYINDEX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static unsigned runs;
  if (L == NULL) setup();
  lua_rawgeti(L, LUA_REGISTRYINDEX, fuzzref);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "fuzz_http: %s\n", lua_tostring(L, -1));
    abort();
  }
  if (++runs % 1024 == 0) lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
