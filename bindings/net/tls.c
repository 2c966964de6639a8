/* The TLS record layer of a stream, between its transport and its
 * buffered reader (stream.h).  OpenSSL talks to a BIO of our own instead
 * of the socket, so libuv stays in charge of the socket: the ciphertext
 * the reader's read callback gets is fed to SSL, which decrypts it
 * straight into the stream's buffer; what send writes is encrypted into
 * ciphertext that goes out with uv_try_write, or a uv_write of its own.
 * So every receive pattern, send, timeout, close and kill works above it
 * as on a plain stream.  The handshake runs in the read callbacks too;
 * the greenthread that asked for it parks until it ends.  Contexts and
 * sessions are tls_context.c's. */
#include "stream.h"

#include "heap.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* Plaintext encrypted per SSL_write, and so at most written ahead of
 * what the peer has taken when a send times out. */
#define TLS_CHUNK (64 * 1024)

enum {  /* as GLS_TLS_* */
  HS_RUNNING = GLS_TLS_RUNNING, HS_DONE = GLS_TLS_DONE,
  HS_FAILED = GLS_TLS_FAILED
};

struct glS_tls {
  SSL *ssl;
  glS_tlsctx *ctx;
  const char *in;      /* ciphertext being fed to SSL (the BIO reads it) */
  size_t inlen;
  uint64_t wqueued;    /* ciphertext bytes handed to libuv so far */
  uint64_t wdone;      /* ... and written (or dropped) */
  uint64_t wmark;      /* what a parked sender waits for (its w.data) */
  int hs;              /* HS_* */
  int server;
  int shut;            /* close_notify sent */
  char *msg;           /* what the last failure says (NULL: none yet) */
  glS_tls *prev, *next;  /* in `live`, for the sweep */
  unsigned char used;  /* an SSL call ran since the last sweep */
  unsigned char bare;  /* the record buffers were freed since */
};

/* {====== Record buffers of idle connections ======
 * SSL keeps a read and a write buffer of about 17 KiB each.  Freeing them
 * after every record (SSL_MODE_RELEASE_BUFFERS) costs a malloc and a free
 * of each per request, about 5% of an https request's instructions;
 * instead the sweep, ten times a second, frees those of the connections
 * that made no SSL call since the sweep before (SSL_free_buffers; SSL
 * allocates them again when needed).  So a connection idle for 0.2 s
 * holds none, and only those active in the last 0.1-0.2 s hold them (a
 * server whose 10,000 clients each ask once a second holds a tenth to a fifth
 * of their buffers at a time).  Once many were freed at once, their pages
 * go back to the system (gl_heap_trim, at most once a second). */

#define SWEEP_EVERY_MS 100
#define TRIM_EVERY_SWEEPS 10

static glS_tls *live;
static uv_timer_t sweeper;
static int sweeping;
static unsigned sweeps, trimmed_at;
static size_t untrimmed;  /* connections whose buffers were freed since */

static void sweep(uv_timer_t *h) {
  glS_tls *t;
  size_t freed = 0;
  GL_UNUSED(h);
  for (t = live; t != NULL; t = t->next) {
    if (t->used) {
      t->used = 0;
    } else if (!t->bare && t->hs == HS_DONE && SSL_free_buffers(t->ssl)) {
      t->bare = 1;
      freed++;
    }
  }
  /* buffers of many connections at once, freed between blocks still in
   * use: their pages go back (a hub that stays quiet would not trim
   * again) */
  sweeps++;
  untrimmed += freed;
  if (untrimmed >= 32 && sweeps - trimmed_at >= TRIM_EVERY_SWEEPS) {
    trimmed_at = sweeps;
    untrimmed = 0;
    gl_heap_trim();
  }
}

static void golive(glS_tls *t) {
  if (!sweeping) {
    uv_timer_init(gl_hub_loop(), &sweeper);
    uv_timer_start(&sweeper, sweep, SWEEP_EVERY_MS, SWEEP_EVERY_MS);
    uv_unref((uv_handle_t *)&sweeper);  /* never keeps the loop alive */
    sweeping = 1;
  }
  t->next = live;
  if (live != NULL) live->prev = t;
  live = t;
}

