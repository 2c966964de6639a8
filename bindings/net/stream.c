/* The stream object: the userdata behind green.socket.tcp, .unix and
 * pipes, its classes, the Lua methods every stream has (receive, send,
 * accept, close, timeouts, options, names) and streams over existing
 * fds.  Each method is a few lines over the layers below it: transport.c
 * (handles, connect, listen, accept, writes), reader.c (the buffer) and
 * receive.c (the patterns). */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char glS_scratch[65536];
int glS_onebyte;
size_t glS_nopen;

/* The class (metatable) name of each kind. */
static const char *tnames[GLS_NKINDS];

/* {====== The layer ====== */

void glS_init(void) {
  static int done;
  const char *e;
  if (done) return;
  done = 1;
  /* A write to a closed peer must return "closed", not end the process;
   * libuv uses MSG_NOSIGNAL on some paths only. */
  signal(SIGPIPE, SIG_IGN);
  e = getenv("GREENLUA_IO_ONEBYTE");
  glS_onebyte = e != NULL && *e != '\0' && strcmp(e, "0") != 0;
  gl_wait_setdescriber(GL_WAIT_RECEIVE, glS_describe);
  gl_wait_setdescriber(GL_WAIT_SEND, glS_describe);
  gl_wait_setdescriber(GL_WAIT_ACCEPT, glS_describe);
  gl_wait_setdescriber(GL_WAIT_CONNECT, glS_describe);
  gl_wait_setdescriber(GL_WAIT_DNS, glS_describe);
}

void glS_pushsockets(lua_State *L) {
  if (lua_getfield(L, -1, "socket") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "socket");
  }
}

int glS_parked(lua_State *L, glS_stream *s, int rc) {
  glL_raisepending(L, rc);
  if (s->state == GLS_CLOSED) return glL_fail(L, "closed");
  if (rc == GL_ETIMEDOUT) return glL_fail(L, "timeout");
  return 0;
}
/* }====== */

/* {====== Making, checking and closing streams ====== */

void glS_newstreamclass(lua_State *L, int kind, const char *tname,
                        const luaL_Reg *methods) {
  GL_ASSERT(kind > 0 && kind < GLS_NKINDS);
  glS_init();
  glL_newclass(L, tname, glS_stream_methods, glS_stream_meta);
  glS_addclass(L, kind);
  tnames[kind] = tname;
  lua_getfield(L, -1, "__index");
  luaL_setfuncs(L, glS_tls_methods, 0);
  if (methods != NULL) luaL_setfuncs(L, methods, 0);
  lua_pop(L, 2);
  glS_pushsockets(L);
}

/* Every stream's userdata carries GLS_MAGIC (glS_newstreamx), so a class
 * needs no registering for glS_teststream; a layer still says which of its
 * classes are streams, for the day that changes. */
void glS_addclass(lua_State *L, int kind) {
  GL_UNUSED(L);
  GL_ASSERT(kind > 0 && kind < GLS_NKINDS);
}

/* A stream is recognised by its size and magic number, as a queue is
 * (bindings/core/queue.c): this check sits on every receive and send,
 * where fetching the metatable costs more than the rest of a short call.
 * Reading the magic is safe for any full userdata at least our size, and
 * Lua code cannot forge one. */
glS_stream *glS_teststream(lua_State *L, int i) {
  glS_stream *s = lua_touserdata(L, i);
  if (s != NULL && lua_rawlen(L, i) >= sizeof *s && s->magic == GLS_MAGIC)
    return s;
  return NULL;
}

glS_stream *glS_checkstream(lua_State *L, int i) {
  glS_stream *s = glS_teststream(L, i);
  if (s == NULL) luaL_typeerror(L, i, "green.socket.tcp or unix");
  return s;
}

glS_stream *glS_newstream(lua_State *L, int kind) {
  return glS_newstreamx(L, kind, sizeof(glS_stream));
}

