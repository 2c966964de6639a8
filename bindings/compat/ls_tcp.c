/* LuaSocket's TCP objects on the green streams: socket.tcp/tcp4/tcp6,
 * connect and bind (name lookups on libuv's thread pool, each address
 * tried in turn as LuaSocket does), names, family, options, and
 * socket.connect.  What TCP shares with Unix streams is ls_stream.c's.
 *
 * A connect under a zero timeout (settimeout(0)) is LuaSocket's
 * non-blocking connect: it returns nil, "timeout" and goes on in the
 * background on the object's fd; socket.select sees the fd writable once
 * it ends, and the next call settles it (glC_settle). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "luasocket.h"

#define MAXADDRS 16

/* {====== Addresses ====== */

int glC_pushname(lua_State *L, int fd, int peer) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char host[INET6_ADDRSTRLEN + 1], port[8];
  int r;
  memset(&ss, 0, sizeof ss);
  r = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
           : getsockname(fd, (struct sockaddr *)&ss, &len);
  if (r != 0) return glC_fail(L, glS_luasocketerror(-errno));
  if (ss.ss_family == AF_UNIX) {
    lua_pushstring(L, ((struct sockaddr_un *)&ss)->sun_path);
    return 1;
  }
  r = getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, port,
                  sizeof port, NI_NUMERICHOST | NI_NUMERICSERV);
  if (r != 0) return glC_fail(L, gai_strerror(r));
  lua_pushstring(L, host);
  if (peer) lua_pushinteger(L, strtol(port, NULL, 10));
  else lua_pushstring(L, port);  /* LuaSocket gives the local one as text */
  if (ss.ss_family == AF_INET) lua_pushliteral(L, "inet");
  else if (ss.ss_family == AF_INET6) lua_pushliteral(L, "inet6");
  else lua_pushliteral(L, "uknown family");
  return 3;
}

/* Whether s is all digits (a port number rather than a service name). */
static int isport(const char *s) {
  if (*s == '\0') return 0;
  for (; *s; s++)
    if (*s < '0' || *s > '9') return 0;
  return 1;
}

/* Pushes nil, msg and returns 0: a lookup that found nothing usable. */
static int nothing(lua_State *L, const char *msg) {
  glC_fail(L, msg);
  return 0;
}

/* Resolves host:serv for `family` (AF_UNSPEC: any) into addrs, as
 * LuaSocket's getaddrinfo calls do (a NULL host with `passive` is the
 * any address), without blocking the hub: literal addresses at once,
 * names on libuv's thread pool, within `wait` ns and parked where closing
 * c wakes the lookup.  Returns how many, or 0 after pushing nil, err, or
 * 0 with *rc GL_EINTR (an interrupt for the caller to raise). */
static int resolve(lua_State *L, glC_sock *c, const char *host,
                   const char *serv, int family, int passive,
                   struct sockaddr_storage *addrs, uint64_t wait, int *rc) {
  struct addrinfo hints, *res, *ai;
  int n = 0, err;
  long port;
  if (host != NULL && isport(serv) &&
      (port = strtol(serv, NULL, 10)) < 65536) {
    memset(&addrs[0], 0, sizeof addrs[0]);
    if (family != AF_INET6 &&
        uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&addrs[0]) == 0)
      return 1;
    if (family != AF_INET &&
        uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&addrs[0]) == 0)
      return 1;
  }
  memset(&hints, 0, sizeof hints);
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  if (passive) hints.ai_flags = AI_PASSIVE;
  res = glS_getaddrinfox(host, serv, &hints, &c->s.waitq, wait, rc, &err);
  if (*rc == GL_EINTR) return 0;
  if (*rc == GL_ETIMEDOUT) return nothing(L, "timeout");
  if (*rc != GL_OK || c->s.state == GLS_CLOSED) {
    if (res != NULL) uv_freeaddrinfo(res);
    return nothing(L, "closed");
  }
  if (res == NULL) return nothing(L, glC_gaierror(err));
  for (ai = res; ai != NULL && n < MAXADDRS; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    memset(&addrs[n], 0, sizeof addrs[n]);
    memcpy(&addrs[n++], ai->ai_addr, ai->ai_addrlen);
  }
  uv_freeaddrinfo(res);
  return n > 0 ? n : nothing(L, glC_gaierror(UV_EAI_NONAME));
}