static void leave(glS_tls *t) {
  if (t->prev != NULL) t->prev->next = t->next;
  else live = t->next;
  if (t->next != NULL) t->next->prev = t->prev;
}

void glS_tls_counts(size_t *open, size_t *buffered) {
  glS_tls *t;
  *open = *buffered = 0;
  for (t = live; t != NULL; t = t->next) {
    (*open)++;
    *buffered += !t->bare;
  }
}

/* Before every SSL call that may need the buffers. */
static void use(glS_tls *t) {
  t->used = 1;
  t->bare = 0;
}
/* }====== */

/* Empties the thread's OpenSSL error queue before an SSL call, as
 * SSL_get_error needs; most calls find it empty already, and looking
 * costs less than clearing its sixteen slots. */
static void clearerrors(void) {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

/* {====== The BIO ======
 * Ciphertext SSL writes goes to `obuf`, one buffer for every stream: it
 * is always handed to libuv (flush) right after the SSL call that filled
 * it, before anything can park or another stream's SSL run. */

static char *obuf;
static size_t olen, ocap;

static int bio_write(BIO *b, const char *p, size_t n, size_t *written) {
  size_t cap = ocap > 0 ? ocap : 16384;
  char *q;
  BIO_clear_retry_flags(b);
  while (cap - olen < n) cap *= 2;
  if (cap != ocap) {
    if ((q = realloc(obuf, cap)) == NULL) return 0;
    obuf = q;
    ocap = cap;
  }
  memcpy(obuf + olen, p, n);
  olen += n;
  *written = n;
  return 1;
}

/* Reads what the transport delivered; with nothing left, asks SSL to
 * retry (it keeps a partial record to itself). */
static int bio_read(BIO *b, char *p, size_t n, size_t *got) {
  glS_tls *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (t->inlen == 0) {
    BIO_set_retry_read(b);
    *got = 0;
    return 0;
  }
  if (n > t->inlen) n = t->inlen;
  memcpy(p, t->in, n);
  t->in += n;
  t->inlen -= n;
  *got = n;
  return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  GL_UNUSED(b);
  GL_UNUSED(num);
  GL_UNUSED(ptr);
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static BIO *newbio(glS_tls *t) {
  static BIO_METHOD *meth;
  BIO *b;
  if (meth == NULL) {
    meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                        "green stream");
    if (meth == NULL) return NULL;
    BIO_meth_set_write_ex(meth, bio_write);
    BIO_meth_set_read_ex(meth, bio_read);
    BIO_meth_set_ctrl(meth, bio_ctrl);
    BIO_meth_set_create(meth, bio_create);
  }
  if ((b = BIO_new(meth)) != NULL) BIO_set_data(b, t);
  return b;
}
/* }====== */

/* {====== Writing ciphertext ====== */

/* A uv_write of the ciphertext uv_try_write did not take. */
typedef struct wchunk {
  uv_write_t req;
  size_t len;
  char data[];
} wchunk;

/* Wakes the sender waiting for its ciphertext to be written. */
static void wakesender(glS_stream *s) {
  gl_waiter *w = gl_waitq_find(&s->waitq, &s->tls->wmark);
  if (w != NULL) gl_hub_wake(w, GL_OK);
}

static void onwrote(uv_write_t *req, int status) {
  wchunk *c = (wchunk *)req;
  glS_stream *s = ((glS_handle *)req->handle)->s;
  glS_tls *t;
  if (s != NULL && (t = s->tls) != NULL) {
    t->wdone += c->len;
    if (status < 0 && s->werr == 0) s->werr = status;
    if (t->wdone >= t->wmark || status < 0) wakesender(s);
  }
  free(c);
}

/* Hands the ciphertext in obuf to libuv for s: what uv_try_write takes
 * at once, the rest in a uv_write of its own (libuv writes a stream's
 * requests in order, and uv_try_write takes nothing while any wait).
 * A failure is made sticky in s->werr; the bytes then count as done. */
static void flush(glS_stream *s) {
  glS_tls *t = s->tls;
  size_t n = olen, off = 0;
  uv_buf_t b;
  wchunk *c;
  int r;
  olen = 0;
  if (n == 0) return;
  t->wqueued += n;
  if (s->state != GLS_CONNECTED || s->werr != 0) {
    t->wdone += n;  /* nowhere to go */
    return;
  }
  b = uv_buf_init(obuf, (unsigned)(glS_onebyte ? 1 : n));
  r = uv_try_write(&s->h->u.stream, &b, 1);
  if (r == UV_EAGAIN) r = 0;
  if (r < 0) {
    s->werr = r;
    t->wdone = t->wqueued;
    return;
  }
  off = (size_t)r;
  t->wdone += off;
  if (off == n) return;
  if ((c = malloc(sizeof *c + (n - off))) == NULL) {
    s->werr = UV_ENOMEM;
    t->wdone = t->wqueued;
    return;
  }
  c->len = n - off;
  memcpy(c->data, obuf + off, c->len);
  b = uv_buf_init(c->data, (unsigned)c->len);
  if ((r = uv_write(&c->req, &s->h->u.stream, &b, 1, onwrote)) < 0) {
    free(c);
    s->werr = r;
    t->wdone = t->wqueued;
  }
}
/* }====== */

/* {====== Failures ====== */

/* Sets what t's failure says (kept only once there is one: an idle
 * connection's layer stays small). */
static void setmsg(glS_tls *t, const char *fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  free(t->msg);
  t->msg = strdup(buf);
}

/* What t's failure says. */
static const char *msgof(const glS_tls *t) {
  return t->msg != NULL ? t->msg : "tls failure";
}

/* Writes what the failure of the last SSL call says into t->msg: a
 * verification failure of a client's handshake, else OpenSSL's reason. */
static void failure(glS_tls *t, int handshake) {
  char why[160];
  long v;
  if (handshake && !t->server
      && SSL_get_verify_mode(t->ssl) != SSL_VERIFY_NONE
      && (v = SSL_get_verify_result(t->ssl)) != X509_V_OK) {
    ERR_clear_error();
    if (v == X509_V_ERR_HOSTNAME_MISMATCH
        || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
      setmsg(t, "hostname mismatch");
    else
      setmsg(t, "certificate verify failed: %s",
             X509_verify_cert_error_string(v));
    return;
  }
  glS_tls_reason(why, sizeof why, "protocol error");
  setmsg(t, handshake ? "handshake failed: %s" : "tls: %s", why);
}

/* The handshake ended (t->hs says how): wakes the greenthread that waits
 * for it, and after a failure makes it every call's answer. */
static void handshaken(glS_stream *s) {
  glS_tls *t = s->tls;
  gl_waiter *w = gl_waitq_find(&s->waitq, t);
  if (t->hs == HS_FAILED) {
    s->rerr = s->werr = GLS_ETLS;
    glS_stopreading(s);
  }
  if (w != NULL) gl_hub_wake(w, GL_OK);
}

const char *glS_errtext(glS_stream *s, int err, char *buf, size_t size) {
  if (err == GLS_ETLS) return s->tls != NULL ? msgof(s->tls) : "tls failure";
  if (s->luasocket) return glS_luasocketerror(err);
  return glS_strerror(err, buf, size);
}
/* }====== */

/* {====== Reading ciphertext ====== */

/* Decrypts what SSL can into the stream's buffer, until the input is
 * used up, the peer's close_notify (the end of the stream) or a
 * failure. */
static void decrypt(glS_stream *s) {
  glS_tls *t = s->tls;
  size_t need, room;
  int r, e;
  for (;;) {
    need = (size_t)SSL_pending(t->ssl);
    if (glS_reserve(s, need > 0 ? need : 1) != 0) {
      s->rerr = UV_ENOMEM;
      glS_stopreading(s);
      break;
    }
    room = s->rcap - s->rend;
    clearerrors();
    r = SSL_read(t->ssl, s->rbuf + s->rend, room > INT_MAX ? INT_MAX
                                                           : (int)room);
    if (r > 0) {
      s->rend += (size_t)r;
      /* the input used up and nothing held back: another SSL_read
       * would only answer SSL_ERROR_WANT_READ */
      if (t->inlen == 0 && !SSL_has_pending(t->ssl)) break;
      continue;
    }
    e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ) break;  /* the input is used up */
    if (e == SSL_ERROR_ZERO_RETURN) {  /* close_notify: the end */
      s->eof = 1;
    } else {
      failure(t, 0);
      s->rerr = GLS_ETLS;
    }
    glS_stopreading(s);
    break;
  }
  if (glS_buffered(s) == 0) glS_consume(s, 0);  /* no idle buffer */
}

/* Advances the handshake as far as the input allows. */
static void handshake(glS_stream *s) {
  glS_tls *t = s->tls;
  int r, e;
  clearerrors();
  r = SSL_do_handshake(t->ssl);
  if (r == 1) {
    t->hs = HS_DONE;
  } else {
    e = SSL_get_error(t->ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
      failure(t, 1);
      t->hs = HS_FAILED;
    }
  }
}

/* Feeds n bytes of ciphertext to SSL: on with the handshake, then what
 * decrypts; hands SSL's answers to libuv. */
static void feed(glS_stream *s, const char *p, size_t n) {
  glS_tls *t = s->tls;
  use(t);
  t->in = p;
  t->inlen = n;
  if (t->hs == HS_RUNNING) {
    handshake(s);
    flush(s);  /* its messages, or the alert of a failure */
    if (t->hs != HS_RUNNING) handshaken(s);
  }
  if (t->hs == HS_DONE) {
    decrypt(s);
    flush(s);  /* post-handshake answers (key updates) */
  }
  t->in = NULL;
  t->inlen = 0;
}

void glS_tls_input(glS_stream *s, const char *p, ssize_t n) {
  glS_tls *t = s->tls;
  char buf[128];
  if (n > 0 && t->hs != HS_FAILED) {
    feed(s, p, (size_t)n);
  } else if (n < 0) {  /* the transport ended or failed */
    glS_stopreading(s);
    if (t->hs == HS_RUNNING) {
      setmsg(t, "%s", glS_strerror((int)n, buf, sizeof buf));
      t->hs = HS_FAILED;
      handshaken(s);
    } else if (n == UV_EOF) {
      s->eof = 1;  /* without close_notify: still the end, as curl sees */
    } else if (s->rerr == 0) {
      s->rerr = (int)n;
    }
  }
}
/* }====== */

/* {====== Writing plaintext ====== */

int glS_tls_write(glS_stream *s, const char *p, size_t n, uint64_t deadline,
                  size_t *sent, int *rc) {
  glS_tls *t = s->tls;
  size_t done = 0, chunk;
  gl_waiter w;
  int r, err = 0;
  *rc = GL_OK;
  use(t);
  while (done < n) {
    if (s->state == GLS_CLOSED) break;
    if ((err = s->werr) != 0) break;
    chunk = glS_onebyte ? 1 : TLS_CHUNK;  /* one-byte records, stressed */
    if (chunk > n - done) chunk = n - done;
    clearerrors();
    r = SSL_write(t->ssl, p + done, (int)chunk);
    if (r <= 0) {
      olen = 0;
      failure(t, 0);
      err = s->werr = GLS_ETLS;
      break;
    }
    flush(s);
    done += (size_t)r;
    if (t->wdone < t->wqueued) {  /* wait until the peer took it */
      t->wmark = t->wqueued;
      gl_waiter_init(&w, GL_WAIT_SEND, s);
      w.data = &t->wmark;
      *rc = gl_waitq_wait(&s->waitq, &w, glS_nextwait(s, deadline));
      if (s->state == GLS_CLOSED || *rc != GL_OK) break;  /* t is gone,
        or a timeout or interrupt: the chunk still goes out, as sent */
    }
  }
  *sent += done;
  if (s->state == GLS_CLOSED) return UV_ECANCELED;
  return err != 0 ? err : (*rc == GL_OK ? s->werr : 0);
}
int glS_tls_trysend(glS_stream *s, const char *p, size_t n) {
  glS_tls *t = s->tls;
  int r;
  /* not before the handshake, nor while ciphertext of an earlier call
   * waits for the socket: what is not yet out stays bounded */
  if (t->hs != HS_DONE || t->wdone < t->wqueued) return 0;
  if (n > TLS_CHUNK) n = TLS_CHUNK;
  use(t);
  clearerrors();
  r = SSL_write(t->ssl, p, (int)n);
  if (r <= 0) {
    olen = 0;
    failure(t, 0);
    return s->werr = GLS_ETLS;
  }
  flush(s);
  return s->werr != 0 ? s->werr : r;
}
/* }====== */

/* {====== Starting, shutting down, freeing ====== */

/* Whether name is an IPv4 or IPv6 address. */
static int isaddress(const char *name) {
  struct sockaddr_storage ss;
  return uv_ip4_addr(name, 0, (struct sockaddr_in *)&ss) == 0
         || uv_ip6_addr(name, 0, (struct sockaddr_in6 *)&ss) == 0;
}

/* Puts a TLS layer with context c on the connected s: a client sends
 * `name` as SNI and checks the certificate against it (when c verifies
 * and `checkname`), and resumes the session it last had with `key`.
 * Returns NULL or what failed. */
static const char *start(glS_stream *s, glS_tlsctx *c, const char *name,
                         const char *key, int checkname) {
  glS_tls *t = calloc(1, sizeof *t);
  BIO *b;
  if (t == NULL || (t->ssl = SSL_new(glS_tlsctx_get(c))) == NULL) {
    free(t);
    return "out of memory";
  }
  if ((b = newbio(t)) == NULL) {
    SSL_free(t->ssl);
    free(t);
    return "out of memory";
  }
  SSL_set_bio(t->ssl, b, b);
  t->server = glS_tlsctx_isserver(c);
  if (t->server) {
    SSL_set_accept_state(t->ssl);
  } else {
    SSL_set_connect_state(t->ssl);
    if (name != NULL && *name != '\0') {
      int ip = isaddress(name);
      if (!ip) SSL_set_tlsext_host_name(t->ssl, name);  /* RFC 6066: no IPs */
      if (checkname && SSL_get_verify_mode(t->ssl) != SSL_VERIFY_NONE) {
        if (ip) {
          X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name);
        } else {
          SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
          SSL_set1_host(t->ssl, name);
        }
      }
    }
    glS_tlsctx_prepare(c, t->ssl, key);
  }
  glS_tlsctx_ref(c);
  t->ctx = c;
  t->hs = HS_RUNNING;
  s->tls = t;
  golive(t);
  return NULL;
}

