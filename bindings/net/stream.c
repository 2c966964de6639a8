/* The stream socket shared by green.socket.tcp and green.socket.unix:
 * buffered receive patterns, send with backpressure, listen/accept,
 * close and options; plus the helpers every socket binding uses
 * (stream.h).  Connect and bind, which differ by address kind, live in
 * socket_tcp.c and socket_unix.c. */
#define _GNU_SOURCE  /* accept4 */

#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

/* Reading stops while nobody receives and this much is buffered, so a
 * slow reader holds the peer back through TCP's window. */
#define READ_HIGH (64 * 1024)
/* libuv reads straight into the buffer when this much is free at its end;
 * smaller reads go to glS_scratch and are appended. */
#define READ_DIRECT (16 * 1024)
#define RBUF_MIN 2048
#define RBUF_KEEP (256 * 1024)  /* an emptied larger buffer is freed */
/* A send parks for at most this much per uv_write, so a timeout leaves at
 * most one chunk in flight (it still goes out: it counts as sent). */
#define WRITE_CHUNK (256 * 1024)
#define WRITE_TRY_MAX (1 << 30)
/* accept() out of file descriptors: retry this often (ns). */
#define ACCEPT_BACKOFF 100000000ULL

char glS_scratch[65536];
int glS_onebyte;

/* {====== Helpers ====== */

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
}

void glS_pushsockets(lua_State *L) {
  if (lua_getfield(L, -1, "socket") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "socket");
  }
}

uint64_t glS_opttimeout(lua_State *L, int arg) {
  lua_Number t;
  if (lua_isnoneornil(L, arg)) return UINT64_MAX;
  t = luaL_checknumber(L, arg);
  luaL_argcheck(L, t == t, arg, "timeout is not a number (NaN)");
  return t < 0 ? UINT64_MAX : gl_hub_ns(t);
}

const char *glS_strerror(int err, char *buf, size_t size) {
  const char *m;
  size_t n;
  switch (err) {
    case UV_EOF: case UV_EPIPE: case UV_ECANCELED: return "closed";
    case UV_ETIMEDOUT: return "timeout";
    case UV_EAI_NONAME: return "host not found";
    default: break;
  }
  m = uv_strerror(err);
  n = strlen(m);
  if (n >= size) n = size - 1;
  memcpy(buf, m, n);
  buf[n] = '\0';
  if (n > 0 && buf[n - 1] == '.') buf[--n] = '\0';
  if (buf[0] >= 'A' && buf[0] <= 'Z') buf[0] = (char)(buf[0] - 'A' + 'a');
  return buf;
}

int glS_fail(lua_State *L, int err) {
  char buf[128];
  return glL_fail(L, glS_strerror(err, buf, sizeof buf));
}

void glS_newstreamclass(lua_State *L, const char *tname,
                        const luaL_Reg *methods) {
  glS_init();
  glL_newclass(L, tname, glS_stream_methods, glS_stream_meta);
  lua_getfield(L, -1, "__index");
  luaL_setfuncs(L, methods, 0);
  lua_pop(L, 2);
  glS_pushsockets(L);
}

int glS_parked(lua_State *L, glS_stream *s, int rc) {
  glL_raisepending(L, rc);
  if (s->state == GLS_CLOSED) return glL_fail(L, "closed");
  if (rc == GL_ETIMEDOUT) return glL_fail(L, "timeout");
  return 0;
}

int glS_checkport(lua_State *L, int arg) {
  lua_Integer p = luaL_checkinteger(L, arg);
  luaL_argcheck(L, p >= 0 && p <= 65535, arg, "port out of range");
  return (int)p;
}

/* An address lookup handed to the threadpool.  Whoever comes last frees
 * it: the waiter once it resumes if the callback ran (`done`), else the
 * callback (the waiter gave up: timeout, interrupt, close). */
typedef struct resolvereq {
  uv_getaddrinfo_t req;
  gl_waitq *q;         /* where the waiter parks (its data is this req) */
  gl_waitq own;        /* ... when the caller has no queue of its own */
  struct addrinfo *res;
  int status, done, waiting;
} resolvereq;

static void onresolve(uv_getaddrinfo_t *req, int status,
                      struct addrinfo *res) {
  resolvereq *r = (resolvereq *)req;
  gl_waiter *w;
  if (!r->waiting) {  /* abandoned */
    if (res != NULL) uv_freeaddrinfo(res);
    free(r);
    return;
  }
  r->status = status;
  r->res = res;
  r->done = 1;
  if ((w = gl_waitq_find(r->q, r)) != NULL) gl_hub_wake(w, GL_OK);
}

struct addrinfo *glS_getaddrinfo(const char *host, int socktype,
                                 gl_waitq *q, uint64_t timeout, int *rc,
                                 int *err) {
  struct addrinfo hints;
  struct addrinfo *res = NULL;
  gl_waiter w;
  resolvereq *r = calloc(1, sizeof *r);
  int e;
  *rc = GL_OK;
  *err = 0;
  if (r == NULL) {
    *err = UV_ENOMEM;
    return NULL;
  }
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = socktype;
  e = uv_getaddrinfo(gl_hub_loop(), &r->req, onresolve, host, NULL, &hints);
  if (e < 0) {
    free(r);
    *err = e;
    return NULL;
  }
  gl_waiter_init(&w, GL_WAIT_DNS, host);
  w.data = r;
  gl_waitq_init(&r->own);
  r->q = q != NULL ? q : &r->own;
  r->waiting = 1;
  *rc = gl_waitq_wait(r->q, &w, timeout);
  r->waiting = 0;
  if (!r->done) {  /* the callback frees it */
    uv_cancel((uv_req_t *)&r->req);
    if (*rc == GL_OK) *rc = GL_ECLOSED;
    return NULL;
  }
  if (*rc == GL_OK) {
    res = r->res;
    if (r->status < 0) *err = r->status;
    if (res == NULL && *err == 0) *err = UV_EAI_NONAME;
  } else if (r->res != NULL) {
    uv_freeaddrinfo(r->res);
  }
  free(r);
  return res;
}