glS_stream *glS_newstreamx(lua_State *L, int kind, size_t size) {
  glS_stream *s;
  GL_ASSERT(kind > 0 && kind < GLS_NKINDS && tnames[kind] != NULL);
  GL_ASSERT(size >= sizeof *s);
  s = lua_newuserdatauv(L, size, 1);
  memset(s, 0, size);
  s->magic = GLS_MAGIC;
  s->kind = kind;
  s->state = GLS_FRESH;
  s->fd = -1;
  s->tconnect = s->tsend = s->tread = s->tidle = UINT64_MAX;
  s->maxline = GLS_MAXLINE;
  gl_waitq_init(&s->readq);
  gl_waitq_init(&s->writeq);
  gl_waitq_init(&s->waitq);
  if (kind == GLS_TCP) {  /* TCP_NODELAY by default (see socket_tcp.c) */
    s->optset = GLS_OPT_NODELAY;
    s->optval = GLS_OPT_NODELAY;
  }
  luaL_setmetatable(L, tnames[kind]);
  glS_nopen++;
  return s;
}

glS_stream *glS_openfd(lua_State *L, int kind, int fd, int *err) {
  glS_stream *s = glS_newstream(L, kind);
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK))) {
    *err = -errno;
    close(fd);
    lua_pop(L, 1);
    return NULL;
  }
  if ((*err = glS_openstream(s, fd)) < 0) {  /* closes fd */
    lua_pop(L, 1);
    return NULL;
  }
  s->state = GLS_CONNECTED;
  return s;
}

glS_stream *glS_newpipe(lua_State *L, uv_pipe_t **pipe) {
  glS_stream *s = glS_newstream(L, GLS_PIPE);
  glS_handle *h = glS_newhandle(s);
  if (h == NULL) luaL_error(L, "not enough memory");
  uv_pipe_init(gl_hub_loop(), &h->u.pipe, 0);
  s->h = h;
  s->state = GLS_CONNECTING;
  *pipe = &h->u.pipe;
  return s;
}

void glS_pipeopened(glS_stream *s) {
  if (s->state == GLS_CONNECTING) s->state = GLS_CONNECTED;
}

int glS_move(lua_State *L, int from, int to) {
  glS_stream *s = glS_checkstream(L, from), *d = glS_checkstream(L, to);
  if (s->state != GLS_CONNECTED || d->state != GLS_FRESH || d->fd >= 0)
    return UV_EINVAL;
  if (s->readq.head != NULL || s->writeq.head != NULL
      || s->waitq.head != NULL || s->rbusy || s->wbusy || s->opening)
    return UV_EBUSY;
  *d = *s;  /* the queues are empty: nothing points into them */
  d->h->s = d;
  if (s->anchored) {  /* the data of a write still in flight */
    lua_getiuservalue(L, from, 1);
    lua_setiuservalue(L, to, 1);
  }
  s->h = NULL;
  s->fd = -1;
  s->rbuf = NULL;
  s->rstart = s->rend = s->rcap = s->lscan = 0;
  s->tls = NULL;
  s->reading = s->anchored = 0;
  s->state = GLS_CLOSED;
  return 0;
}

void glS_close(glS_stream *s) {
  if (s->state == GLS_CLOSED) return;
  if (s->tls != NULL) glS_tls_free(s);  /* close_notify while it can */
  s->state = GLS_CLOSED;
  glS_nopen--;
  if (s->h != NULL) {
    glS_releasehandle(s->h);
    s->h = NULL;
  }
  if (s->fd >= 0) {
    close(s->fd);
    s->fd = -1;
  }
  glS_freebuf(s);
  s->reading = s->polling = s->rbusy = s->wbusy = 0;
  gl_waitq_wake_all(&s->readq, GL_ECLOSED);
  gl_waitq_wake_all(&s->writeq, GL_ECLOSED);
  gl_waitq_wake_all(&s->waitq, GL_ECLOSED);
}
/* }====== */

/* {====== Listening and accepting ====== */