void glS_tls_shutdown(glS_stream *s) {
  glS_tls *t = s->tls;
  if (t == NULL || t->hs != HS_DONE || t->shut) return;
  t->shut = 1;
  ERR_clear_error();
  use(t);
  SSL_shutdown(t->ssl);  /* writes close_notify */
  ERR_clear_error();
  flush(s);
}

void glS_tls_free(glS_stream *s) {
  glS_tls *t = s->tls;
  uv_buf_t b;
  if (t == NULL) return;
  /* close_notify, as far as the socket takes it at once: the close
   * cancels whatever libuv would write later. */
  if (t->hs == HS_DONE && !t->shut && s->h != NULL && s->werr == 0) {
    t->shut = 1;
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    ERR_clear_error();
    if (olen > 0) {
      b = uv_buf_init(obuf, (unsigned)olen);
      uv_try_write(&s->h->u.stream, &b, 1);
    }
  }
  olen = 0;
  leave(t);
  SSL_free(t->ssl);
  glS_tlsctx_unref(t->ctx);
  free(t->msg);
  free(t);
  s->tls = NULL;
}
/* }====== */

/* {====== Handshakes driven from outside ====== */

/* The session key of a client: "name:port", or the peer's address. */
static void sessionkey(glS_stream *s, const char *name, char *key,
                       size_t size);