/* Parses a numeric address (or "*": any) into `out`; returns 1 if it
 * was one. */
static int numeric(const char *host, int port, struct sockaddr_storage *out) {
  memset(out, 0, sizeof *out);
  if (strcmp(host, "*") == 0) host = "0.0.0.0";
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0) return 1;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) == 0) return 1;
  return 0;
}

int glS_resolve(const char *host, int port, int socktype,
                struct sockaddr_storage *out, int max, gl_waitq *q,
                uint64_t timeout, int *rc, int *err) {
  struct addrinfo *res, *ai;
  int n = 0;
  *rc = GL_OK;
  *err = 0;
  if (numeric(host, port, &out[0])) return 1;
  res = glS_getaddrinfo(host, socktype, q, timeout, rc, err);
  if (res == NULL) return 0;
  for (ai = res; ai != NULL && n < max; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET) {
      memset(&out[n], 0, sizeof out[n]);
      memcpy(&out[n], ai->ai_addr, sizeof(struct sockaddr_in));
      ((struct sockaddr_in *)&out[n])->sin_port = htons((uint16_t)port);
      n++;
    } else if (ai->ai_family == AF_INET6) {
      memset(&out[n], 0, sizeof out[n]);
      memcpy(&out[n], ai->ai_addr, sizeof(struct sockaddr_in6));
      ((struct sockaddr_in6 *)&out[n])->sin6_port = htons((uint16_t)port);
      n++;
    }
  }
  uv_freeaddrinfo(res);
  if (n == 0) *err = UV_EAI_NONAME;
  return n;
}

void glS_pushaddr(lua_State *L, const struct sockaddr *sa) {
  char host[INET6_ADDRSTRLEN + 1] = "";
  if (sa->sa_family == AF_INET6)
    uv_ip6_name((const struct sockaddr_in6 *)sa, host, sizeof host);
  else
    uv_ip4_name((const struct sockaddr_in *)sa, host, sizeof host);
  lua_pushstring(L, host);
}

int glS_pushsockaddr(lua_State *L, const struct sockaddr *sa) {
  switch (sa->sa_family) {
    case AF_INET:
      glS_pushaddr(L, sa);
      lua_pushinteger(L, ntohs(((const struct sockaddr_in *)sa)->sin_port));
      lua_pushliteral(L, "inet");
      return 3;
    case AF_INET6:
      glS_pushaddr(L, sa);
      lua_pushinteger(L,
                      ntohs(((const struct sockaddr_in6 *)sa)->sin6_port));
      lua_pushliteral(L, "inet6");
      return 3;
    case AF_UNIX: {
      const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
      lua_pushstring(L, un->sun_path);  /* "" if unnamed */
      return 1;
    }
    default:
      return glL_fail(L, "unknown address family");
  }
}
/* }====== */

/* {====== Handles ====== */

static glS_handle *newhandle(glS_stream *s) {
  glS_handle *h = calloc(1, sizeof *h);
  if (h == NULL) return NULL;
  h->s = s;
  h->fd = -1;
  h->wreq.data = h;
  h->creq.data = h;
  h->sreq.data = h;
  return h;
}

static void onclose(uv_handle_t *hd) { free(hd); }

/* Lets go of h: callbacks still due find h->s NULL and wake nobody; the
 * close callback frees it. */
static void releasehandle(glS_handle *h) {
  h->s = NULL;
  h->wwait = 0;
  h->cwait = 0;
  uv_close(&h->u.handle, onclose);
  if (h->fd >= 0) {  /* a listener's: uv_close stopped polling it */
    close(h->fd);
    h->fd = -1;
  }
}

/* The fd of s, whatever its state, or -1. */
static int sockfd(glS_stream *s) {
  uv_os_fd_t fd;
  if (s->fd >= 0) return s->fd;
  if (s->h == NULL) return -1;
  if (s->state == GLS_LISTENING) return s->h->fd;
  if (uv_fileno(&s->h->u.handle, &fd) != 0) return -1;
  return fd;
}

static int setint(int fd, int level, int name, int on) {
  return setsockopt(fd, level, name, &on, sizeof on) == 0 ? 0 : -errno;
}

