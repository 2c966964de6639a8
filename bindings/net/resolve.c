/* Name lookups for connect, bind and green.socket.dns: uv_getaddrinfo
 * runs on libuv's thread pool while only the calling greenthread waits,
 * parked where a close of its socket wakes it.  Numeric addresses never
 * reach the thread pool. */
#include "stream.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

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
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = socktype;
  return glS_getaddrinfox(host, NULL, &hints, q, timeout, rc, err);
}

struct addrinfo *glS_getaddrinfox(const char *host, const char *service,
                                  const struct addrinfo *hints, gl_waitq *q,
                                  uint64_t timeout, int *rc, int *err) {
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
  e = uv_getaddrinfo(gl_hub_loop(), &r->req, onresolve, host, service,
                     hints);
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