const char *glS_tls_begin(glS_stream *s, glS_tlsctx *c, const char *name,
                          int checkname) {
  char key[320];
  const char *e;
  size_t n;
  char *early;
  if (s->state != GLS_CONNECTED) return "closed";
  if (s->tls != NULL) return "tls already";
  if (!glS_tlsctx_isserver(c)) sessionkey(s, name, key, sizeof key);
  else key[0] = '\0';  /* servers resume by tickets alone */
  if ((e = start(s, c, name, key, checkname)) != NULL) return e;
  if ((n = glS_buffered(s)) > 0) {  /* read ahead before TLS: ciphertext */
    early = malloc(n);
    if (early != NULL) memcpy(early, glS_bufdata(s), n);
    glS_consume(s, n);
    if (early != NULL) feed(s, early, n);
    free(early);
  } else {
    feed(s, NULL, 0);  /* a client's hello */
  }
  return NULL;
}

int glS_tls_wait(glS_stream *s, uint64_t deadline) {
  gl_waiter w;
  int rc = GL_OK;
  while (s->state != GLS_CLOSED && s->tls != NULL
         && s->tls->hs == HS_RUNNING) {
    glS_startreading(s);
    gl_waiter_init(&w, GL_WAIT_CONNECT, s);
    w.data = s->tls;
    rc = gl_waitq_wait(&s->waitq, &w, glL_remaining(deadline));
    if (rc != GL_OK) break;
  }
  return rc;
}