/* Applies the options in `mask` of s to fd; returns 0 or a libuv error. */
static int applyopts(glS_stream *s, int fd, unsigned mask) {
  unsigned set = s->optset & mask, val = s->optval;
  int e = 0;
  if ((set & GLS_OPT_REUSEADDR) && e == 0)
    e = setint(fd, SOL_SOCKET, SO_REUSEADDR, !!(val & GLS_OPT_REUSEADDR));
#ifdef SO_REUSEPORT
  if ((set & GLS_OPT_REUSEPORT) && e == 0)
    e = setint(fd, SOL_SOCKET, SO_REUSEPORT, !!(val & GLS_OPT_REUSEPORT));
#endif
  if ((set & GLS_OPT_KEEPALIVE) && e == 0)
    e = setint(fd, SOL_SOCKET, SO_KEEPALIVE, !!(val & GLS_OPT_KEEPALIVE));
  if ((set & GLS_OPT_NODELAY) && s->kind == GLS_TCP && e == 0)
    e = setint(fd, IPPROTO_TCP, TCP_NODELAY, !!(val & GLS_OPT_NODELAY));
  if ((set & GLS_OPT_SNDBUF) && e == 0)
    e = setint(fd, SOL_SOCKET, SO_SNDBUF, s->sndbuf);
  if ((set & GLS_OPT_RCVBUF) && e == 0)
    e = setint(fd, SOL_SOCKET, SO_RCVBUF, s->rcvbuf);
  return e;
}

int glS_socket(glS_stream *s, int family) {
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int e;
  if (fd < 0) return -errno;
  e = applyopts(s, fd, ~0u);
  if (e < 0) {
    close(fd);
    return e;
  }
  return fd;
}

/* Wraps the connected fd into a stream handle for s; returns 0 or a
 * libuv error (fd is closed then). */
static int openstream(glS_stream *s, int fd) {
  glS_handle *h = newhandle(s);
  int e;
  if (h == NULL) {
    close(fd);
    return UV_ENOMEM;
  }
  if (s->kind == GLS_TCP) {
    uv_tcp_init(gl_hub_loop(), &h->u.tcp);
    e = uv_tcp_open(&h->u.tcp, fd);
  } else {
    uv_pipe_init(gl_hub_loop(), &h->u.pipe, 0);
    e = uv_pipe_open(&h->u.pipe, fd);
  }
  if (e < 0) {
    close(fd);
    releasehandle(h);
    return e;
  }
  s->h = h;
  return 0;
}
/* }====== */

/* {====== Reading ====== */

/* What a parked reader waits for: a kind, and a count for RNUM, packed
 * into its waiter's n2 (never a pointer into the reader's stack). */
enum { RLINE, RALL, RNUM, RANY };
#define NEED(kind, n) ((intptr_t)(((uintptr_t)(n) << 2) | (uintptr_t)(kind)))
#define NEEDKIND(v) ((int)((uintptr_t)(v) & 3))
#define NEEDN(v) ((size_t)((uintptr_t)(v) >> 2))

static size_t buffered(const glS_stream *s) { return s->rend - s->rstart; }

static const char *bufdata(const glS_stream *s) {
  return s->rbuf != NULL ? s->rbuf + s->rstart : "";
}

/* Finds the first '\n' of the buffer, scanning only what was not scanned
 * before (a long line arriving in small pieces stays linear). */
static const char *findnl(glS_stream *s) {
  size_t have = buffered(s);
  const char *nl;
  if (have <= s->lscan) return NULL;
  nl = memchr(s->rbuf + s->rstart + s->lscan, '\n', have - s->lscan);
  if (nl == NULL) s->lscan = have;
  return nl;
}

static void consume(glS_stream *s, size_t n) {
  s->rstart += n;
  s->lscan = s->lscan > n ? s->lscan - n : 0;
  if (s->rstart == s->rend) {
    s->rstart = s->rend = 0;
    if (s->rcap > RBUF_KEEP) {
      free(s->rbuf);
      s->rbuf = NULL;
      s->rcap = 0;
    }
  }
}

/* Makes room for n more bytes at the end of the buffer; returns 0 or -1
 * (out of memory). */
static int reserve(glS_stream *s, size_t n) {
  size_t have = buffered(s), cap;
  char *p;
  if (s->rcap - s->rend >= n) return 0;
  if (s->rstart > 0) {  /* slide the data to the front first */
    memmove(s->rbuf, s->rbuf + s->rstart, have);
    s->rstart = 0;
    s->rend = have;
    if (s->rcap - s->rend >= n) return 0;
  }
  cap = s->rcap > 0 ? s->rcap : RBUF_MIN;
  while (cap - have < n) cap *= 2;
  p = realloc(s->rbuf, cap);
  if (p == NULL) return -1;
  s->rbuf = p;
  s->rcap = cap;
  return 0;
}

static void stopreading(glS_stream *s) {
  if (s->reading) {
    uv_read_stop(&s->h->u.stream);
    s->reading = 0;
  }
}

static int satisfied(glS_stream *s, gl_waiter *w) {
  if (s->eof || s->rerr) return 1;
  switch (NEEDKIND(w->n2)) {
    case RANY: return buffered(s) > 0;
    case RNUM: return buffered(s) >= NEEDN(w->n2);
    case RLINE: return findnl(s) != NULL;
    default: return 0;  /* RALL: until the end */
  }
}

/* Hands the buffer to the first parked reader if it has what it waits
 * for.  The reader consumes before anyone else is served (rbusy). */
static void kick(glS_stream *s) {
  gl_waiter *w = s->readq.head;
  if (w == NULL || s->rbusy || !satisfied(s, w)) return;
  s->rbusy = 1;
  gl_hub_wake(w, GL_OK);
}

static void onalloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf) {
  glS_stream *s = ((glS_handle *)hd)->s;
  GL_UNUSED(suggested);
  if (glS_onebyte) {
    buf->base = glS_scratch;
    buf->len = 1;
  } else if (s != NULL && s->rcap - s->rend >= READ_DIRECT) {
    buf->base = s->rbuf + s->rend;
    buf->len = s->rcap - s->rend;
  } else {
    buf->base = glS_scratch;
    buf->len = sizeof glS_scratch;
  }
}

