/* What LuaSocket's TCP and Unix stream objects share, on the green
 * streams: receive with its patterns and prefix, send with its range,
 * accept and listen, statistics, timeouts, close, shutdown, dirty, and
 * the fd.  Each method checks the object's class (tcp{client}, ...) and
 * returns what LuaSocket returns, numbers as floats included.  The
 * blocking work is the stream layer's (receive.c, stream.c's send,
 * transport.c): every wait parks only the calling greenthread. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "luasocket.h"

/* {====== Methods of the stream layer reused here ====== */

/* The stream layer's own method `name` (its send, close, shutdown). */
static lua_CFunction streammethod(const char *name) {
  const luaL_Reg *m;
  for (m = glS_stream_methods; m->name != NULL; m++)
    if (strcmp(m->name, name) == 0) return m->func;
  return NULL;
}

static lua_CFunction sendfn, closefn, shutdownfn;

static void findmethods(void) {
  if (sendfn != NULL) return;
  sendfn = streammethod("send");
  closefn = streammethod("close");
  shutdownfn = streammethod("shutdown");
  GL_ASSERT(sendfn && closefn && shutdownfn);
}
/* }====== */

/* {====== Connects left in flight ====== */

int glC_settle(lua_State *L, glC_sock *c, uint64_t wait) {
  int fd = c->s.fd, err = 0, rc, e;
  socklen_t len = sizeof err;
  struct pollfd p;
  if (!c->pending) return 0;
  p.fd = fd;
  p.events = POLLOUT;
  if (poll(&p, 1, 0) == 0) {
    if (wait == 0) return 0;  /* still connecting */
    rc = gl_hub_wait_fd(fd, UV_WRITABLE, wait);
    glL_raisepending(L, rc);
    if (rc != GL_OK || !c->pending) return 0;
  }
  c->pending = 0;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {  /* the fd stays, unconnected, as with LuaSocket */
    c->connerr = -err;
    return -err;
  }
  c->s.fd = -1;
  if ((e = glS_openstream(&c->s, fd)) < 0) {  /* closes fd */
    c->s.state = GLS_FRESH;
    return e;
  }
  c->s.state = GLS_CONNECTED;
  return 0;
}

/* Why a client that is not connected cannot receive: "closed", or the
 * failure of its connect (once), or what the kernel says of a receive on
 * its fd, as LuaSocket would see it. */
static const char *unconnected(glC_sock *c) {
  int e = c->connerr;
  char byte;
  ssize_t r;
  if (c->s.state == GLS_CLOSED) return "closed";
  if (e) {
    c->connerr = 0;
    return glS_luasocketerror(e);
  }
  if (c->s.fd < 0) return glS_luasocketerror(UV_ENOTCONN);
  r = recv(c->s.fd, &byte, 1, MSG_DONTWAIT | MSG_PEEK);
  if (r == 0) return "closed";
  if (r > 0 || errno == EAGAIN) return "timeout";
  return glS_luasocketerror(-errno);
}
/* }====== */

/* {====== Receiving ====== */

/* obj:receive([pattern="*l"], [prefix]) -> data, nil, nil |
 * nil, err, partial.  A number n is n bytes in all, prefix included
 * (0: waits for some data, takes none); "*l" a line without any '\r';
 * "*a" everything until the peer closes. */
static int stream_receive(lua_State *L) {
  glC_sock *c = glC_check(L, GLC_CLIENT);
  size_t size, n = 0;
  int kind = GLS_RLINE, prefix, e;
  const char *p;
  luaL_optlstring(L, 3, "", &size);
  lua_settop(L, 3);
  prefix = size > 0 ? 3 : 0;
  if (lua_isnumber(L, 2)) {
    lua_Number want = lua_tonumber(L, 2);
    luaL_argcheck(L, want >= 0, 2, "invalid receive pattern");
    n = (size_t)want;
    if (size > 0 && n <= size) {  /* the prefix is all of it */
      lua_pushnil(L);
      lua_pushnil(L);
      return 3;
    }
    kind = n == 0 ? GLS_RANY : GLS_RNUM;  /* 0: LuaSocket waits for data */
    n -= size;
  } else {
    p = luaL_optstring(L, 2, "l");
    if (*p == '*') p++;
    if (*p == 'a') kind = GLS_RALL;
    else if (*p != 'l') luaL_argerror(L, 2, "invalid receive pattern");
  }
  if (c->pending && (e = glC_settle(L, c, glC_stepwait(c))) < 0) {
    c->connerr = 0;
    lua_pushnil(L);
    lua_pushstring(L, glS_luasocketerror(e));
  } else if (c->pending) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
  } else if (c->s.state != GLS_CONNECTED) {
    lua_pushnil(L);
    lua_pushstring(L, unconnected(c));
  } else {
    return glS_receive(L, &c->s, kind, n, prefix);
  }
  lua_pushlstring(L, lua_tostring(L, 3), size);
  return 3;
}
/* }====== */