int glS_tls_state(const glS_stream *s) {
  return s->tls != NULL ? s->tls->hs : GLS_TLS_NONE;
}

struct ssl_st *glS_tls_ssl(glS_stream *s) {
  return s->tls != NULL ? s->tls->ssl : NULL;
}
/* }====== */

/* {====== Lua: sslhandshake, sslinfo ====== */

/* The session key of a client: "name:port", or the peer's address. */
static void sessionkey(glS_stream *s, const char *name, char *key,
                       size_t size) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char host[64] = "";
  int port = 0, fd = glS_sockfd(s);
  memset(&ss, 0, sizeof ss);
  if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET) {
      uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof host);
      port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof host);
      port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
  }
  snprintf(key, size, "%s:%d", name != NULL && *name ? name : host, port);
}

/* Reads the options table of sslhandshake at 4. */
static void handshakeopts(lua_State *L, const char **cafile,
                          glS_tlsctx **c, uint64_t *timeout) {
  if (lua_isnoneornil(L, 4)) return;
  luaL_checktype(L, 4, LUA_TTABLE);
  if (lua_getfield(L, 4, "cafile") != LUA_TNIL) {
    luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 4,
                  "option 'cafile': string expected");
    *cafile = lua_tostring(L, -1);
  }
  if (lua_getfield(L, 4, "context") != LUA_TNIL) {
    *c = glS_tlsctx_test(L, -1);
    luaL_argcheck(L, *c != NULL, 4, "option 'context': green.tls.Context "
                                    "expected");
  }
  if (lua_getfield(L, 4, "timeout") != LUA_TNIL) {
    luaL_argcheck(L, lua_type(L, -1) == LUA_TNUMBER, 4,
                  "option 'timeout': number expected");
    *timeout = gl_hub_ns(lua_tonumber(L, -1));
  }
  lua_pop(L, 3);  /* the table keeps cafile and the context alive */
}

