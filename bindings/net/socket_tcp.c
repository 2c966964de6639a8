/* green.socket.tcp: TCP sockets, and green.socket.connect/listen.  What
 * TCP shares with Unix sockets (receive, send, accept, close, options)
 * is in stream.c; this file resolves host names and binds and connects.
 *
 * Connected and accepted sockets have TCP_NODELAY on (OpenResty's
 * tcp_nodelay default; gevent leaves Nagle on): request/response
 * protocols written as several sends would otherwise wait for delayed
 * ACKs.  s:setoption("tcp-nodelay", false) turns it off. */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "stream.h"

#define MAXADDRS 8

static glS_stream *checktcp(lua_State *L, int i) {
  return luaL_checkudata(L, i, GLS_TCP_TYPE);
}

static socklen_t addrlen(const struct sockaddr_storage *ss) {
  return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                   : sizeof(struct sockaddr_in);
}

/* Connects s to host:port within its connect timeout, trying each
 * address the name resolves to in turn (LuaSocket's and gevent's
 * create_connection's order); a bound socket tries its own family once.
 * Returns 0 or a libuv error, UV_ECANCELED when a park ended otherwise
 * than by its waker (*rc) or s was closed. */
static int connectto(glS_stream *s, const char *host, int port, int *rc) {
  struct sockaddr_storage addrs[MAXADDRS];
  uint64_t deadline = glL_deadline(s->tconnect);
  int n, i, err, fd, bound;
  n = glS_resolve(host, port, SOCK_STREAM, addrs, MAXADDRS, &s->waitq,
                  glL_remaining(deadline), rc, &err);
  if (*rc != GL_OK || s->state == GLS_CLOSED) return UV_ECANCELED;
  if (n == 0) return err;
  err = UV_EAFNOSUPPORT;
  for (i = 0; i < n; i++) {
    bound = s->fd >= 0;
    if (bound) {
      if (s->family != addrs[i].ss_family) continue;
      fd = s->fd;
      s->fd = -1;
    } else if ((fd = glS_socket(s, addrs[i].ss_family)) < 0) {
      err = fd;
      continue;
    }
    err = glS_connect(s, fd, (struct sockaddr *)&addrs[i], NULL,
                      glL_remaining(deadline), rc);
    if (err == 0) return 0;
    if (*rc != GL_OK || s->state == GLS_CLOSED) return UV_ECANCELED;
    if (bound) break;
  }
  return err;
}

/* Connects s (connectto), one connect or bind at a time: returns true |
 * nil, err. */
static int doconnect(lua_State *L, glS_stream *s, const char *host,
                     int port) {
  int rc = GL_OK, e = glS_canopen(s, 0);
  if (e < 0) return glS_fail(L, e);
  s->opening = 1;
  e = connectto(s, host, port, &rc);
  s->opening = 0;
  if (e == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (glS_parked(L, s, rc) > 0) return 2;
  return glS_fail(L, e);
}

/* Binds s to host:port ("*": any address) with SO_REUSEADDR, as libuv's
 * uv_tcp_bind does, unless setoption turned it off.  Returns 0 or a
 * libuv error; *rc is the status of a name lookup. */
static int bindto(glS_stream *s, const char *host, int port, int *rc) {
  struct sockaddr_storage addrs[MAXADDRS];
  int n, i, fd, err;
  n = glS_resolve(host, port, SOCK_STREAM, addrs, MAXADDRS, &s->waitq,
                  s->tconnect, rc, &err);
  if (*rc != GL_OK || s->state == GLS_CLOSED) return UV_ECANCELED;
  if (n == 0) return err;
  if (!(s->optset & GLS_OPT_REUSEADDR)) {
    s->optset |= GLS_OPT_REUSEADDR;
    s->optval |= GLS_OPT_REUSEADDR;
  }
  for (i = 0; i < n; i++) {
    if ((fd = glS_socket(s, addrs[i].ss_family)) < 0) {
      err = fd;
      continue;
    }
    if (bind(fd, (struct sockaddr *)&addrs[i], addrlen(&addrs[i])) == 0) {
      s->fd = fd;
      s->family = addrs[i].ss_family;
      s->state = GLS_BOUND;
      return 0;
    }
    err = -errno;
    close(fd);
  }
  return err;
}

/* bindto, one connect or bind at a time. */
static int dobind(glS_stream *s, const char *host, int port, int *rc) {
  int e = glS_canopen(s, 1);
  *rc = GL_OK;
  if (e < 0) return e;
  s->opening = 1;
  e = bindto(s, host, port, rc);
  s->opening = 0;
  return e;
}

/* Turns dobind's results into Lua's. */
static int bindresult(lua_State *L, glS_stream *s, int e, int rc) {
  return glS_parked(L, s, rc) > 0 ? 2 : glS_fail(L, e);
}

/* s:connect(host, port) -> true | nil, err */
static int tcp_connect(lua_State *L) {
  glS_stream *s = checktcp(L, 1);
  const char *host = luaL_checkstring(L, 2);
  int port = glS_checkport(L, 3);
  return doconnect(L, s, host, port);
}

/* s:bind(host, port) -> true | nil, err */
static int tcp_bind(lua_State *L) {
  glS_stream *s = checktcp(L, 1);
  const char *host = luaL_checkstring(L, 2);
  int port = glS_checkport(L, 3), rc;
  int e = dobind(s, host, port, &rc);
  if (e < 0) return bindresult(L, s, e, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* green.socket.tcp() -> a fresh TCP socket */
static int socket_tcp(lua_State *L) {
  glS_newstream(L, GLS_TCP);
  return 1;
}

/* green.socket.connect(host, port, [timeout]) -> socket | nil, err.  The
 * timeout bounds the connect only; the socket has none afterwards. */
static int socket_connect(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  int port = glS_checkport(L, 2), nres;
  uint64_t timeout = glS_opttimeout(L, 3);
  glS_stream *s;
  lua_settop(L, 3);
  s = glS_newstream(L, GLS_TCP);
  s->tconnect = timeout;
  nres = doconnect(L, s, host, port);
  if (s->state != GLS_CONNECTED) return nres;
  s->tconnect = UINT64_MAX;
  lua_settop(L, 4);
  return 1;
}

/* green.socket.listen(host, port, [backlog=128]) -> socket | nil, err;
 * port 0 picks a free port (see s:getsockname()). */
static int socket_listen(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  int port = glS_checkport(L, 2), rc, e;
  int backlog = (int)luaL_optinteger(L, 3, 128);
  glS_stream *s;
  lua_settop(L, 3);
  s = glS_newstream(L, GLS_TCP);
  e = dobind(s, host, port, &rc);
  if (e < 0) return bindresult(L, s, e, rc);
  if ((e = glS_listen(s, backlog)) < 0) return glS_fail(L, e);
  return 1;
}

static const luaL_Reg tcp_methods[] = {
  {"connect", tcp_connect},
  {"bind", tcp_bind},
  {NULL, NULL}
};

static const luaL_Reg socket_funcs[] = {
  {"tcp", socket_tcp},
  {"connect", socket_connect},
  {"listen", socket_listen},
  {NULL, NULL}
};

int luaopen_green_socket_tcp(lua_State *L);
int luaopen_green_socket_tcp(lua_State *L) {
  glS_newstreamclass(L, GLS_TCP, GLS_TCP_TYPE, tcp_methods);
  luaL_setfuncs(L, socket_funcs, 0);
  lua_pop(L, 1);
  return 0;
}