static void onread(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  glS_stream *s = ((glS_handle *)st)->s;
  if (s == NULL) return;
  if (nread > 0) {
    if (buf->base != glS_scratch) {
      s->rend += (size_t)nread;
    } else if (reserve(s, (size_t)nread) == 0) {
      memcpy(s->rbuf + s->rend, buf->base, (size_t)nread);
      s->rend += (size_t)nread;
    } else {
      s->rerr = UV_ENOMEM;
      stopreading(s);
    }
  } else if (nread < 0) {
    if (nread == UV_EOF) s->eof = 1;
    else s->rerr = (int)nread;
    stopreading(s);
  }
  kick(s);
  if ((s->rbusy || s->readq.head == NULL) && buffered(s) >= READ_HIGH)
    stopreading(s);  /* backpressure: nobody wants more now */
}

static void startreading(glS_stream *s) {
  int e;
  if (s->reading || s->eof || s->rerr || s->state != GLS_CONNECTED) return;
  e = uv_read_start(&s->h->u.stream, onalloc, onread);
  if (e < 0) s->rerr = e;
  else s->reading = 1;
}

/* After a receive: serve the next reader, and keep reading unless the
 * buffer is full enough with nobody waiting. */
static void afterread(glS_stream *s) {
  kick(s);
  if (s->readq.head != NULL || buffered(s) < READ_HIGH) startreading(s);
}

/* Pushes n bytes at p, after the prefix at stack index `prefix` (0:
 * none). */
static void pushdata(lua_State *L, const char *p, size_t n, int prefix) {
  if (prefix) {
    lua_pushvalue(L, prefix);
    lua_pushlstring(L, p, n);
    lua_concat(L, 2);
  } else {
    lua_pushlstring(L, p, n);
  }
}

/* nil, msg, everything buffered (which is dropped): a receive that ended
 * early, as LuaSocket returns it. */
static int failpartial(lua_State *L, glS_stream *s, const char *msg,
                       int prefix) {
  size_t have = buffered(s);
  lua_pushnil(L);
  lua_pushstring(L, msg);
  pushdata(L, bufdata(s), have, prefix);
  consume(s, have);
  return 3;
}

/* Completes a receive from the buffer if it can: pushes the results and
 * returns their count, or returns 0 (nothing pushed) if it must wait. */
static int take(lua_State *L, glS_stream *s, int kind, size_t n,
                int prefix) {
  const char *p = bufdata(s), *nl;
  size_t have = buffered(s), len;
  char buf[128];
  switch (kind) {
    case RLINE:
      if ((nl = findnl(s)) != NULL) {
        len = (size_t)(nl - p);
        pushdata(L, p, len > 0 && p[len - 1] == '\r' ? len - 1 : len,
                 prefix);
        consume(s, len + 1);
        return 1;
      }
      break;
    case RNUM:
      if (have >= n) {
        pushdata(L, p, n, prefix);
        consume(s, n);
        return 1;
      }
      break;
    case RANY:
      if (have > 0) {
        len = have < n ? have : n;
        pushdata(L, p, len, prefix);
        consume(s, len);
        return 1;
      }
      break;
    default:
      if (s->eof) {  /* "*a": what came before the end, "" if nothing */
        pushdata(L, p, have, prefix);
        consume(s, have);
        return 1;
      }
      break;
  }
  if (s->rerr) return failpartial(L, s, glS_strerror(s->rerr, buf, sizeof buf),
                                  prefix);
  if (s->eof) return failpartial(L, s, "closed", prefix);
  return 0;
}

/* Reads what the kernel holds now into the buffer, without parking: a
 * receive with no time left to wait (settimeout(0)) still gets the data
 * libuv has not read yet.  libuv then merely finds nothing to read. */
static void readnow(glS_stream *s) {
  int fd = sockfd(s);
  size_t len, got = 0;
  ssize_t r;
  if (fd < 0 || s->eof || s->rerr) return;
  for (;;) {  /* until the kernel has no more, or READ_HIGH is reached */
    if (reserve(s, READ_DIRECT) != 0) return;
    len = glS_onebyte ? 1 : s->rcap - s->rend;
    r = recv(fd, s->rbuf + s->rend, len, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    s->rend += (size_t)r;
    got += (size_t)r;
    if ((size_t)r < len || got >= READ_HIGH) return;
  }
  if (r == 0) {
    s->eof = 1;
    stopreading(s);
  } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
    s->rerr = -errno;
    stopreading(s);
  }
}

static int received(lua_State *L, int rc, gl_waiter *w);

/* The receive loop, from where the receiver knows whether it is its
 * turn.  The deadline and `prefix` wait on top of L's stack, above the
 * arguments, for `received`; `again` says whether it runs there. */
static int receiving(lua_State *L, glS_stream *s, int kind, size_t n,
                     int prefix, uint64_t deadline, int turn, int again) {
  gl_waiter *w;
  int nres;
  for (;;) {
    if (turn) {
      if ((nres = take(L, s, kind, n, prefix)) > 0) break;
      if (glL_remaining(deadline) == 0) {
        readnow(s);
        if ((nres = take(L, s, kind, n, prefix)) > 0) break;
        nres = failpartial(L, s, "timeout", prefix);
        break;
      }
      startreading(s);
      if (s->rerr) continue;  /* take reports it */
    }
    w = gl_green_waiter(GL_WAIT_RECEIVE, s);
    w->n2 = NEED(kind, n);
    w->n = ++s->rseq;  /* the order of receivers, for timeouts */
    if (again) return gl_green_again(&s->readq, glL_remaining(deadline));
    return gl_green_wait(L, &s->readq, glL_remaining(deadline), received);
  }
  afterread(s);
  return nres;
}

