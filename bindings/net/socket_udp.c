/* green.socket.udp: datagram sockets.  A receive first tries recvfrom on
 * the fd; if nothing is there it parks, with libuv receiving only while
 * someone waits, each datagram handed to the first waiter (so nothing is
 * queued in user space: unread datagrams wait in the kernel).  A send
 * tries uv_udp_try_send, then copies the datagram into a uv_udp_send. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "stream.h"

#define UDP_TYPE "green.socket.udp"
#define DGRAM_DEFAULT 8192  /* LuaSocket's UDP_DATAGRAMSIZE */
#define MAXADDRS 8

typedef struct udph {
  uv_udp_t u;
  struct gl_udp *s;  /* NULL once the socket let go */
} udph;

typedef struct gl_udp {
  udph *h;           /* NULL once closed */
  int receiving;     /* uv_udp_recv_start is on */
  int connected;     /* setpeername was called */
  int reuseaddr;     /* setoption("reuseaddr", true) before setsockname */
  uint64_t timeout;
  gl_waitq recvq;    /* receivers, served in order */
  gl_waitq waitq;    /* senders, name lookups */
} gl_udp;

/* A datagram handed to a parked receiver (the waiter's data). */
typedef struct dgram {
  struct sockaddr_storage from;
  size_t len;
  char data[];
} dgram;

/* A send that had to wait.  Freed by whoever comes last: the sender if
 * the callback ran (`done`), else the callback. */
typedef struct udpsend {
  uv_udp_send_t req;
  gl_waitq *q;        /* where the sender parks, with this as w.data */
  int status, done, waiting;
  char data[];
} udpsend;

static gl_udp *checkudp(lua_State *L, int i) {
  return luaL_checkudata(L, i, UDP_TYPE);
}

static void onclose(uv_handle_t *hd) { free(hd); }

/* glS_describe reads the handle through the socket's first field. */
_Static_assert(offsetof(gl_udp, h) == 0 && offsetof(udph, u) == 0,
               "a UDP socket starts with its handle");

static void closeudp(gl_udp *s) {
  if (s->h == NULL) return;
  glS_nopen--;
  s->h->s = NULL;
  uv_close((uv_handle_t *)&s->h->u, onclose);
  s->h = NULL;
  s->receiving = 0;
  gl_waitq_wake_all(&s->recvq, GL_ECLOSED);
  gl_waitq_wake_all(&s->waitq, GL_ECLOSED);
}

/* Resolves host:port into *out (the first address), parking in s->waitq;
 * returns 0 or pushes nil, err and returns 2 (raises an interrupt). */
static int resolve(lua_State *L, gl_udp *s, const char *host, int port,
                   struct sockaddr_storage *out) {
  struct sockaddr_storage addrs[MAXADDRS];
  int rc, err;
  int n = glS_resolve(host, port, SOCK_DGRAM, addrs, MAXADDRS, &s->waitq,
                      s->timeout, &rc, &err);
  glL_raisepending(L, rc);
  if (s->h == NULL) return glL_fail(L, "closed");
  if (rc == GL_ETIMEDOUT) return glL_fail(L, "timeout");
  if (n == 0) return glS_fail(L, err);
  *out = addrs[0];
  return 0;
}

/* {====== Receiving ====== */

static void onalloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf) {
  GL_UNUSED(hd);
  GL_UNUSED(suggested);
  buf->base = glS_scratch;
  buf->len = sizeof glS_scratch;
}

static void stoprecv(gl_udp *s) {
  if (s->receiving) {
    uv_udp_recv_stop(&s->h->u);
    s->receiving = 0;
  }
}

static void onrecv(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf,
                   const struct sockaddr *addr, unsigned flags) {
  gl_udp *s = ((udph *)u)->s;
  gl_waiter *w;
  dgram *d;
  GL_UNUSED(flags);
  if (s == NULL) return;
  if (nread == 0 && addr == NULL) return;  /* nothing more to read */
  w = s->recvq.head;
  if (w == NULL) {  /* cannot happen: we stop when nobody waits */
    stoprecv(s);
    return;
  }
  if (nread < 0) {
    w->n = nread;
  } else if ((d = malloc(sizeof *d + (size_t)nread)) == NULL) {
    w->n = UV_ENOMEM;
  } else {
    memset(&d->from, 0, sizeof d->from);
    if (addr != NULL)
      memcpy(&d->from, addr, addr->sa_family == AF_INET6
                                 ? sizeof(struct sockaddr_in6)
                                 : sizeof(struct sockaddr_in));
    d->len = (size_t)nread;
    memcpy(d->data, buf->base, (size_t)nread);
    w->data = d;
  }
  gl_hub_wake(w, GL_OK);
  if (s->recvq.head == NULL) stoprecv(s);
}

