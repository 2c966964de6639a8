/* LuaSocket's socket.unix module on the green streams: Unix-domain
 * stream sockets (unixstream{master}, {client}, {server}) named by a
 * path, with the methods TCP objects share (ls_stream.c).  The module is
 * a table with stream (also tcp, and its __call) and dgram (also udp);
 * Unix datagram sockets are not provided: dgram raises. */
#include <errno.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "luasocket.h"

/* Fills `un` with `path`, or returns LuaSocket's error text. */
static const char *setpath(struct sockaddr_un *un, const char *path,
                           size_t len) {
  memset(un, 0, sizeof *un);
  un->sun_family = AF_UNIX;
  if (len >= sizeof un->sun_path) return "path too long";
  memcpy(un->sun_path, path, len);
  return NULL;
}

/* master:bind(path) -> 1 | nil, err (an existing file at path is
 * "address already in use") */
static int unix_bind(lua_State *L) {
  glC_sock *c = glC_check(L, GLC_MASTER);
  size_t len;
  const char *path = luaL_checklstring(L, 2, &len), *err;
  struct sockaddr_un un;
  if ((err = setpath(&un, path, len)) != NULL) return glC_fail(L, err);
  if (c->s.fd < 0) return glC_fail(L, glS_luasocketerror(UV_EBADF));
  if (bind(c->s.fd, (struct sockaddr *)&un, sizeof un) != 0)
    return glC_fail(L, glS_luasocketerror(-errno));
  return glC_one(L);
}

/* master:connect(path) -> 1 | nil, err: it becomes a client if it
 * connected. */
static int unix_connect(lua_State *L) {
  glC_sock *c = glC_check(L, GLC_MASTER);
  size_t len;
  const char *path = luaL_checklstring(L, 2, &len), *err;
  struct sockaddr_un un;
  uint64_t wait = glC_stepwait(c);
  int fd = c->s.fd, rc, e;
  if ((err = setpath(&un, path, len)) != NULL) return glC_fail(L, err);
  if (c->s.opening) return glC_fail(L, glS_luasocketerror(UV_EALREADY));
  if (fd < 0) return glC_fail(L, glS_luasocketerror(UV_EBADF));
  if (wait == 0) {  /* a Unix connect ends at once, or cannot start */
    if (connect(fd, (struct sockaddr *)&un, sizeof un) != 0)
      return glC_fail(L, glS_luasocketerror(-errno));
    c->s.fd = -1;
    e = glS_openstream(&c->s, fd);
    c->s.state = e < 0 ? GLS_FRESH : GLS_CONNECTED;
  } else {
    c->s.fd = -1;  /* glS_connect takes fd over, even on failure */
    c->s.opening = 1;
    e = glS_connect(&c->s, fd, NULL, un.sun_path, wait, &rc);
    c->s.opening = 0;
    glL_raisepending(L, rc);
    if (e < 0 && rc == GL_ETIMEDOUT) e = UV_ETIMEDOUT;
    if (e < 0 && c->s.state != GLS_CLOSED) {  /* LuaSocket keeps an fd */
      if ((fd = glS_socket(&c->s, AF_UNIX)) >= 0) {
        c->s.fd = fd;
        c->s.state = GLS_BOUND;
      }
    }
  }
  if (e < 0) return glC_fail(L, glS_luasocketerror(e));
  glC_setclass(L, 1, GLC_UNIX, GLC_CLIENT);
  return glC_one(L);
}

static int unix_setoption(lua_State *L) {
  glC_sock *c = glC_check(L, -1);
  return glC_setoption(L, glS_sockfd(&c->s), "unix");
}

/* unix.stream() -> a master object (with its fd) | nil, err */
static int unix_stream(lua_State *L) {
  glC_sock *c = glC_newsock(L, GLC_UNIX);
  int fd = glS_socket(&c->s, AF_UNIX);
  if (fd < 0) return glC_fail(L, glS_luasocketerror(fd));
  c->s.fd = fd;
  c->s.state = GLS_BOUND;
  return 1;
}

/* unix.dgram(): Unix datagram sockets are not provided. */
static int unix_dgram(lua_State *L) {
  return luaL_error(L, "socket.unix.dgram is not supported under greenlua");
}

/* The module's __call: unix(...) is unix.stream(...). */
static int unix_call(lua_State *L) {
  lua_remove(L, 1);
  return unix_stream(L);
}

/* LuaSocket's unixstream objects have these of the shared methods. */
static const char *const shared[] = {
  "receive", "send", "accept", "listen", "getstats", "setstats",
  "settimeout", "close", "shutdown", "dirty", "getfd", "setfd",
  "getsockname", "__gc", NULL
};

static const luaL_Reg unix_methods[] = {
  {"connect", unix_connect},
  {"setpeername", unix_connect},
  {"bind", unix_bind},
  {"setsockname", unix_bind},
  {"setoption", unix_setoption},
  {NULL, NULL}
};

int glC_luaopen_socket_unix(lua_State *L) {
  luaL_Reg all[32];
  const luaL_Reg *m;
  int n = 0, i;
  glC_open_streams();
  for (m = glC_stream_methods; m->name != NULL; m++)
    for (i = 0; shared[i] != NULL; i++)
      if (strcmp(m->name, shared[i]) == 0) all[n++] = *m;
  for (m = unix_methods; m->name != NULL; m++) all[n++] = *m;
  all[n].name = NULL;
  all[n].func = NULL;
  glC_newclasses(L, GLC_UNIX, all);
  lua_createtable(L, 0, 4);
  lua_pushcfunction(L, unix_stream);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "stream");
  lua_setfield(L, -2, "tcp");
  lua_pushcfunction(L, unix_dgram);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "dgram");
  lua_setfield(L, -2, "udp");
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, unix_call);
  lua_setfield(L, -2, "__call");
  lua_setmetatable(L, -2);
  return 1;
}