/* s:listen([backlog=128]) -> true | nil, err */
static int stream_listen(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  int e;
  if (s->kind == GLS_PIPE) return glL_fail(L, "not a socket");
  e = glS_listen(s, (int)luaL_optinteger(L, 2, 128));
  if (e < 0) return glS_fail(L, e == UV_EBADF ? UV_EOF : e);
  lua_pushboolean(L, 1);
  return 1;
}

/* s:accept() -> client | nil, err, within the read timeout (see
 * glS_accept). */
static int stream_accept(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1), *c;
  int rc, e;
  if (s->state != GLS_LISTENING)
    return glL_fail(L, s->state == GLS_CLOSED ? "closed" : "not listening");
  c = glS_newstream(L, s->kind);  /* before accept4: may raise */
  c->optset = s->optset & (GLS_OPT_NODELAY | GLS_OPT_KEEPALIVE);
  c->optval = s->optval;  /* the buffer sizes are inherited by the kernel */
  c->maxline = s->maxline;
  e = glS_accept(s, c, &rc);
  glL_raisepending(L, rc);
  if (e < 0) return glS_fail(L, e);  /* "closed", "timeout", ... */
  return 1;
}

/* s:_acceptall() -> {client, ...}: every connection in the listener's
 * backlog now, without waiting (StreamServer:stop takes them before it
 * closes a listener that shares its port, whose backlog close would
 * reset).  An error other than an empty backlog ends the list. */
static int stream_acceptall(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1), *c;
  lua_Integer n = 0;
  lua_newtable(L);
  while (s->state == GLS_LISTENING) {
    c = glS_newstream(L, s->kind);
    c->optset = s->optset & (GLS_OPT_NODELAY | GLS_OPT_KEEPALIVE);
    c->optval = s->optval;
    c->maxline = s->maxline;
    if (glS_tryaccept(s, c) < 0) {
      lua_pop(L, 1);  /* the unused stream is collected */
      break;
    }
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}
/* }====== */

/* {====== Sending ====== */

/* Returns the send's failure: nil, msg, index of the last byte sent. */
static int failsent(lua_State *L, const char *msg, lua_Integer last) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushinteger(L, last);
  return 3;
}

/* s:trysend(data) -> n | nil, err: sends what the socket takes at once
 * of data, without ever waiting: n bytes, 0 when it would have to wait
 * (the kernel takes none, or another send holds the socket or waits for
 * it).  The caller sends the rest later, for instance with s:send, which
 * keeps the order.  On a TLS socket the bytes counted are those
 * encrypted; their ciphertext goes out as the socket takes it. */
static int stream_trysend(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  char buf[128];
  int r;
  if (s->state != GLS_CONNECTED) return glL_fail(L, "closed");
  if (s->werr) return glL_fail(L, glS_errtext(s, s->werr, buf, sizeof buf));
  r = glS_trysend(s, data, len);
  if (r < 0) return glL_fail(L, glS_errtext(s, r, buf, sizeof buf));
  lua_pushinteger(L, r);
  return 1;
}

/* s:send(data, [i], [j]) -> index of the last byte sent (#data for the
 * whole string) | nil, err, index of the last byte sent.  Waits for its
 * turn after other senders, then writes (glS_write). */