/* {====== Sending ====== */

/* obj:send(data, [i=1], [j=-1]) -> last, nil, nil |
 * nil, err, last: last is the index of the last byte sent. */
static int stream_send(lua_State *L) {
  glC_sock *c = glC_check(L, GLC_CLIENT);
  size_t len;
  lua_Integer i, nres, last;
  int e;
  luaL_checklstring(L, 2, &len);
  i = (lua_Integer)luaL_optnumber(L, 3, 1);
  if (i < 0) i = (lua_Integer)len + i + 1;
  if (i < 1) i = 1;
  if (c->pending && (e = glC_settle(L, c, glC_stepwait(c))) < 0) {
    c->connerr = 0;
    lua_pushnil(L);
    lua_pushstring(L, glS_luasocketerror(e));
    lua_pushnumber(L, (lua_Number)(i - 1));
    return 3;
  }
  if (c->pending) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    lua_pushnumber(L, (lua_Number)(i - 1));
    return 3;
  }
  lua_settop(L, 4);
  nres = sendfn(L);  /* the stream's send: last | nil, err, last */
  last = lua_tointeger(L, -1);
  if (last > i - 1) c->sent += (double)(last - (i - 1));
  lua_pushnumber(L, (lua_Number)last);
  lua_replace(L, -2);
  if (nres == 1) {
    lua_pushnil(L);
    lua_pushnil(L);
  }
  return 3;
}
/* }====== */

/* {====== Servers ====== */

/* server:accept() -> client | nil, err */
static int stream_accept(lua_State *L) {
  glC_sock *s = glC_check(L, GLC_SERVER), *c;
  int family = (int)lua_tointeger(L, lua_upvalueindex(1)), rc, e;
  if (s->s.state != GLS_LISTENING) return glC_fail(L, "closed");
  c = glC_newsock(L, family);
  c->family = s->family;
  e = glS_accept(&s->s, &c->s, &rc);
  glL_raisepending(L, rc);
  if (e < 0) return glC_fail(L, glS_luasocketerror(e));
  glC_setclass(L, -1, family, GLC_CLIENT);
  return 1;
}

/* master:listen([backlog=32]) -> 1 | nil, err: it becomes a server. */
static int stream_listen(lua_State *L) {
  glC_sock *c = glC_check(L, GLC_MASTER);
  int backlog = (int)luaL_optnumber(L, 2, 32), e;
  if (c->s.state == GLS_CLOSED || c->s.fd < 0)
    return glC_fail(L, glS_luasocketerror(UV_EBADF));
  if ((e = glS_listen(&c->s, backlog)) < 0)
    return glC_fail(L, glS_luasocketerror(e));
  glC_setclass(L, 1, (int)lua_tointeger(L, lua_upvalueindex(1)), GLC_SERVER);
  return glC_one(L);
}
/* }====== */

/* {====== Statistics and timeouts ====== */

/* client:getstats() -> received, sent, age */
static int stream_getstats(lua_State *L) {
  glC_sock *c = glC_check(L, GLC_CLIENT);
  lua_pushnumber(L, (lua_Number)c->s.nconsumed + c->recvoff);
  lua_pushnumber(L, c->sent);
  lua_pushnumber(L, glC_gettime() - c->birthday);
  return 3;
}

