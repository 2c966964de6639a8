/* green.socket.unix: Unix-domain stream sockets named by a path.  They
 * share every method but connect and bind with TCP sockets (stream.c);
 * an address is the path, so getsockname/getpeername return it alone. */
#include <errno.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "stream.h"

static glS_stream *checkunix(lua_State *L, int i) {
  return luaL_checkudata(L, i, GLS_UNIX_TYPE);
}

/* Checks a path argument that fits in a sockaddr_un. */
static const char *checkpath(lua_State *L, int arg) {
  struct sockaddr_un un;
  size_t len;
  const char *path = luaL_checklstring(L, arg, &len);
  luaL_argcheck(L, len > 0 && len < sizeof un.sun_path, arg,
                "path empty or too long");
  luaL_argcheck(L, strlen(path) == len, arg, "path contains zeros");
  return path;
}

/* s:connect(path) -> true | nil, err */
static int unix_connect(lua_State *L) {
  glS_stream *s = checkunix(L, 1);
  const char *path = checkpath(L, 2);
  int fd, rc, err = glS_canopen(s, 0);
  if (err < 0) return glS_fail(L, err);
  if (s->fd >= 0) {
    fd = s->fd;
    s->fd = -1;
  } else if ((fd = glS_socket(s, AF_UNIX)) < 0) {
    return glS_fail(L, fd);
  }
  err = glS_connect(s, fd, NULL, path, s->tconnect, &rc);
  if (err == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return glS_parked(L, s, rc) > 0 ? 2 : glS_fail(L, err);
}

/* s:bind(path) -> true | nil, err.  An existing file at path is an
 * error ("address already in use"), as with LuaSocket. */
static int unix_bind(lua_State *L) {
  glS_stream *s = checkunix(L, 1);
  const char *path = checkpath(L, 2);
  struct sockaddr_un un;
  int fd = glS_canopen(s, 1);
  if (fd < 0) return glS_fail(L, fd);
  if ((fd = glS_socket(s, AF_UNIX)) < 0) return glS_fail(L, fd);
  memset(&un, 0, sizeof un);
  un.sun_family = AF_UNIX;
  memcpy(un.sun_path, path, strlen(path) + 1);
  if (bind(fd, (struct sockaddr *)&un, sizeof un) != 0) {
    int e = -errno;
    close(fd);
    return glS_fail(L, e);
  }
  s->fd = fd;
  s->family = AF_UNIX;
  s->state = GLS_BOUND;
  lua_pushboolean(L, 1);
  return 1;
}

/* green.socket.unix() -> a fresh Unix stream socket */
static int socket_unix(lua_State *L) {
  glS_newstream(L, GLS_UNIX);
  return 1;
}

static const luaL_Reg unix_methods[] = {
  {"connect", unix_connect},
  {"bind", unix_bind},
  {NULL, NULL}
};

int luaopen_green_socket_unix(lua_State *L);
int luaopen_green_socket_unix(lua_State *L) {
  glS_newstreamclass(L, GLS_UNIX, GLS_UNIX_TYPE, unix_methods);
  lua_pushcfunction(L, socket_unix);
  lua_setfield(L, -2, "unix");
  lua_pop(L, 1);
  return 0;
}
