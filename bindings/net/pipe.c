/* Streams over fds that are not sockets we connect: pipes (a child's
 * stdin, stdout and stderr) and socketpairs, made with glS_openfd.  A
 * pipe is of class green.Pipe, with every stream method (listen fails);
 * green.socket.socketpair() gives two connected Unix stream sockets. */
#include "stream.h"

#include <errno.h>
#include <unistd.h>

/* Opens fds[0] and fds[1] as streams of `kind` (closing both on failure);
 * returns 2 or nil, err. */
static int pushpair(lua_State *L, int kind, int fds[2]) {
  int err;
  if (glS_openfd(L, kind, fds[0], &err) == NULL) {
    close(fds[1]);
    return glS_fail(L, err);
  }
  if (glS_openfd(L, kind, fds[1], &err) == NULL)
    return glS_fail(L, err);  /* the first is collected */
  return 2;
}

/* green.socket.socketpair() -> two connected green.socket.unix | nil, err
 * (Python's socket.socketpair) */
static int socket_socketpair(lua_State *L) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    return glS_fail(L, -errno);
  return pushpair(L, GLS_UNIX, fds);
}

/* green.socket._pipe() -> reader, writer: the two ends of a pipe(2) as
 * green.Pipe streams (the pipes of child processes, for the specs). */
static int socket_pipe(lua_State *L) {
  uv_file fds[2];
  int e = uv_pipe(fds, 0, 0);
  if (e < 0) return glS_fail(L, e);
  return pushpair(L, GLS_PIPE, fds);
}

static const luaL_Reg pipe_funcs[] = {
  {"socketpair", socket_socketpair},
  {"_pipe", socket_pipe},
  {NULL, NULL}
};

int luaopen_green_pipe(lua_State *L);
int luaopen_green_pipe(lua_State *L) {
  glS_newstreamclass(L, GLS_PIPE, GLS_PIPE_TYPE, NULL);
  luaL_setfuncs(L, pipe_funcs, 0);
  lua_pop(L, 1);
  return 0;
}