/* client:setstats([received], [sent], [age]) -> 1 */
static int stream_setstats(lua_State *L) {
  glC_sock *c = glC_check(L, GLC_CLIENT);
  double got = (double)c->s.nconsumed;
  c->recvoff = luaL_optnumber(L, 2, got + c->recvoff) - got;
  c->sent = luaL_optnumber(L, 3, c->sent);
  if (lua_isnumber(L, 4)) c->birthday = glC_gettime() - lua_tonumber(L, 4);
  return glC_one(L);
}

/* obj:settimeout([t], [mode="b"]) -> 1: "b" bounds each wait (restarted
 * by progress), "t" the whole call; nil or negative: none. */
static int stream_settimeout(lua_State *L) {
  glC_sock *c = glC_check(L, -1);
  int n = glC_settimeout(L, &c->block, &c->total);
  glC_applytimeouts(c);
  return n;
}

/* obj:gettimeout() -> block, total */
static int stream_gettimeout(lua_State *L) {
  glC_sock *c = glC_check(L, -1);
  return glC_gettimeout(L, c->block, c->total);
}
/* }====== */

/* {====== Life, fds ====== */

/* obj:close() -> 1 */
static int stream_close(lua_State *L) {
  glC_check(L, -1);
  lua_settop(L, 1);
  closefn(L);
  return glC_one(L);
}

static int stream_gc(lua_State *L) {
  glS_close(lua_touserdata(L, 1));
  return 0;
}

/* client:shutdown([how="both"]) -> 1 */
static int stream_shutdown(lua_State *L) {
  static const char *const hows[] = {"receive", "send", "both", NULL};
  glC_check(L, GLC_CLIENT);
  luaL_checkoption(L, 2, "both", hows);
  lua_settop(L, 2);
  shutdownfn(L);
  return glC_one(L);
}

/* obj:dirty() -> whether received data waits in the buffer */
static int stream_dirty(lua_State *L) {
  glC_sock *c = glC_check(L, -1);
  lua_pushboolean(L, glS_buffered(&c->s) > 0);
  return 1;
}

/* obj:getfd() -> the fd (a float, as LuaSocket's), -1 if none */
static int stream_getfd(lua_State *L) {
  glC_sock *c = glC_check(L, -1);
  lua_pushnumber(L, glS_sockfd(&c->s));
  return 1;
}

/* obj:setfd(fd).  An object without a libuv handle (fresh, bound, or
 * connecting) takes fd as its own.  One with a handle can only let go of
 * its fd (setfd(-1), as LuaSec's wrap does): it is closed, but the fd
 * stays open, for whoever took it. */
static int stream_setfd(lua_State *L) {
  glC_sock *c = glC_check(L, -1);
  int fd = (int)luaL_checknumber(L, 2), old = glS_sockfd(&c->s), keep;
  if (fd == old) return 0;
  if (c->s.h == NULL && c->s.state != GLS_CLOSED) {
    c->s.fd = fd;
    c->s.state = fd >= 0 ? GLS_BOUND : GLS_FRESH;
    c->pending = 0;
    return 0;
  }
  if (fd >= 0) return luaL_error(L, "setfd: the socket has an fd already");
  if (old >= 0 && (keep = dup(old)) >= 0) {
    glS_close(&c->s);  /* closes old, which keep holds open */
    dup2(keep, old);
    close(keep);
  } else {
    glS_close(&c->s);
  }
  return 0;
}

/* obj:getsockname() -> host, port (a string), family | nil, err */
static int stream_getsockname(lua_State *L) {
  glC_sock *c = glC_check(L, -1);
  return glC_pushname(L, glS_sockfd(&c->s), 0);
}
/* }====== */

const luaL_Reg glC_stream_methods[] = {
  {"receive", stream_receive},
  {"send", stream_send},
  {"accept", stream_accept},
  {"listen", stream_listen},
  {"getstats", stream_getstats},
  {"setstats", stream_setstats},
  {"settimeout", stream_settimeout},
  {"gettimeout", stream_gettimeout},
  {"close", stream_close},
  {"shutdown", stream_shutdown},
  {"dirty", stream_dirty},
  {"getfd", stream_getfd},
  {"setfd", stream_setfd},
  {"getsockname", stream_getsockname},
  {"__gc", stream_gc},
  {NULL, NULL}
};

void glC_open_streams(void) { findmethods(); }