/* Pushes the sender's host and port after the data; returns 3. */
static int pushfrom(lua_State *L, const struct sockaddr_storage *ss) {
  if (glS_pushsockaddr(L, (const struct sockaddr *)ss) == 3) lua_pop(L, 1);
  else lua_settop(L, lua_gettop(L) - 2), lua_pushnil(L), lua_pushnil(L);
  return 3;
}

/* Receives one datagram, truncated to `size`; pushes data and, if
 * `from`, host and port.  Returns the count or nil, err. */
static int receive(lua_State *L, gl_udp *s, size_t size, int from) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  uv_os_fd_t fd;
  gl_waiter w;
  dgram *d;
  ssize_t n = -1;
  int rc, e;
  if (s->h == NULL) return glL_fail(L, "closed");
  memset(&ss, 0, sizeof ss);
  if (s->recvq.head == NULL && uv_fileno((uv_handle_t *)&s->h->u, &fd) == 0) {
    do {  /* what the kernel holds already, without parking */
      n = recvfrom(fd, glS_scratch, sizeof glS_scratch,
                   MSG_DONTWAIT, (struct sockaddr *)&ss, &len);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
      return glS_fail(L, -errno);
  }
  if (n >= 0) {
    lua_pushlstring(L, glS_scratch, (size_t)n < size ? (size_t)n : size);
    return from ? pushfrom(L, &ss) : 1;
  }
  if (!s->receiving) {
    e = uv_udp_recv_start(&s->h->u, onalloc, onrecv);
    if (e < 0) return glS_fail(L, e);
    s->receiving = 1;
  }
  gl_waiter_init(&w, GL_WAIT_RECEIVE, s);
  rc = gl_waitq_wait(&s->recvq, &w, s->timeout);
  d = w.data;
  if (s->h != NULL && s->recvq.head == NULL) stoprecv(s);
  if (d != NULL) {  /* handed a datagram: never lost, even if closed */
    lua_pushlstring(L, d->data, d->len < size ? d->len : size);
    if (from) {
      memcpy(&ss, &d->from, sizeof ss);
      free(d);
      return pushfrom(L, &ss);
    }
    free(d);
    return 1;
  }
  glL_raisepending(L, rc);
  if (rc == GL_ECLOSED || s->h == NULL) return glL_fail(L, "closed");
  if (rc == GL_ETIMEDOUT) return glL_fail(L, "timeout");
  return glS_fail(L, (int)w.n);
}

static size_t optsize(lua_State *L, int arg) {
  lua_Integer n = luaL_optinteger(L, arg, DGRAM_DEFAULT);
  luaL_argcheck(L, n > 0, arg, "size must be positive");
  return (size_t)n;
}

/* u:receive([size=8192]) -> data | nil, err */
static int udp_receive(lua_State *L) {
  gl_udp *s = checkudp(L, 1);
  return receive(L, s, optsize(L, 2), 0);
}

/* u:receivefrom([size=8192]) -> data, host, port | nil, err */
static int udp_receivefrom(lua_State *L) {
  gl_udp *s = checkudp(L, 1);
  return receive(L, s, optsize(L, 2), 1);
}
/* }====== */

/* {====== Sending ====== */

static void onsend(uv_udp_send_t *req, int status) {
  udpsend *r = (udpsend *)req;
  gl_waiter *w;
  if (!r->waiting) {
    free(r);
    return;
  }
  r->status = status;
  r->done = 1;
  if ((w = gl_waitq_find(r->q, r)) != NULL) gl_hub_wake(w, GL_OK);
}