/* What follows a receiver's wait (which may unwind, green.h). */
static int received(lua_State *L, int rc, gl_waiter *w) {
  glS_stream *s = glS_checkstream(L, 1);
  uint64_t deadline = (uint64_t)lua_tointeger(L, -2);
  int prefix = (int)lua_tointeger(L, -1), nres;
  if (s->state == GLS_CLOSED) {
    glL_raisepending(L, rc);
    return glL_fail(L, "closed");
  }
  if (rc == GL_OK) {  /* our turn, handed over by kick */
    s->rbusy = 0;
    return receiving(L, s, NEEDKIND(w->n2), NEEDN(w->n2), prefix, deadline,
                     1, 1);
  }
  if (rc == GL_EINTR) {
    afterread(s);  /* the next reader may be served already */
    gl_green_raise(L);
  }
  if (s->rbusy || (s->readq.head != NULL && s->readq.head->n < w->n)) {
    lua_pushnil(L);  /* not our turn: the data is someone else's */
    lua_pushliteral(L, "timeout");
    pushdata(L, "", 0, prefix);
    nres = 3;
  } else {
    nres = failpartial(L, s, "timeout", prefix);
  }
  afterread(s);
  return nres;
}

/* Waits (with the read timeout) until a receive of `kind` can complete,
 * in FIFO order with other receivers, and returns its results.  A
 * receiver times out with the buffered data as its partial result only
 * if it was its turn (the data belongs to the first receiver).  The
 * stream is at index 1 and `prefix` is 0 or an index. */
static int receive(lua_State *L, glS_stream *s, int kind, size_t n,
                   int prefix) {
  uint64_t deadline = glL_deadline(s->tread);
  if (s->state != GLS_CONNECTED) return glL_fail(L, "closed");
  lua_pushinteger(L, (lua_Integer)deadline);
  lua_pushinteger(L, prefix);
  return receiving(L, s, kind, n, prefix, deadline,
                   s->readq.head == NULL && !s->rbusy, 0);
}
/* }====== */

/* {====== Writing ====== */

static void handoff(glS_stream *s) {
  if (s->writeq.head != NULL && !s->h->wbusy && !s->wbusy) {
    s->wbusy = 1;  /* the woken sender owns the turn */
    gl_hub_wake(s->writeq.head, GL_OK);
  }
}

static void onwrite(uv_write_t *req, int status) {
  glS_handle *h = req->data;
  glS_stream *s = h->s;
  gl_waiter *w;
  h->wbusy = 0;
  if (s != NULL && status < 0 && s->werr == 0) s->werr = status;
  if (h->wwait && s != NULL && (w = gl_waitq_find(&s->waitq, &h->wreq))) {
    h->wwait = 0;
    w->n = status;
    gl_hub_wake(w, GL_OK);
  } else if (s != NULL) {
    h->wwait = 0;
    handoff(s);  /* an abandoned write ended: the next sender's turn */
  }
}

static int trywrite(glS_stream *s, const char *p, size_t n) {
  uv_buf_t b;
  if (n > WRITE_TRY_MAX) n = WRITE_TRY_MAX;  /* uv_buf_t's len, int result */
  b = uv_buf_init((char *)p, (unsigned)(glS_onebyte ? 1 : n));
  return uv_try_write(&s->h->u.stream, &b, 1);
}

/* Writes n bytes with uv_write and parks until its callback.  Returns
 * the park's status; on GL_OK, *status is the write's.  On a timeout or
 * an interrupt the write stays in flight (h->wbusy). */
static int writewait(glS_stream *s, const char *p, size_t n,
                     uint64_t timeout, int *status) {
  glS_handle *h = s->h;
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
  gl_waiter w;
  int rc, e = uv_write(&h->wreq, &h->u.stream, &b, 1, onwrite);
  if (e < 0) {
    *status = e;
    return GL_OK;
  }
  gl_waiter_init(&w, GL_WAIT_SEND, s);
  w.data = &h->wreq;
  h->wbusy = 1;
  h->wwait = 1;
  rc = gl_waitq_wait(&s->waitq, &w, timeout);
  if (rc == GL_OK) *status = (int)w.n;
  else if (rc != GL_ECLOSED && s->state != GLS_CLOSED)
    h->wwait = 0;  /* the write stays in flight, abandoned */
  /* closed: h belongs to libuv's close callback, which may have run */
  return rc;
}

/* Returns the send's failure: nil, msg, index of the last byte sent. */
static int failsent(lua_State *L, const char *msg, lua_Integer last) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushinteger(L, last);
  return 3;
}

/* s:send(data, [i], [j]) -> index of the last byte sent (#data for the
 * whole string) | nil, err, index of the last byte sent.  Waits for its
 * turn after other senders, tries uv_try_write, then writes the rest
 * with uv_write in chunks, each parked on. */