static int handshook(lua_State *L, int rc, gl_waiter *w);

/* Waits until the handshake of s ends (the read callbacks drive it), as a
 * wait that gives the stack up (green.h): a server in the middle of many
 * handshakes holds no stacks for them.  The deadline waits on top of L's
 * stack for `handshook`; `again` says whether this runs there. */
static int handshaking(lua_State *L, glS_stream *s, uint64_t deadline,
                       int again) {
  gl_waiter *w;
  if (s->tls->hs == HS_RUNNING) {
    glS_startreading(s);
    w = gl_green_waiter(GL_WAIT_CONNECT, s);
    w->data = s->tls;
    if (again) return gl_green_again(&s->waitq, glL_remaining(deadline));
    return gl_green_wait(L, &s->waitq, glL_remaining(deadline), handshook);
  }
  glS_writedone(s);
  if (s->tls->hs == HS_FAILED) return glL_fail(L, msgof(s->tls));
  glS_afterread(s);  /* receivers that came meanwhile, reading on */
  lua_pushboolean(L, 1);
  return 1;
}

/* What follows a handshake's wait. */
static int handshook(lua_State *L, int rc, gl_waiter *w) {
  glS_stream *s = glS_checkstream(L, 1);
  uint64_t deadline = (uint64_t)lua_tointeger(L, -1);
  GL_UNUSED(w);
  if (s->state == GLS_CLOSED) {
    glL_raisepending(L, rc);
    return glL_fail(L, "closed");
  }
  if (rc != GL_OK && s->tls->hs == HS_RUNNING) {
    setmsg(s->tls, "handshake %s",
           rc == GL_ETIMEDOUT ? "timeout" : "interrupted");
    s->tls->hs = HS_FAILED;
    handshaken(s);
    glS_writedone(s);
    glL_raisepending(L, rc);
    return glL_fail(L, msgof(s->tls));
  }
  return handshaking(L, s, deadline, 1);
}