/* Sends data to sa (NULL: the peer); returns #data or nil, err. */
static int dosend(lua_State *L, gl_udp *s, const char *data, size_t len,
                  const struct sockaddr *sa) {
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  udpsend *r;
  gl_waiter w;
  int e, rc;
  e = uv_udp_try_send(&s->h->u, &b, 1, sa);
  if (e >= 0) {
    lua_pushinteger(L, (lua_Integer)len);
    return 1;
  }
  if (e != UV_EAGAIN) return glS_fail(L, e);
  if ((r = malloc(sizeof *r + len)) == NULL) return glS_fail(L, UV_ENOMEM);
  memset(r, 0, sizeof *r);
  memcpy(r->data, data, len);  /* the copy outlives an abandoned send */
  b = uv_buf_init(r->data, (unsigned)len);
  e = uv_udp_send(&r->req, &s->h->u, &b, 1, sa, onsend);
  if (e < 0) {
    free(r);
    return glS_fail(L, e);
  }
  gl_waiter_init(&w, GL_WAIT_SEND, s);
  w.data = r;
  r->q = &s->waitq;
  r->waiting = 1;
  rc = gl_waitq_wait(r->q, &w, s->timeout);
  r->waiting = 0;
  e = r->status;
  if (r->done) free(r);  /* else the callback frees it */
  else e = UV_ECANCELED;
  glL_raisepending(L, rc);
  if (rc == GL_ECLOSED || s->h == NULL) return glL_fail(L, "closed");
  if (rc == GL_ETIMEDOUT) return glL_fail(L, "timeout");
  if (e < 0) return glS_fail(L, e);
  lua_pushinteger(L, (lua_Integer)len);
  return 1;
}