static socklen_t addrlen(const struct sockaddr_storage *ss) {
  return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                   : sizeof(struct sockaddr_in);
}

/* Gives c an fd of `family` unless it has one already: LuaSocket makes a
 * socket per family met while it tries addresses.  Returns 0 or a libuv
 * error. */
static int ownfd(glC_sock *c, int family) {
  int fd;
  if (c->s.fd >= 0 && c->family == family) return 0;
  if (c->s.fd >= 0) close(c->s.fd);
  c->s.fd = -1;
  c->s.state = GLS_FRESH;
  if ((fd = glS_socket(&c->s, family)) < 0) return fd;
  c->s.fd = fd;
  c->s.state = GLS_BOUND;
  c->family = family;
  return 0;
}
/* }====== */

/* {====== Connecting ====== */

/* Connects the fresh or bound c to one address within `wait` ns; with no
 * time to wait, leaves the connect in flight (c->pending).  Returns 0 or
 * a libuv error (UV_ETIMEDOUT for a timeout, UV_ECANCELED when c was
 * closed meanwhile or *rc is GL_EINTR, an interrupt to raise). */
static int connectone(glC_sock *c, const struct sockaddr_storage *sa,
                      uint64_t wait, int *rc) {
  int fd = c->s.fd, e;
  if (wait == 0) {
    if (connect(fd, (const struct sockaddr *)sa, addrlen(sa)) != 0) {
      if (errno != EINPROGRESS) return -errno;
      c->pending = 1;
      return UV_ETIMEDOUT;
    }
    c->s.fd = -1;
    if ((e = glS_openstream(&c->s, fd)) < 0) {
      c->s.state = GLS_FRESH;
      return e;
    }
    c->s.state = GLS_CONNECTED;
    return 0;
  }
  c->s.fd = -1;  /* glS_connect takes fd over, even on failure */
  e = glS_connect(&c->s, fd, (const struct sockaddr *)sa, NULL, wait, rc);
  if (c->s.state == GLS_CLOSED || *rc == GL_EINTR) return UV_ECANCELED;
  if (e < 0 && *rc == GL_ETIMEDOUT) return UV_ETIMEDOUT;
  return e;
}

/* The connect of doconnect, once it may start: pushes 1 | nil, err, or
 * nothing with *rc GL_EINTR. */
static int connecting(lua_State *L, glC_sock *c, const char *host,
                      const char *serv, int family, int *rc) {
  struct sockaddr_storage addrs[MAXADDRS];
  int n, i, e = UV_EAI_NONAME;
  n = resolve(L, c, host, serv, family, 0, addrs, glC_stepwait(c), rc);
  if (n == 0) return *rc == GL_EINTR ? 0 : 2;
  if (c->s.state == GLS_CONNECTED) {
    if (connect(glS_sockfd(&c->s), (struct sockaddr *)&addrs[0],
                addrlen(&addrs[0])) == 0)
      return glC_one(L);
    return glC_fail(L, glS_luasocketerror(-errno));
  }
  for (i = 0; i < n; i++) {
    if ((e = ownfd(c, addrs[i].ss_family)) < 0) break;
    e = connectone(c, &addrs[i], glC_stepwait(c), rc);
    if (*rc == GL_EINTR) return 0;
    if (e == 0) return glC_one(L);
    if (c->pending || e == UV_ECANCELED) break;
  }
  return glC_fail(L, glS_luasocketerror(e));
}