static int stream_send(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  size_t len, n, sent = 0;
  const char *data = luaL_checklstring(L, 2, &len);
  lua_Integer i = luaL_optinteger(L, 3, 1), j = luaL_optinteger(L, 4, -1);
  uint64_t deadline;
  int rc, err, inflight;
  char buf[128];
  if (i < 0) i = (lua_Integer)len + i + 1;
  if (i < 1) i = 1;
  if (j < 0) j = (lua_Integer)len + j + 1;
  if (j > (lua_Integer)len) j = (lua_Integer)len;
  if (s->state != GLS_CONNECTED) return failsent(L, "closed", i - 1);
  if (s->werr) return failsent(L, glS_errtext(s, s->werr, buf, sizeof buf),
                               i - 1);
  if (i > j) {
    lua_pushinteger(L, i - 1);
    return 1;
  }
  data += i - 1;
  n = (size_t)(j - i + 1);
  if (s->anchored && !s->h->wbusy) {  /* the last abandoned write ended */
    lua_pushnil(L);
    lua_setiuservalue(L, 1, 1);
    s->anchored = 0;
  }
  deadline = glL_deadline(s->tsend);
  rc = glS_writeturn(s, deadline);
  if (s->state == GLS_CLOSED) {
    glL_raisepending(L, rc);
    return failsent(L, "closed", i - 1);
  }
  glL_raisepending(L, rc);
  if (rc == GL_ETIMEDOUT) return failsent(L, "timeout", i - 1);
  if (s->tls != NULL) {  /* the TLS layer owns its ciphertext */
    err = glS_tls_write(s, data, n, deadline, &sent, &rc);
    inflight = 0;
  } else {
    err = glS_write(s, data, n, deadline, &sent, &rc, &inflight);
  }
  if (inflight) {  /* libuv still reads the data: anchor it */
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 1, 1);
    s->anchored = 1;
  }
  if (s->state == GLS_CLOSED) {
    glL_raisepending(L, rc);
    return failsent(L, "closed", i - 1 + (lua_Integer)sent);
  }
  glS_writedone(s);
  glL_raisepending(L, rc);
  if (rc == GL_ETIMEDOUT)
    return failsent(L, "timeout", i - 1 + (lua_Integer)sent);
  if (err)
    return failsent(L, glS_errtext(s, err, buf, sizeof buf),
                    i - 1 + (lua_Integer)sent);
  lua_pushinteger(L, i - 1 + (lua_Integer)sent);
  return 1;
}
/* }====== */

/* {====== Receiving ====== */

/* s:receive([pattern="*l"], [prefix]) -> data | nil, err, partial */
static int stream_receive(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  int kind = GLS_RLINE, prefix = 0;
  size_t n = 0;
  if (lua_type(L, 2) == LUA_TNUMBER) {
    lua_Integer k = luaL_checkinteger(L, 2);
    luaL_argcheck(L, k >= 0, 2, "negative size");
    kind = GLS_RNUM;  /* any n: more than memory holds waits for a close */
    n = (lua_Unsigned)k > SIZE_MAX ? SIZE_MAX : (size_t)k;
  } else if (!lua_isnoneornil(L, 2)) {
    const char *p = luaL_checkstring(L, 2);
    if (*p == '*') p++;
    if (strcmp(p, "l") == 0) kind = GLS_RLINE;
    else if (strcmp(p, "a") == 0) kind = GLS_RALL;
    else return luaL_argerror(L, 2, "invalid receive pattern");
  }
  if (!lua_isnoneornil(L, 3)) {
    luaL_checkstring(L, 3);
    prefix = 3;
  }
  if (kind == GLS_RNUM && n == 0 && s->state == GLS_CONNECTED) {
    glS_pushdata(L, "", 0, prefix);
    return 1;
  }
  return glS_receive(L, s, kind, n, prefix);
}

/* s:receiveany(max) -> data (1 to max bytes) | nil, err */
static int stream_receiveany(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  lua_Integer max = luaL_checkinteger(L, 2);
  luaL_argcheck(L, max > 0, 2, "must be positive");
  return glS_receive(L, s, GLS_RANY,
                     (lua_Unsigned)max > SIZE_MAX ? SIZE_MAX : (size_t)max, 0);
}

/* s:_peek(n) -> the first n bytes buffered, without consuming them
 * (fewer at the end of the stream) | nil, err: glS_fill, for the specs
 * of C readers. */
static int stream_peek(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  size_t have;
  int rc;
  char buf[128];
  luaL_argcheck(L, n > 0, 2, "must be positive");
  rc = glS_fill(s, (size_t)n, glL_deadline(s->tread));
  glL_raisepending(L, rc);
  if (rc == GL_ECLOSED) return glL_fail(L, "closed");
  if (rc == GL_ETIMEDOUT) return glL_fail(L, "timeout");
  have = glS_buffered(s);
  if (have == 0 && (s->rerr || s->eof)) {
    glS_readdone(s);
    return glL_fail(L, s->rerr ? glS_strerror(s->rerr, buf, sizeof buf)
                               : "closed");
  }
  lua_pushlstring(L, glS_bufdata(s), have < (size_t)n ? have : (size_t)n);
  glS_readdone(s);
  return 1;
}

