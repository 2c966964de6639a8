/* The buffered reader of a stream: the read buffer, libuv's read
 * callbacks that fill it, the receivers' turns (FIFO, one served at a
 * time) and backpressure; and the direct access C parsers use
 * (glS_fill).  What a receive returns (its patterns) is receive.c's. */
#include "stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reading stops while nobody receives and this much is buffered, so a
 * slow reader holds the peer back through TCP's window. */
#define READ_HIGH (64 * 1024)
/* libuv reads straight into the buffer when this much is free at its end;
 * smaller reads go to glS_scratch and are appended. */
#define READ_DIRECT (16 * 1024)
#define RBUF_MIN 2048
/* A buffer larger than this shrinks once a receive leaves it at most a
 * quarter full. */
#define RBUF_SHRINK (64 * 1024)

/* {====== The buffer ======
 * A stream holds a buffer only while data waits in it: consuming the last
 * byte frees it, so an idle connection costs no buffer (10,000 idle
 * keep-alive connections).  Buffers of the smallest size go back to a
 * small pool shared by every stream instead of to malloc, so that a
 * busy stream, which empties its buffer at every message, takes one and
 * gives it back for a few instructions (glibc's malloc and free of 2 KiB
 * cost about 900 per message).  The sanitizer build has no pool, so
 * that ASan sees each buffer's life. */

#define POOL_MAX (GL_ASAN ? 0 : 64)
static char *pool[POOL_MAX > 0 ? POOL_MAX : 1];
static int npool;

static char *takebuf(void) {
  return npool > 0 ? pool[--npool] : malloc(RBUF_MIN);
}

static void dropbuf(char *p, size_t cap) {
  if (cap == RBUF_MIN && npool < POOL_MAX) pool[npool++] = p;
  else free(p);
}

const char *glS_findnl(glS_stream *s) {
  size_t have = glS_buffered(s);
  const char *nl;
  if (have <= s->lscan) return NULL;
  nl = memchr(s->rbuf + s->rstart + s->lscan, '\n', have - s->lscan);
  if (nl == NULL) s->lscan = have;
  return nl;
}

/* Moves what is buffered to a buffer of about twice its size. */
static void shrink(glS_stream *s) {
  size_t have = glS_buffered(s), cap = RBUF_MIN;
  char *p;
  while (cap < 2 * have) cap *= 2;
  memmove(s->rbuf, s->rbuf + s->rstart, have);
  s->rstart = 0;
  s->rend = have;
  if (cap == RBUF_MIN && (p = takebuf()) != NULL) {
    memcpy(p, s->rbuf, have);
    free(s->rbuf);
    s->rbuf = p;
    s->rcap = cap;
  } else if ((p = realloc(s->rbuf, cap)) != NULL) {  /* else keep it */
    s->rbuf = p;
    s->rcap = cap;
  }
}

int glS_overlong(const glS_stream *s, const char *nl) {
  const char *p = glS_bufdata(s);
  size_t len = nl != NULL ? (size_t)(nl - p) : glS_buffered(s);
  if (len > 0 && p[len - 1] == '\r') len--;
  return len > s->maxline;
}

void glS_consume(glS_stream *s, size_t n) {
  s->nconsumed += n;
  s->rstart += n;
  s->lscan = s->lscan > n ? s->lscan - n : 0;
  if (s->rstart == s->rend) {  /* idle streams hold no buffer */
    dropbuf(s->rbuf, s->rcap);
    s->rbuf = NULL;
    s->rstart = s->rend = s->rcap = 0;
  } else if (s->rcap > RBUF_SHRINK && glS_buffered(s) <= s->rcap / 4) {
    shrink(s);
  }
}

int glS_reserve(glS_stream *s, size_t n) {
  size_t have = glS_buffered(s), cap;
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
  p = s->rbuf == NULL && cap == RBUF_MIN ? takebuf() : realloc(s->rbuf, cap);
  if (p == NULL) return -1;
  s->rbuf = p;
  s->rcap = cap;
  return 0;
}

void glS_freebuf(glS_stream *s) {
  if (s->rbuf != NULL) dropbuf(s->rbuf, s->rcap);
  s->rbuf = NULL;
  s->rstart = s->rend = s->rcap = s->lscan = 0;
}
/* }====== */

/* {====== Reading from libuv ====== */

/* The kinds of receive, as tags a waiter points to (glS_setneed); a
 * kind plus GLS_RPROGRESS has a tag of its own. */
static const char needtags[8];

void glS_setneed(gl_waiter *w, int kind, size_t n) {
  w->data = (void *)&needtags[kind];
  w->n2 = (intptr_t)n;
}

int glS_needkind(const gl_waiter *w) {
  return (int)((const char *)w->data - needtags) & 3;
}

int glS_needprogress(const gl_waiter *w) {
  return ((const char *)w->data - needtags) >= GLS_RPROGRESS;
}

size_t glS_needn(const gl_waiter *w) { return (size_t)w->n2; }

void glS_stopreading(glS_stream *s) {
  if (s->reading) {
    uv_read_stop(&s->h->u.stream);
    s->reading = 0;
  }
}

/* Whether the receiver w can be served: its data is there, or the
 * stream ended, or (`fresh`: new bytes just arrived) it waits for any
 * progress. */
static int satisfied(glS_stream *s, gl_waiter *w, int fresh) {
  if (s->eof || s->rerr) return 1;
  if (fresh && glS_needprogress(w)) return 1;
  switch (glS_needkind(w)) {
    case GLS_RANY: return glS_buffered(s) > 0;
    case GLS_RNUM: return glS_buffered(s) >= glS_needn(w);
    case GLS_RLINE:  /* a line, or more than the longest one */
      return glS_findnl(s) != NULL || glS_overlong(s, NULL);
    default: return 0;  /* GLS_RALL: until the end */
  }
}