static int stream_send(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  size_t len, n, chunk, sent = 0;
  const char *data = luaL_checklstring(L, 2, &len);
  lua_Integer i = luaL_optinteger(L, 3, 1), j = luaL_optinteger(L, 4, -1);
  uint64_t deadline;
  int rc = GL_OK, err = 0, status, r;
  char buf[128];
  if (i < 0) i = (lua_Integer)len + i + 1;
  if (i < 1) i = 1;
  if (j < 0) j = (lua_Integer)len + j + 1;
  if (j > (lua_Integer)len) j = (lua_Integer)len;
  if (s->state != GLS_CONNECTED) return failsent(L, "closed", i - 1);
  if (s->werr) return failsent(L, glS_strerror(s->werr, buf, sizeof buf),
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
  if (s->wbusy || s->h->wbusy || s->writeq.head != NULL) {
    gl_waiter w;
    gl_waiter_init(&w, GL_WAIT_SEND, s);
    rc = gl_waitq_wait(&s->writeq, &w, glL_remaining(deadline));
    if (s->state == GLS_CLOSED) {
      glL_raisepending(L, rc);
      return failsent(L, "closed", i - 1);
    }
    glL_raisepending(L, rc);
    if (rc == GL_ETIMEDOUT) return failsent(L, "timeout", i - 1);
    /* GL_OK: handoff gave us the turn */
  } else {
    s->wbusy = 1;
  }
  while (sent < n) {
    /* Woken for the next chunk, the sender may find that another
     * greenthread closed the stream before it ran: h is gone. */
    if (s->state == GLS_CLOSED) break;
    r = trywrite(s, data + sent, n - sent);
    if (r > 0) {
      sent += (size_t)r;
      continue;
    }
    if (r != UV_EAGAIN) {
      err = r;
      break;
    }
    chunk = glS_onebyte ? 1 : WRITE_CHUNK;
    if (chunk > n - sent) chunk = n - sent;
    rc = writewait(s, data + sent, chunk, glL_remaining(deadline),
                   &status);
    if (rc == GL_OK) {
      if (status < 0) {
        err = status;
        break;
      }
      sent += chunk;
      continue;
    }
    if (rc == GL_ECLOSED) break;
    /* A timeout or an interrupt: the chunk is in libuv's hands and goes
     * out (it counts as sent); its data must outlive the write. */
    sent += chunk;
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 1, 1);
    s->anchored = 1;
    break;
  }
  if (s->state == GLS_CLOSED) {
    glL_raisepending(L, rc);
    return failsent(L, "closed", i - 1 + (lua_Integer)sent);
  }
  if (err && s->werr == 0) s->werr = err;
  s->wbusy = 0;
  handoff(s);
  glL_raisepending(L, rc);
  if (rc == GL_ETIMEDOUT)
    return failsent(L, "timeout", i - 1 + (lua_Integer)sent);
  if (err)
    return failsent(L, glS_strerror(err, buf, sizeof buf),
                    i - 1 + (lua_Integer)sent);
  lua_pushinteger(L, i - 1 + (lua_Integer)sent);
  return 1;
}
/* }====== */

/* {====== Connecting, listening, accepting ====== */

static void onconnect(uv_connect_t *req, int status) {
  glS_handle *h = req->data;
  gl_waiter *w;
  if (h->cwait && h->s != NULL &&
      (w = gl_waitq_find(&h->s->waitq, &h->creq)) != NULL) {
    h->cwait = 0;
    w->n = status;
    gl_hub_wake(w, GL_OK);
  }
}

int glS_connect(glS_stream *s, int fd, const struct sockaddr *sa,
                const char *path, uint64_t timeout, int *rc) {
  glS_handle *h;
  gl_waiter w;
  int e;
  *rc = GL_OK;
  e = openstream(s, fd);
  if (e < 0) {
    s->state = GLS_FRESH;  /* fd is gone */
    return e;
  }
  h = s->h;
  s->state = GLS_CONNECTING;
  if (s->kind == GLS_TCP) {
    e = uv_tcp_connect(&h->creq, &h->u.tcp, sa, onconnect);
  } else {
    uv_pipe_connect(&h->creq, &h->u.pipe, path, onconnect);
    e = 0;  /* errors come through the callback */
  }
  if (e == 0) {
    gl_waiter_init(&w, GL_WAIT_CONNECT, s);
    w.data = &h->creq;
    h->cwait = 1;
    *rc = gl_waitq_wait(&s->waitq, &w, timeout);
    if (s->state == GLS_CLOSED) {  /* h may be freed already */
      if (*rc == GL_OK) *rc = GL_ECLOSED;
      return UV_ECANCELED;
    }
    h->cwait = 0;
    e = *rc == GL_OK ? (int)w.n : UV_ECANCELED;
  }
  if (e == 0) {
    s->state = GLS_CONNECTED;
    return 0;
  }
  s->h = NULL;
  releasehandle(h);
  s->state = GLS_FRESH;
  return e;
}

/* Polls a listener for readability while acceptors wait. */
static void onpoll(uv_poll_t *p, int status, int events) {
  glS_stream *s = ((glS_handle *)p)->s;
  GL_UNUSED(status);
  GL_UNUSED(events);
  if (s == NULL) return;
  if (s->readq.head != NULL) gl_hub_wake(s->readq.head, GL_OK);
  if (s->readq.head == NULL && s->polling) {
    uv_poll_stop(p);  /* later connections wait in the kernel's backlog */
    s->polling = 0;
  }
}