/* Connects c to host:serv, trying each address of its family in turn;
 * pushes 1 | nil, err.  A connected c asks the kernel again, as LuaSocket
 * does ("already connected" for another address).  One connect or bind
 * runs at a time (s.opening, as for green sockets). */
static int doconnect(lua_State *L, glC_sock *c, const char *host,
                     const char *serv, int family) {
  int e, rc = GL_OK, nres;
  if (c->s.state == GLS_CLOSED) return glC_fail(L, "closed");
  if (c->s.state == GLS_LISTENING)
    return glC_fail(L, glS_luasocketerror(UV_EINVAL));
  if (c->s.state == GLS_CONNECTING || c->s.opening)
    return glC_fail(L, glS_luasocketerror(UV_EALREADY));
  if (c->pending) {
    e = glC_settle(L, c, glC_stepwait(c));
    if (c->pending) return glC_fail(L, "timeout");
    if (e < 0) {  /* the kernel then says "not connected" to a receive */
      c->connerr = UV_ENOTCONN;
      return glC_fail(L, glS_luasocketerror(e));
    }
    return glC_one(L);
  }
  c->s.opening = 1;
  nres = connecting(L, c, host, serv, family, &rc);
  c->s.opening = 0;
  glL_raisepending(L, rc);
  return nres;
}

/* obj:connect(address, port) -> 1 | nil, err: it becomes a client,
 * whatever the outcome (LuaSocket's non-blocking connect relies on it). */
static int tcp_connect(lua_State *L) {
  glC_sock *c = glC_check(L, -1);
  const char *host = luaL_checkstring(L, 2);
  const char *serv = luaL_checkstring(L, 3);
  int nres = doconnect(L, c, host, serv, c->family);
  if (c->s.state != GLS_LISTENING)
    glC_setclass(L, 1, GLC_TCP, GLC_CLIENT);
  return nres;
}
/* }====== */

/* {====== Binding ====== */

/* Binds c to host:serv ("*": any address); pushes 1 | nil, err. */
static int dobind(lua_State *L, glC_sock *c, const char *host,
                  const char *serv, int family) {
  struct sockaddr_storage addrs[MAXADDRS];
  int n, i, e = UV_EAI_NONAME, rc = GL_OK;
  if (c->s.state == GLS_CLOSED) return glC_fail(L, "closed");
  if (c->s.opening) return glC_fail(L, glS_luasocketerror(UV_EALREADY));
  if (c->s.state != GLS_FRESH && c->s.state != GLS_BOUND)
    return glC_fail(L, glS_luasocketerror(UV_EINVAL));
  if (strcmp(host, "*") == 0) host = NULL;
  c->s.opening = 1;
  n = resolve(L, c, host, serv, family, 1, addrs, UINT64_MAX, &rc);
  c->s.opening = 0;
  glL_raisepending(L, rc);
  if (n == 0) return 2;
  if (c->s.state != GLS_FRESH && c->s.state != GLS_BOUND)
    return glC_fail(L, "closed");
  for (i = 0; i < n; i++) {
    if ((e = ownfd(c, addrs[i].ss_family)) < 0) continue;
    if (bind(c->s.fd, (struct sockaddr *)&addrs[i], addrlen(&addrs[i])) == 0)
      return glC_one(L);
    e = -errno;
  }
  return glC_fail(L, glS_luasocketerror(e));
}

/* master:bind(address, port) -> 1 | nil, err */
static int tcp_bind(lua_State *L) {
  glC_sock *c = glC_check(L, GLC_MASTER);
  const char *host = luaL_checkstring(L, 2);
  const char *serv = luaL_checkstring(L, 3);
  return dobind(L, c, host, serv, c->family);
}
/* }====== */

/* {====== Names, family, options ====== */

/* obj:getpeername() -> host, port, family | nil, err */
static int tcp_getpeername(lua_State *L) {
  glC_sock *c = glC_check(L, -1);
  return glC_pushname(L, glS_sockfd(&c->s), 1);
}