/* s:_buffer() -> bytes buffered, the buffer's capacity (for the specs) */
static int stream_buffer(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  lua_pushinteger(L, (lua_Integer)glS_buffered(s));
  lua_pushinteger(L, (lua_Integer)s->rcap);
  return 2;
}

/* s:dirty() -> true if received data waits in the buffer */
static int stream_dirty(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  lua_pushboolean(L, glS_buffered(s) > 0);
  return 1;
}
/* }====== */

/* {====== Timeouts, close, shutdown ====== */

/* s:settimeout(seconds): nil or negative: none */
static int stream_settimeout(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  s->tconnect = s->tsend = s->tread = glS_opttimeout(L, 2);
  lua_pushboolean(L, 1);
  return 1;
}

/* s:settimeouts(connect, send, read), in seconds; nil or negative: none */
static int stream_settimeouts(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  s->tconnect = glS_opttimeout(L, 2);
  s->tsend = glS_opttimeout(L, 3);
  s->tread = glS_opttimeout(L, 4);
  lua_pushboolean(L, 1);
  return 1;
}

/* s:close() -> true */
static int stream_close(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  glS_close(s);
  if (s->anchored) {  /* libuv no longer reads a closed handle's writes */
    lua_pushnil(L);
    lua_setiuservalue(L, 1, 1);
    s->anchored = 0;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int stream_gc(lua_State *L) {
  glS_close(glS_checkstream(L, 1));
  return 0;
}

static void onshutdown(uv_shutdown_t *req, int status) {
  GL_UNUSED(status);
  free(req);
}

/* s:shutdown([how="both"]) -> true | nil, err.  "send" shuts the write
 * side once the pending writes are out; "receive" makes receives see the
 * end of the stream. */
static int stream_shutdown(lua_State *L) {
  static const char *const hows[] = {"both", "send", "receive", NULL};
  glS_stream *s = glS_checkstream(L, 1);
  int how = luaL_checkoption(L, 2, "both", hows), e;
  if (s->state != GLS_CONNECTED) return glL_fail(L, "closed");
  if (how != 2 && !s->h->shut) {
    uv_shutdown_t *req = malloc(sizeof *req);
    if (req == NULL) return glS_fail(L, UV_ENOMEM);
    glS_tls_shutdown(s);  /* close_notify first, on a TLS stream */
    e = uv_shutdown(req, &s->h->u.stream, onshutdown);
    if (e < 0) free(req);
    if (e < 0 && e != UV_ENOTCONN) return glS_fail(L, e);
    s->h->shut = 1;
  }
  if (how != 1) {
    shutdown(glS_sockfd(s), SHUT_RD);
    s->eof = 1;
    glS_stopreading(s);
    glS_kick(s);
  }
  lua_pushboolean(L, 1);
  return 1;
}
/* }====== */

/* {====== Names, options, fd ====== */

/* Pushes what getpeername/getsockname(2) say about s's fd. */
static int pushname(lua_State *L, glS_stream *s, int peer) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int fd = glS_sockfd(s), r;
  if (fd < 0) return glL_fail(L, "closed");
  memset(&ss, 0, sizeof ss);
  r = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
           : getsockname(fd, (struct sockaddr *)&ss, &len);
  if (r != 0) return glS_fail(L, -errno);
  return glS_pushsockaddr(L, (struct sockaddr *)&ss);
}

/* s:getpeername() -> host, port, family (Unix: path) | nil, err */
static int stream_getpeername(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  if (s->state != GLS_CONNECTED) return glL_fail(L, "not connected");
  return pushname(L, s, 1);
}

/* s:getsockname() -> host, port, family (Unix: path) | nil, err */
static int stream_getsockname(lua_State *L) {
  return pushname(L, glS_checkstream(L, 1), 0);
}

/* s:setoption(name, value) -> true | nil, err: booleans "tcp-nodelay",
 * "keepalive", "reuseaddr", "reuseport"; sizes in bytes "sndbuf",
 * "rcvbuf" (as OpenResty), and "max-line", the longest line "*l"
 * returns (accepted sockets inherit it).  Options set before the socket
 * has an fd apply when it gets one. */
static int stream_setoption(lua_State *L) {
  static const char *const names[] = {"tcp-nodelay", "keepalive",
                                      "reuseaddr", "reuseport", "sndbuf",
                                      "rcvbuf", "max-line", NULL};
  static const unsigned bits[] = {GLS_OPT_NODELAY, GLS_OPT_KEEPALIVE,
                                  GLS_OPT_REUSEADDR, GLS_OPT_REUSEPORT,
                                  GLS_OPT_SNDBUF, GLS_OPT_RCVBUF, 0};
  glS_stream *s = glS_checkstream(L, 1);
  unsigned bit = bits[luaL_checkoption(L, 2, NULL, names)];
  lua_Integer n = 0;
  int fd, e;
  if (bit == 0) {  /* max-line */
    n = luaL_checkinteger(L, 3);
    luaL_argcheck(L, n > 0 && (lua_Unsigned)n < SIZE_MAX, 3,
                  "size out of range");
    s->maxline = (size_t)n;
    lua_pushboolean(L, 1);
    return 1;
  }
  if (bit == GLS_OPT_SNDBUF || bit == GLS_OPT_RCVBUF) {
    n = luaL_checkinteger(L, 3);
    luaL_argcheck(L, n > 0 && n <= INT_MAX, 3, "size out of range");
  } else {
    luaL_checkany(L, 3);
  }
  if (s->state == GLS_CLOSED) return glL_fail(L, "closed");
  if (bit == GLS_OPT_NODELAY && s->kind != GLS_TCP)
    return glL_fail(L, "operation not supported on socket");
  if (bit == GLS_OPT_SNDBUF) s->sndbuf = (int)n;
  else if (bit == GLS_OPT_RCVBUF) s->rcvbuf = (int)n;
  else if (lua_toboolean(L, 3)) s->optval |= bit;
  else s->optval &= ~bit;
  s->optset |= bit;
  if ((fd = glS_sockfd(s)) >= 0 && (e = glS_applyopts(s, fd, bit)) < 0)
    return glS_fail(L, e);
  lua_pushboolean(L, 1);
  return 1;
}

/* s:getfd() -> fd, or -1 if it has none */
static int stream_getfd(lua_State *L) {
  lua_pushinteger(L, glS_sockfd(glS_checkstream(L, 1)));
  return 1;
}

static int stream_tostring(lua_State *L) {
  static const char *const states[] = {"fresh", "bound", "connecting",
                                       "client", "server", "closed"};
  glS_stream *s = glS_checkstream(L, 1);
  lua_pushfstring(L, "%s{%s}: %p", tnames[s->kind], states[s->state],
                  (void *)s);
  return 1;
}
/* }====== */

const luaL_Reg glS_stream_methods[] = {
  {"listen", stream_listen},
  {"accept", stream_accept},
  {"trysend", stream_trysend},
  {"_acceptall", stream_acceptall},
  {"send", stream_send},
  {"receive", stream_receive},
  {"receiveany", stream_receiveany},
  {"settimeout", stream_settimeout},
  {"settimeouts", stream_settimeouts},
  {"close", stream_close},
  {"shutdown", stream_shutdown},
  {"getpeername", stream_getpeername},
  {"getsockname", stream_getsockname},
  {"setoption", stream_setoption},
  {"getfd", stream_getfd},
  {"dirty", stream_dirty},
  {"_peek", stream_peek},
  {"_buffer", stream_buffer},
  {NULL, NULL}
};

const luaL_Reg glS_stream_meta[] = {
  {"__gc", stream_gc},
  {"__close", stream_gc},
  {"__tostring", stream_tostring},
  {NULL, NULL}
};