/* u:send(data) -> #data | nil, err (after setpeername) */
static int udp_send(lua_State *L) {
  gl_udp *s = checkudp(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  if (s->h == NULL) return glL_fail(L, "closed");
  if (!s->connected) return glS_fail(L, UV_ENOTCONN);
  return dosend(L, s, data, len, NULL);
}

/* u:sendto(data, host, port) -> #data | nil, err */
static int udp_sendto(lua_State *L) {
  gl_udp *s = checkudp(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  const char *host = luaL_checkstring(L, 3);
  int port = glS_checkport(L, 4);
  struct sockaddr_storage ss;
  if (s->h == NULL) return glL_fail(L, "closed");
  if (resolve(L, s, host, port, &ss) != 0) return 2;
  return dosend(L, s, data, len, (struct sockaddr *)&ss);
}
/* }====== */

/* {====== Addresses, options, life ====== */

/* u:setsockname(host, port) -> true | nil, err ("*": any address) */
static int udp_setsockname(lua_State *L) {
  gl_udp *s = checkudp(L, 1);
  const char *host = luaL_checkstring(L, 2);
  int port = glS_checkport(L, 3), e;
  struct sockaddr_storage ss;
  if (s->h == NULL) return glL_fail(L, "closed");
  if (resolve(L, s, host, port, &ss) != 0) return 2;
  e = uv_udp_bind(&s->h->u, (struct sockaddr *)&ss,
                  s->reuseaddr ? UV_UDP_REUSEADDR : 0);
  if (e < 0) return glS_fail(L, e);
  lua_pushboolean(L, 1);
  return 1;
}

/* u:setpeername(host, port) -> true | nil, err; setpeername("*")
 * forgets the peer. */
static int udp_setpeername(lua_State *L) {
  gl_udp *s = checkudp(L, 1);
  const char *host = luaL_checkstring(L, 2);
  struct sockaddr_storage ss;
  int e, port;
  if (s->h == NULL) return glL_fail(L, "closed");
  if (strcmp(host, "*") == 0) {
    if (s->connected) {
      e = uv_udp_connect(&s->h->u, NULL);
      if (e < 0) return glS_fail(L, e);
    }
    s->connected = 0;
    lua_pushboolean(L, 1);
    return 1;
  }
  port = glS_checkport(L, 3);
  if (resolve(L, s, host, port, &ss) != 0) return 2;
  if (s->connected) uv_udp_connect(&s->h->u, NULL);
  e = uv_udp_connect(&s->h->u, (struct sockaddr *)&ss);
  if (e < 0) return glS_fail(L, e);
  s->connected = 1;
  lua_pushboolean(L, 1);
  return 1;
}

/* u:getsockname() -> host, port, family | nil, err */
static int udp_getsockname(lua_State *L) {
  gl_udp *s = checkudp(L, 1);
  struct sockaddr_storage ss;
  int len = sizeof ss, e;
  if (s->h == NULL) return glL_fail(L, "closed");
  memset(&ss, 0, sizeof ss);
  e = uv_udp_getsockname(&s->h->u, (struct sockaddr *)&ss, &len);
  if (e < 0) return glS_fail(L, e);
  return glS_pushsockaddr(L, (struct sockaddr *)&ss);
}

/* u:getpeername() -> host, port, family | nil, err */
static int udp_getpeername(lua_State *L) {
  gl_udp *s = checkudp(L, 1);
  struct sockaddr_storage ss;
  int len = sizeof ss, e;
  if (s->h == NULL) return glL_fail(L, "closed");
  memset(&ss, 0, sizeof ss);
  e = uv_udp_getpeername(&s->h->u, (struct sockaddr *)&ss, &len);
  if (e < 0) return glS_fail(L, e);
  return glS_pushsockaddr(L, (struct sockaddr *)&ss);
}

/* u:settimeout(seconds): nil or negative: none */
static int udp_settimeout(lua_State *L) {
  checkudp(L, 1)->timeout = glS_opttimeout(L, 2);
  lua_pushboolean(L, 1);
  return 1;
}

/* u:setoption(name, value) -> true | nil, err: "broadcast" (once the
 * socket has an fd), "reuseaddr" (before setsockname applies then) */
static int udp_setoption(lua_State *L) {
  static const char *const names[] = {"broadcast", "reuseaddr", NULL};
  gl_udp *s = checkudp(L, 1);
  int opt = luaL_checkoption(L, 2, NULL, names), on, e;
  uv_os_fd_t fd;
  luaL_checkany(L, 3);
  on = lua_toboolean(L, 3);
  if (s->h == NULL) return glL_fail(L, "closed");
  if (opt == 0) {
    e = uv_udp_set_broadcast(&s->h->u, on);
  } else {
    s->reuseaddr = on;
    if (uv_fileno((uv_handle_t *)&s->h->u, &fd) == 0)
      e = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) == 0
              ? 0 : -errno;
    else
      e = 0;
  }
  if (e < 0) return glS_fail(L, e);
  lua_pushboolean(L, 1);
  return 1;
}

/* u:getfd() -> fd, or -1 if it has none yet */
static int udp_getfd(lua_State *L) {
  gl_udp *s = checkudp(L, 1);
  uv_os_fd_t fd;
  if (s->h == NULL || uv_fileno((uv_handle_t *)&s->h->u, &fd) != 0)
    fd = -1;
  lua_pushinteger(L, fd);
  return 1;
}

/* u:close() -> true; parked calls get nil, "closed" */
static int udp_close(lua_State *L) {
  closeudp(checkudp(L, 1));
  lua_pushboolean(L, 1);
  return 1;
}

static int udp_gc(lua_State *L) {
  closeudp(checkudp(L, 1));
  return 0;
}

static int udp_tostring(lua_State *L) {
  gl_udp *s = checkudp(L, 1);
  lua_pushfstring(L, UDP_TYPE "{%s}: %p",
                  s->h == NULL ? "closed"
                               : s->connected ? "connected" : "unconnected",
                  (void *)s);
  return 1;
}

/* green.socket.udp() -> a fresh UDP socket */
static int socket_udp(lua_State *L) {
  gl_udp *s = lua_newuserdatauv(L, sizeof *s, 0);
  udph *h;
  memset(s, 0, sizeof *s);
  s->timeout = UINT64_MAX;
  gl_waitq_init(&s->recvq);
  gl_waitq_init(&s->waitq);
  luaL_setmetatable(L, UDP_TYPE);
  if ((h = calloc(1, sizeof *h)) == NULL) return glS_fail(L, UV_ENOMEM);
  uv_udp_init(gl_hub_loop(), &h->u);
  h->s = s;
  s->h = h;
  glS_nopen++;
  return 1;
}

static const luaL_Reg udp_methods[] = {
  {"setsockname", udp_setsockname},
  {"setpeername", udp_setpeername},
  {"getsockname", udp_getsockname},
  {"getpeername", udp_getpeername},
  {"send", udp_send},
  {"sendto", udp_sendto},
  {"receive", udp_receive},
  {"receivefrom", udp_receivefrom},
  {"settimeout", udp_settimeout},
  {"setoption", udp_setoption},
  {"getfd", udp_getfd},
  {"close", udp_close},
  {NULL, NULL}
};

static const luaL_Reg udp_meta[] = {
  {"__gc", udp_gc},
  {"__close", udp_gc},
  {"__tostring", udp_tostring},
  {NULL, NULL}
};
/* }====== */

int luaopen_green_socket_udp(lua_State *L);
int luaopen_green_socket_udp(lua_State *L) {
  glS_init();
  glL_newclass(L, UDP_TYPE, udp_methods, udp_meta);
  lua_pop(L, 1);
  glS_pushsockets(L);
  lua_pushcfunction(L, socket_udp);
  lua_setfield(L, -2, "udp");
  lua_pop(L, 1);
  return 0;
}