/* obj:getfamily() -> "inet4" | "inet6" */
static int tcp_getfamily(lua_State *L) {
  glC_sock *c = glC_check(L, -1);
  if (c->family == AF_INET6) lua_pushliteral(L, "inet6");
  else lua_pushliteral(L, "inet4");
  return 1;
}

static int tcp_setoption(lua_State *L) {
  glC_sock *c = glC_check(L, -1);
  return glC_setoption(L, glS_sockfd(&c->s), "tcp");
}

static int tcp_getoption(lua_State *L) {
  glC_sock *c = glC_check(L, -1);
  return glC_getoption(L, glS_sockfd(&c->s), "tcp");
}
/* }====== */

/* {====== Constructors ====== */

/* Pushes a new master object of `family` (AF_UNSPEC: no fd until a bind
 * or connect picks one) or nil, err. */
static int newtcp(lua_State *L, int family) {
  glC_sock *c = glC_newsock(L, GLC_TCP);
  int e;
  if (family != AF_UNSPEC && (e = ownfd(c, family)) < 0)
    return glC_fail(L, glS_luasocketerror(e));
  return 1;
}

static int socket_tcp(lua_State *L) { return newtcp(L, AF_UNSPEC); }
static int socket_tcp4(lua_State *L) { return newtcp(L, AF_INET); }
static int socket_tcp6(lua_State *L) { return newtcp(L, AF_INET6); }

/* socket.connect(address, port, [laddress], [lport="0"],
 * [family="unspec"]) -> client | nil, err */
static int socket_connect(lua_State *L) {
  static const char *const names[] = {"unspec", "inet", "inet6", NULL};
  static const int values[] = {AF_UNSPEC, AF_INET, AF_INET6};
  const char *host = luaL_checkstring(L, 1);
  const char *serv = luaL_checkstring(L, 2);
  const char *lhost = luaL_optstring(L, 3, NULL);
  const char *lserv = luaL_optstring(L, 4, "0");
  int family = values[luaL_checkoption(L, 5, "unspec", names)], nres;
  glC_sock *c;
  lua_settop(L, 5);
  c = glC_newsock(L, GLC_TCP);
  if (lhost != NULL) {
    if (dobind(L, c, lhost, lserv, family) != 1) return 2;
    lua_pop(L, 1);
    family = c->family;
  }
  nres = doconnect(L, c, host, serv, family);
  if (nres != 1) {
    glS_close(&c->s);
    return nres;
  }
  lua_pop(L, 1);
  glC_setclass(L, -1, GLC_TCP, GLC_CLIENT);
  return 1;
}

static const luaL_Reg tcp_methods[] = {
  {"connect", tcp_connect},
  {"setpeername", tcp_connect},
  {"bind", tcp_bind},
  {"setsockname", tcp_bind},
  {"getpeername", tcp_getpeername},
  {"getfamily", tcp_getfamily},
  {"setoption", tcp_setoption},
  {"getoption", tcp_getoption},
  {NULL, NULL}
};

static const luaL_Reg tcp_funcs[] = {
  {"tcp", socket_tcp},
  {"tcp4", socket_tcp4},
  {"tcp6", socket_tcp6},
  {"connect", socket_connect},
  {NULL, NULL}
};

void glC_open_tcp(lua_State *L) {
  luaL_Reg all[32];
  int n = 0, i;
  for (i = 0; glC_stream_methods[i].name != NULL; i++)
    all[n++] = glC_stream_methods[i];
  for (i = 0; tcp_methods[i].name != NULL; i++) all[n++] = tcp_methods[i];
  all[n].name = NULL;
  all[n].func = NULL;
  glC_newclasses(L, GLC_TCP, all);
  luaL_setfuncs(L, tcp_funcs, 0);
}
/* }====== */
