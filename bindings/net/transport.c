/* The transport of a stream: its libuv handle (uv_tcp_t, uv_pipe_t; a
 * uv_poll_t on a listener's fd), its fd and socket options, connect,
 * listen and accept, and the raw write path (uv_try_write, then uv_write
 * in chunks a sender parks on).  Reading is reader.c's; the Lua methods
 * are stream.c's. */
#define _GNU_SOURCE  /* accept4 */

#include "stream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A send parks for at most this much per uv_write, so a timeout leaves at
 * most one chunk in flight (it still goes out: it counts as sent). */
#define WRITE_CHUNK (256 * 1024)
#define WRITE_TRY_MAX (1 << 30)
/* accept() out of file descriptors: retry this often (ns). */
#define ACCEPT_BACKOFF 100000000ULL

/* {====== Handles and fds ====== */

glS_handle *glS_newhandle(glS_stream *s) {
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
void glS_releasehandle(glS_handle *h) {
  h->s = NULL;
  h->wwait = 0;
  h->cwait = 0;
  uv_close(&h->u.handle, onclose);
  if (h->fd >= 0) {  /* a listener's: uv_close stopped polling it */
    close(h->fd);
    h->fd = -1;
  }
}

int glS_sockfd(glS_stream *s) {
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

int glS_applyopts(glS_stream *s, int fd, unsigned mask) {
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

int glS_canopen(glS_stream *s, int isbind) {
  switch (s->state) {
    case GLS_CLOSED: return UV_EOF;
    case GLS_CONNECTING: return UV_EALREADY;
    case GLS_CONNECTED: return UV_EISCONN;
    default: break;
  }
  if (s->opening) return UV_EALREADY;
  if (s->state == GLS_LISTENING || (isbind && s->state != GLS_FRESH))
    return UV_EINVAL;
  return 0;
}

int glS_socket(glS_stream *s, int family) {
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int e;
  if (fd < 0) return -errno;
  e = glS_applyopts(s, fd, ~0u);
  if (e < 0) {
    close(fd);
    return e;
  }
  return fd;
}

int glS_openstream(glS_stream *s, int fd) {
  glS_handle *h = glS_newhandle(s);
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
    glS_releasehandle(h);
    return e;
  }
  s->h = h;
  return 0;
}
/* }====== */

/* {====== Connecting ====== */

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
  e = glS_openstream(s, fd);
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
  glS_releasehandle(h);
  s->state = GLS_FRESH;
  return e;
}
/* }====== */

/* {====== Listening and accepting ====== */

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
  if (s->opening) return UV_EALREADY;
  if (s->state != GLS_FRESH && s->state != GLS_BOUND) return UV_EISCONN;
  if (s->fd < 0) {
    fd = glS_socket(s, s->kind == GLS_TCP ? AF_INET : AF_UNIX);
    if (fd < 0) return fd;
    s->fd = fd;
    s->family = s->kind == GLS_TCP ? AF_INET : AF_UNIX;
  }
  if (listen(s->fd, backlog) != 0) return -errno;
  if ((h = glS_newhandle(s)) == NULL) return UV_ENOMEM;
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

/* Accepts with accept4 itself, parking on the listener's readability
 * (only while someone accepts: others wait in the kernel's backlog).
 * Out of file descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM), it stops
 * polling and retries every 100 ms within its timeout, leaving the
 * connections in the backlog: no spin, no shedding, and the listener
 * stays usable. */
int glS_accept(glS_stream *s, glS_stream *c, int *rc) {
  uint64_t deadline = glL_deadline(s->tread), wait;
  /* nothing moves until a connection comes: a block timeout is a deadline */
  if (s->tidle != UINT64_MAX && glL_deadline(s->tidle) < deadline)
    deadline = glL_deadline(s->tidle);
  gl_waiter w;
  int fd, e;
  GL_ASSERT(s->state == GLS_LISTENING);
  *rc = GL_OK;
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
      return -e;
    }
    gl_waiter_init(&w, GL_WAIT_ACCEPT, s);
    *rc = gl_waitq_wait(&s->readq, &w, wait);
    if (s->state == GLS_CLOSED) return UV_ECANCELED;
    if (s->readq.head == NULL) setpolling(s, 0);
    else setpolling(s, 1);  /* a backoff may have stopped it */
    if (*rc == GL_EINTR) return UV_ECANCELED;
    if (*rc == GL_ETIMEDOUT && glL_remaining(deadline) == 0)
      return UV_ETIMEDOUT;
  }
  e = glS_applyopts(c, fd, GLS_OPT_NODELAY | GLS_OPT_KEEPALIVE);
  if (e == 0) e = glS_openstream(c, fd);
  else close(fd);
  if (e < 0) return e;
  c->state = GLS_CONNECTED;
  return 0;
}
/* }====== */

/* {====== Writing ====== */

/* Gives the write turn to the first waiting sender, if the turn and the
 * handle's write request are free. */
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

int glS_writeturn(glS_stream *s, uint64_t deadline) {
  gl_waiter w;
  if (s->wbusy || s->h->wbusy || s->writeq.head != NULL) {
    gl_waiter_init(&w, GL_WAIT_SEND, s);
    return gl_waitq_wait(&s->writeq, &w, glS_nextwait(s, deadline));
    /* GL_OK: handoff gave us the turn */
  }
  s->wbusy = 1;
  return GL_OK;
}

void glS_writedone(glS_stream *s) {
  s->wbusy = 0;
  handoff(s);
}

static int trywrite(glS_stream *s, const char *p, size_t n) {
  uv_buf_t b;
  if (n > WRITE_TRY_MAX) n = WRITE_TRY_MAX;  /* uv_buf_t's len, int result */
  b = uv_buf_init((char *)p, (unsigned)(glS_onebyte ? 1 : n));
  return uv_try_write(&s->h->u.stream, &b, 1);
}

int glS_trysend(glS_stream *s, const char *p, size_t n) {
  int r;
  if (s->state != GLS_CONNECTED || s->tls != NULL || s->werr || s->wbusy ||
      s->h->wbusy || s->writeq.head != NULL || n == 0)
    return 0;
  r = trywrite(s, p, n);
  if (r == UV_EAGAIN) return 0;
  if (r < 0) s->werr = r;
  return r;
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

int glS_write(glS_stream *s, const char *p, size_t n, uint64_t deadline,
              size_t *sent, int *rc, int *inflight) {
  size_t done = 0, chunk;
  int err = 0, status, r;
  *rc = GL_OK;
  *inflight = 0;
  while (done < n) {
    /* Woken for the next chunk, the sender may find that another
     * greenthread closed the stream before it ran: h is gone. */
    if (s->state == GLS_CLOSED) break;
    r = trywrite(s, p + done, n - done);
    if (r > 0) {
      done += (size_t)r;
      continue;
    }
    if (r != UV_EAGAIN) {
      err = r;
      break;
    }
    chunk = glS_onebyte ? 1 : WRITE_CHUNK;
    if (chunk > n - done) chunk = n - done;
    *rc = writewait(s, p + done, chunk, glS_nextwait(s, deadline), &status);
    if (*rc == GL_OK) {
      if (status < 0) {
        err = status;
        break;
      }
      done += chunk;
      continue;
    }
    if (*rc == GL_ECLOSED) break;
    /* A timeout or an interrupt: the chunk is in libuv's hands and goes
     * out (it counts as sent); its data must outlive the write. */
    done += chunk;
    *inflight = 1;
    break;
  }
  *sent += done;
  if (err && s->state != GLS_CLOSED && s->werr == 0) s->werr = err;
  return err;
}
/* }====== */