static void setpolling(glS_stream *s, int on) {
  if (on && !s->polling) {
    if (uv_poll_start(&s->h->u.poll, UV_READABLE, onpoll) == 0)
      s->polling = 1;
  } else if (!on && s->polling) {
    uv_poll_stop(&s->h->u.poll);
    s->polling = 0;
  }
}

int glS_listen(glS_stream *s, int backlog) {
  glS_handle *h;
  int fd, e;
  if (s->state == GLS_LISTENING) return 0;
  if (s->state == GLS_CLOSED) return UV_EBADF;
  if (s->state != GLS_FRESH && s->state != GLS_BOUND) return UV_EISCONN;
  if (s->fd < 0) {
    fd = glS_socket(s, s->kind == GLS_TCP ? AF_INET : AF_UNIX);
    if (fd < 0) return fd;
    s->fd = fd;
    s->family = s->kind == GLS_TCP ? AF_INET : AF_UNIX;
  }
  if (listen(s->fd, backlog) != 0) return -errno;
  if ((h = newhandle(s)) == NULL) return UV_ENOMEM;
  e = uv_poll_init_socket(gl_hub_loop(), &h->u.poll, s->fd);
  if (e < 0) {
    free(h);
    return e;
  }
  h->fd = s->fd;
  s->fd = -1;
  s->h = h;
  s->state = GLS_LISTENING;
  return 0;
}

/* s:listen([backlog=128]) -> true | nil, err */
static int stream_listen(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  int e = glS_listen(s, (int)luaL_optinteger(L, 2, 128));
  if (e < 0) return glS_fail(L, e == UV_EBADF ? UV_EOF : e);
  lua_pushboolean(L, 1);
  return 1;
}

/* s:accept() -> client | nil, err.  Accepts with accept4 itself, parking
 * on the listener's readability (only while someone accepts: others wait
 * in the kernel's backlog).  Out of file descriptors (EMFILE, ENFILE,
 * ENOBUFS, ENOMEM), it stops polling and retries every 100 ms within its
 * timeout, leaving the connections in the backlog: no spin, no shedding,
 * and the listener stays usable. */
static int stream_accept(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1), *c;
  uint64_t deadline = glL_deadline(s->tread), wait;
  gl_waiter w;
  int fd, rc, e;
  if (s->state != GLS_LISTENING)
    return glL_fail(L, s->state == GLS_CLOSED ? "closed" : "not listening");
  c = glS_newstream(L, s->kind);  /* before accept4: may raise */
  c->optset = s->optset & (GLS_OPT_NODELAY | GLS_OPT_KEEPALIVE);
  c->optval = s->optval;  /* the buffer sizes are inherited by the kernel */
  for (;;) {
    fd = accept4(s->h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) break;
    e = errno;
    if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;
    wait = glL_remaining(deadline);
    if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
      setpolling(s, 0);
      if (wait > ACCEPT_BACKOFF) wait = ACCEPT_BACKOFF;
    } else if (e == EAGAIN || e == EWOULDBLOCK) {
      setpolling(s, 1);
    } else {
      return glS_fail(L, -e);
    }
    gl_waiter_init(&w, GL_WAIT_ACCEPT, s);
    rc = gl_waitq_wait(&s->readq, &w, wait);
    if (s->state == GLS_CLOSED) {
      glL_raisepending(L, rc);
      return glL_fail(L, "closed");
    }
    if (s->readq.head == NULL) setpolling(s, 0);
    else setpolling(s, 1);  /* a backoff may have stopped it */
    glL_raisepending(L, rc);
    if (rc == GL_ETIMEDOUT && glL_remaining(deadline) == 0)
      return glL_fail(L, "timeout");
  }
  e = applyopts(c, fd, GLS_OPT_NODELAY | GLS_OPT_KEEPALIVE);
  if (e == 0) e = openstream(c, fd);
  else close(fd);
  if (e < 0) return glS_fail(L, e);
  c->state = GLS_CONNECTED;
  return 1;
}
/* }====== */

/* {====== The other methods ====== */

glS_stream *glS_checkstream(lua_State *L, int i) {
  glS_stream *s = luaL_testudata(L, i, GLS_TCP_TYPE);
  if (s == NULL) s = luaL_testudata(L, i, GLS_UNIX_TYPE);
  if (s == NULL) luaL_typeerror(L, i, "green.socket.tcp or unix");
  return s;
}

glS_stream *glS_newstream(lua_State *L, int kind) {
  glS_stream *s = lua_newuserdatauv(L, sizeof *s, 1);
  memset(s, 0, sizeof *s);
  s->kind = kind;
  s->state = GLS_FRESH;
  s->fd = -1;
  s->tconnect = s->tsend = s->tread = UINT64_MAX;
  gl_waitq_init(&s->readq);
  gl_waitq_init(&s->writeq);
  gl_waitq_init(&s->waitq);
  if (kind == GLS_TCP) {  /* TCP_NODELAY by default (see socket_tcp.c) */
    s->optset = GLS_OPT_NODELAY;
    s->optval = GLS_OPT_NODELAY;
  }
  luaL_setmetatable(L, kind == GLS_TCP ? GLS_TCP_TYPE : GLS_UNIX_TYPE);
  return s;
}

/* Closes s: lets go of its handle and fd, frees the buffer and wakes
 * every greenthread parked on it with GL_ECLOSED ("closed"). */
