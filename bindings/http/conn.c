/* What green.http needs of a stream socket beyond its Lua methods:
 * whether a kept-alive client connection can carry another request. */
#include "http.h"
#include "net/stream.h"

/* core.reusable(sock) -> true if the socket is connected and has seen
 * neither the end of its stream, an error, nor bytes nobody asked for
 * (the stream reads on in the background between receives, so a peer's
 * close is noticed without a system call here). */
static int core_reusable(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  lua_pushboolean(L, s->state == GLS_CONNECTED && !s->eof && !s->rerr &&
                         !s->werr && s->rend == s->rstart);
  return 1;
}

static const luaL_Reg core_funcs[] = {
  {"reusable", core_reusable},
  {NULL, NULL}
};

int luaopen_green_http_conn(lua_State *L);
int luaopen_green_http_conn(lua_State *L) {
  glH_pushcore(L);
  luaL_setfuncs(L, core_funcs, 0);
  lua_pop(L, 1);
  return 0;
}