static void kick(glS_stream *s, int fresh) {
  gl_waiter *w = s->readq.head;
  if (w == NULL || s->rbusy || !satisfied(s, w, fresh)) return;
  s->rbusy = 1;
  gl_hub_wake(w, GL_OK);
}

void glS_kick(glS_stream *s) { kick(s, 0); }

static void onalloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf) {
  glS_stream *s = ((glS_handle *)hd)->s;
  GL_UNUSED(suggested);
  if (glS_onebyte) {
    buf->base = glS_scratch;
    buf->len = 1;
  } else if (s != NULL && s->tls == NULL && s->rcap - s->rend >= READ_DIRECT) {
    buf->base = s->rbuf + s->rend;
    buf->len = s->rcap - s->rend;
  } else {
    buf->base = glS_scratch;
    buf->len = sizeof glS_scratch;
  }
}

static void onread(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  glS_stream *s = ((glS_handle *)st)->s;
  size_t before;
  if (s == NULL) return;
  before = glS_buffered(s);
  if (s->tls != NULL) {  /* ciphertext: TLS decrypts into the buffer */
    if (nread != 0) glS_tls_input(s, buf->base, nread);
  } else if (nread > 0) {
    if (buf->base != glS_scratch) {
      s->rend += (size_t)nread;
    } else if (glS_reserve(s, (size_t)nread) == 0) {
      memcpy(s->rbuf + s->rend, buf->base, (size_t)nread);
      s->rend += (size_t)nread;
    } else {
      s->rerr = UV_ENOMEM;
      glS_stopreading(s);
    }
  } else if (nread < 0) {
    if (nread == UV_EOF) s->eof = 1;
    else s->rerr = (int)nread;
    glS_stopreading(s);
  }
  kick(s, glS_buffered(s) > before);
  if ((s->rbusy || s->readq.head == NULL) && glS_buffered(s) >= READ_HIGH)
    glS_stopreading(s);  /* backpressure: nobody wants more now */
}

void glS_startreading(glS_stream *s) {
  int e;
  if (s->reading || s->eof || s->rerr || s->state != GLS_CONNECTED) return;
  e = uv_read_start(&s->h->u.stream, onalloc, onread);
  if (e < 0) s->rerr = e;
  else s->reading = 1;
}

void glS_afterread(glS_stream *s) {
  glS_kick(s);
  if (s->readq.head != NULL || glS_buffered(s) < READ_HIGH)
    glS_startreading(s);
}

/* A receive with no time left to wait (settimeout(0)) still gets the
 * data libuv has not read yet; libuv then merely finds nothing to read. */
void glS_readnow(glS_stream *s) {
  int fd = glS_sockfd(s), e;
  size_t len, got = 0;
  char *p;
  ssize_t r;
  if (fd < 0 || s->eof || s->rerr) return;
  for (;;) {  /* until the kernel has no more, or READ_HIGH is reached */
    if (s->tls != NULL) {  /* ciphertext, through the TLS layer */
      p = glS_scratch;
      len = glS_onebyte ? 1 : sizeof glS_scratch;
    } else {
      if (glS_reserve(s, READ_DIRECT) != 0) return;
      p = s->rbuf + s->rend;
      len = glS_onebyte ? 1 : s->rcap - s->rend;
    }
    r = read(fd, p, len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    if (s->tls != NULL) glS_tls_input(s, p, r);
    else s->rend += (size_t)r;
    got += (size_t)r;
    if ((size_t)r < len || got >= READ_HIGH || s->eof || s->rerr) break;
  }
  if (s->rbuf != NULL && glS_buffered(s) == 0) glS_consume(s, 0);
  if (r > 0) return;
  e = r == 0 ? UV_EOF : -errno;
  if (e == -EAGAIN || e == -EWOULDBLOCK) return;
  if (s->tls != NULL) {
    glS_tls_input(s, NULL, e);
  } else {
    if (e == UV_EOF) s->eof = 1;
    else s->rerr = e;
    glS_stopreading(s);
  }
}
/* }====== */

/* {====== Direct access for C parsers ====== */

int glS_fill(glS_stream *s, size_t need, uint64_t deadline) {
  gl_waiter w;
  int rc, turn;
  if (s->state != GLS_CONNECTED) return GL_ECLOSED;
  turn = s->readq.head == NULL && !s->rbusy;
  for (;;) {
    if (turn) {
      if (glS_buffered(s) >= need || s->eof || s->rerr) break;
      if (glL_remaining(deadline) == 0) {
        glS_readnow(s);
        if (glS_buffered(s) >= need || s->eof || s->rerr) break;
        glS_afterread(s);
        return GL_ETIMEDOUT;
      }
      glS_startreading(s);
      if (s->rerr) continue;
    }
    gl_waiter_init(&w, GL_WAIT_RECEIVE, s);
    glS_setneed(&w, GLS_RNUM, need);
    w.n = ++s->rseq;
    rc = gl_waitq_wait(&s->readq, &w, glL_remaining(deadline));
    if (s->state == GLS_CLOSED) return GL_ECLOSED;
    if (rc != GL_OK) {
      glS_afterread(s);  /* the next reader may be served already */
      return rc;
    }
    s->rbusy = 0;  /* our turn, handed over by glS_kick */
    turn = 1;
  }
  s->rbusy = 1;  /* held until glS_readdone */
  return GL_OK;
}

void glS_readdone(glS_stream *s) {
  if (s->state == GLS_CLOSED) return;
  s->rbusy = 0;
  glS_afterread(s);
}
/* }====== */