static void closestream(glS_stream *s) {
  if (s->state == GLS_CLOSED) return;
  s->state = GLS_CLOSED;
  if (s->h != NULL) {
    releasehandle(s->h);
    s->h = NULL;
  }
  if (s->fd >= 0) {
    close(s->fd);
    s->fd = -1;
  }
  free(s->rbuf);
  s->rbuf = NULL;
  s->rstart = s->rend = s->rcap = s->lscan = 0;
  s->reading = s->polling = s->rbusy = s->wbusy = 0;
  gl_waitq_wake_all(&s->readq, GL_ECLOSED);
  gl_waitq_wake_all(&s->writeq, GL_ECLOSED);
  gl_waitq_wake_all(&s->waitq, GL_ECLOSED);
}

/* s:close() -> true */
static int stream_close(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  closestream(s);
  if (s->anchored) {  /* libuv no longer reads a closed handle's writes */
    lua_pushnil(L);
    lua_setiuservalue(L, 1, 1);
    s->anchored = 0;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int stream_gc(lua_State *L) {
  closestream(glS_checkstream(L, 1));
  return 0;
}

/* s:receive([pattern="*l"], [prefix]) -> data | nil, err, partial */
static int stream_receive(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  int kind = RLINE, prefix = 0;
  size_t n = 0;
  if (lua_type(L, 2) == LUA_TNUMBER) {
    lua_Integer k = luaL_checkinteger(L, 2);
    luaL_argcheck(L, k >= 0, 2, "negative size");
    kind = RNUM;
    n = (size_t)k;
  } else if (!lua_isnoneornil(L, 2)) {
    const char *p = luaL_checkstring(L, 2);
    if (*p == '*') p++;
    if (strcmp(p, "l") == 0) kind = RLINE;
    else if (strcmp(p, "a") == 0) kind = RALL;
    else return luaL_argerror(L, 2, "invalid receive pattern");
  }
  if (!lua_isnoneornil(L, 3)) {
    luaL_checkstring(L, 3);
    prefix = 3;
  }
  if (kind == RNUM && n == 0 && s->state == GLS_CONNECTED) {
    pushdata(L, "", 0, prefix);
    return 1;
  }
  return receive(L, s, kind, n, prefix);
}

/* s:receiveany(max) -> data (1 to max bytes) | nil, err */
static int stream_receiveany(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  lua_Integer max = luaL_checkinteger(L, 2);
  luaL_argcheck(L, max > 0, 2, "must be positive");
  return receive(L, s, RANY, (size_t)max, 0);
}

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

static void onshutdown(uv_shutdown_t *req, int status) {
  GL_UNUSED(req);
  GL_UNUSED(status);
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
    e = uv_shutdown(&s->h->sreq, &s->h->u.stream, onshutdown);
    if (e < 0 && e != UV_ENOTCONN) return glS_fail(L, e);
    s->h->shut = 1;
  }
  if (how != 1) {
    shutdown(sockfd(s), SHUT_RD);
    s->eof = 1;
    stopreading(s);
    kick(s);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* Pushes what getpeername/getsockname(2) say about s's fd. */
static int pushname(lua_State *L, glS_stream *s, int peer) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int fd = sockfd(s), r;
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
 * "rcvbuf" (as OpenResty).  Options set before the socket has an fd
 * apply when it gets one. */
static int stream_setoption(lua_State *L) {
  static const char *const names[] = {"tcp-nodelay", "keepalive",
                                      "reuseaddr", "reuseport", "sndbuf",
                                      "rcvbuf", NULL};
  static const unsigned bits[] = {GLS_OPT_NODELAY, GLS_OPT_KEEPALIVE,
                                  GLS_OPT_REUSEADDR, GLS_OPT_REUSEPORT,
                                  GLS_OPT_SNDBUF, GLS_OPT_RCVBUF};
  glS_stream *s = glS_checkstream(L, 1);
  unsigned bit = bits[luaL_checkoption(L, 2, NULL, names)];
  lua_Integer n = 0;
  int fd, e;
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
  if ((fd = sockfd(s)) >= 0 && (e = applyopts(s, fd, bit)) < 0)
    return glS_fail(L, e);
  lua_pushboolean(L, 1);
  return 1;
}

/* s:getfd() -> fd, or -1 if it has none */
static int stream_getfd(lua_State *L) {
  lua_pushinteger(L, sockfd(glS_checkstream(L, 1)));
  return 1;
}

/* s:dirty() -> true if received data waits in the buffer */
static int stream_dirty(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  lua_pushboolean(L, buffered(s) > 0);
  return 1;
}

static int stream_tostring(lua_State *L) {
  static const char *const states[] = {"fresh", "bound", "connecting",
                                       "client", "server", "closed"};
  glS_stream *s = glS_checkstream(L, 1);
  lua_pushfstring(L, "%s{%s}: %p",
                  s->kind == GLS_TCP ? GLS_TCP_TYPE : GLS_UNIX_TYPE,
                  states[s->state], (void *)s);
  return 1;
}

const luaL_Reg glS_stream_methods[] = {
  {"listen", stream_listen},
  {"accept", stream_accept},
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
  {NULL, NULL}
};

const luaL_Reg glS_stream_meta[] = {
  {"__gc", stream_gc},
  {"__close", stream_gc},
  {"__tostring", stream_tostring},
  {NULL, NULL}
};
/* }====== */

/* Holds shared code only: green.socket.tcp/unix are opened by their own
 * files. */
int luaopen_green_stream(lua_State *L);
int luaopen_green_stream(lua_State *L) {
  GL_UNUSED(L);
  glS_init();
  return 0;
}