/* s:sslhandshake([servername], [verify=true], [opts]) -> true | nil, err.
 * opts: cafile (the CAs to trust instead of the system's), context (a
 * green.tls.context: a server context makes this the server's side),
 * timeout (seconds; default the connect timeout).  Fails with
 * "certificate verify failed: <reason>", "hostname mismatch",
 * "handshake timeout", "closed" or "handshake failed: <reason>"; a
 * failed handshake leaves the socket failing every call until closed. */
static int stream_sslhandshake(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  const char *name = luaL_optstring(L, 2, NULL), *cafile = NULL, *e;
  int verify = lua_isnoneornil(L, 3) || lua_toboolean(L, 3), rc;
  uint64_t timeout = s->tconnect, deadline;
  glS_tlsctx *c = NULL;
  char err[512];
  handshakeopts(L, &cafile, &c, &timeout);
  if (s->state != GLS_CONNECTED) return glL_fail(L, "closed");
  if (s->tls != NULL) return glL_fail(L, "tls already");
  if (c == NULL && (c = glS_tlsctx_client(L, verify, cafile, err,
                                          sizeof err)) == NULL)
    return glL_fail(L, err);
  deadline = glL_deadline(timeout);
  rc = glS_writeturn(s, deadline);  /* senders wait for the handshake */
  if (s->state == GLS_CLOSED) {
    glL_raisepending(L, rc);
    return glL_fail(L, "closed");
  }
  glL_raisepending(L, rc);
  if (rc == GL_ETIMEDOUT) return glL_fail(L, "handshake timeout");
  if ((e = glS_tls_begin(s, c, name, 1)) != NULL) {
    glS_writedone(s);
    return glL_fail(L, e);
  }
  lua_pushinteger(L, (lua_Integer)deadline);
  return handshaking(L, s, deadline, 0);
}

/* s:sslinfo() -> {protocol=, cipher=, alpn=, resumed=, servername=} | nil
 * when the socket has no TLS (or its handshake did not succeed). */
static int stream_sslinfo(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  const unsigned char *alpn;
  unsigned int alen;
  const char *name;
  SSL *ssl;
  if (s->tls == NULL || s->tls->hs != HS_DONE) return 0;
  ssl = s->tls->ssl;
  lua_createtable(L, 0, 5);
  lua_pushstring(L, SSL_get_version(ssl));
  lua_setfield(L, -2, "protocol");
  lua_pushstring(L, SSL_get_cipher_name(ssl));
  lua_setfield(L, -2, "cipher");
  SSL_get0_alpn_selected(ssl, &alpn, &alen);
  if (alen > 0) {
    lua_pushlstring(L, (const char *)alpn, alen);
    lua_setfield(L, -2, "alpn");
  }
  lua_pushboolean(L, SSL_session_reused(ssl));
  lua_setfield(L, -2, "resumed");
  if ((name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) != NULL) {
    lua_pushstring(L, name);
    lua_setfield(L, -2, "servername");
  }
  return 1;
}

const luaL_Reg glS_tls_methods[] = {
  {"sslhandshake", stream_sslhandshake},
  {"sslinfo", stream_sslinfo},
  {NULL, NULL}
};
/* }====== */
