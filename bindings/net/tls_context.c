/* TLS contexts: one SSL_CTX per server and per client configuration,
 * shared by every connection made with it (green.tls.context, the
 * contexts sslhandshake caches for clients).  A client context keeps one
 * resumable session per host; a server context may carry further
 * certificates, chosen by the name the client sends (SNI).  The record
 * layer that uses them is tls.c. */
#include "stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define GLS_TLSCTX_TYPE "green.tls.Context"
#define SESSIONS_MAX 256  /* resumable sessions kept per client context */

/* A resumable session of a client context, by "host:port". */
typedef struct session {
  struct session *next;
  SSL_SESSION *sess;
  char key[1];
} session;

struct glS_tlsctx {
  SSL_CTX *ctx;
  int refs;            /* the Lua object, and each connection using it */
  int server;
  SSL_CTX **sni;       /* server: further certificates, chosen by SNI */
  X509 **snicert;
  int nsni;
  session *sessions;   /* client: most recent first */
  int nsessions;
};

static int ctxindex = -1;   /* SSL_CTX ex data: its glS_tlsctx */
static int keyindex = -1;   /* SSL ex data: the session key of a client */

static void freekey(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                    long argl, void *argp) {
  GL_UNUSED(parent); GL_UNUSED(ad); GL_UNUSED(idx); GL_UNUSED(argl);
  GL_UNUSED(argp);
  free(ptr);
}

static void initindexes(void) {
  if (ctxindex >= 0) return;
  ctxindex = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
  keyindex = SSL_get_ex_new_index(0, NULL, NULL, NULL, freekey);
}

/* {====== Errors ====== */

/* Writes OpenSSL's reason for the last failure (or `fallback`) into buf,
 * lower case, and clears OpenSSL's error queue. */
const char *glS_tls_reason(char *buf, size_t size, const char *fallback) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
  size_t i;
  snprintf(buf, size, "%s", r != NULL ? r : fallback);
  for (i = 0; buf[i] != '\0'; i++)
    if (buf[i] >= 'A' && buf[i] <= 'Z') buf[i] = (char)(buf[i] - 'A' + 'a');
  ERR_clear_error();
  return buf;
}
/* }====== */

/* {====== Contexts ====== */

void glS_tlsctx_ref(glS_tlsctx *c) { c->refs++; }

void glS_tlsctx_unref(glS_tlsctx *c) {
  session *p, *next;
  int i;
  if (--c->refs > 0) return;
  for (p = c->sessions; p != NULL; p = next) {
    next = p->next;
    SSL_SESSION_free(p->sess);
    free(p);
  }
  for (i = 0; i < c->nsni; i++) {
    SSL_CTX_free(c->sni[i]);
    X509_free(c->snicert[i]);
  }
  free(c->sni);
  free(c->snicert);
  SSL_CTX_free(c->ctx);
  free(c);
}

SSL_CTX *glS_tlsctx_get(glS_tlsctx *c) { return c->ctx; }
int glS_tlsctx_isserver(const glS_tlsctx *c) { return c->server; }

/* The settings every context of greenlua shares: TLS 1.2 and later, no
 * renegotiation.  Not SSL_MODE_RELEASE_BUFFERS: tls.c's sweep frees the
 * record buffers of a connection once it is idle instead, where the mode
 * would free and allocate them again at every record. */
static SSL_CTX *newctx(int server) {
  SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method()
                                    : TLS_client_method());
  if (ctx == NULL) return NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  return ctx;
}

/* Checks that `path` can be read; else writes why into err. */
static int readable(const char *what, const char *path, char *err,
                    size_t size) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    snprintf(err, size, "cannot open %s '%s': %s", what, path,
             strerror(errno));
    return 0;
  }
  fclose(f);
  return 1;
}

/* Loads a PEM certificate chain and its key into ctx; returns 1, or 0
 * with the reason in err. */
static int usecert(SSL_CTX *ctx, const char *cert, const char *key,
                   char *err, size_t size) {
  char why[128];
  if (!readable("certificate", cert, err, size)) return 0;
  if (!readable("key", key, err, size)) return 0;
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
    snprintf(err, size, "cannot load certificate '%s': %s", cert,
             glS_tls_reason(why, sizeof why, "bad certificate"));
    return 0;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
      ERR_clear_error();
      snprintf(err, size, "key '%s' does not match certificate '%s'", key,
               cert);
    } else {
      snprintf(err, size, "cannot load key '%s': %s", key,
               glS_tls_reason(why, sizeof why, "bad key"));
    }
    return 0;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    snprintf(err, size, "key '%s' does not match certificate '%s'", key,
             cert);
    return 0;
  }
  return 1;
}

/* The servername callback of a server context with SNI certificates:
 * moves the connection to the first one whose names match. */
static int onservername(SSL *ssl, int *alert, void *arg) {
  glS_tlsctx *c = arg;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  int i;
  GL_UNUSED(alert);
  if (name == NULL) return SSL_TLSEXT_ERR_NOACK;
  for (i = 0; i < c->nsni; i++) {
    if (X509_check_host(c->snicert[i], name, 0, 0, NULL) == 1) {
      SSL_set_SSL_CTX(ssl, c->sni[i]);
      break;
    }
  }
  return SSL_TLSEXT_ERR_OK;
}

/* Servers answer ALPN with http/1.1 when the client offers it, and with
 * nothing otherwise (the connection goes on). */
static int onalpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                  const unsigned char *in, unsigned int inlen, void *arg) {
  static const unsigned char h11[] = "\x08http/1.1";
  unsigned char *sel;
  GL_UNUSED(ssl);
  GL_UNUSED(arg);
  if (SSL_select_next_proto(&sel, outlen, h11, sizeof h11 - 1, in, inlen)
      != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

/* Keeps a client's new resumable session under its connection's key (a
 * TLS 1.3 server sends them after the handshake).  Returns 1: the cache
 * owns the session now. */
static int onnewsession(SSL *ssl, SSL_SESSION *sess) {
  glS_tlsctx *c = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctxindex);
  const char *key = SSL_get_ex_data(ssl, keyindex);
  session *p, **pp;
  size_t len;
  if (c == NULL || key == NULL || !SSL_SESSION_is_resumable(sess))
    return 0;
  for (pp = &c->sessions; (p = *pp) != NULL; pp = &p->next) {
    if (strcmp(p->key, key) == 0) {  /* replace, and move to the front */
      *pp = p->next;
      SSL_SESSION_free(p->sess);
      c->nsessions--;
      break;
    }
  }
  if (p == NULL) {
    len = strlen(key);
    if ((p = malloc(sizeof *p + len)) == NULL) return 0;
    memcpy(p->key, key, len + 1);
  }
  p->sess = sess;
  p->next = c->sessions;
  c->sessions = p;
  if (++c->nsessions > SESSIONS_MAX) {  /* drop the least recent */
    for (pp = &c->sessions; (*pp)->next != NULL; pp = &(*pp)->next) {}
    SSL_SESSION_free((*pp)->sess);
    free(*pp);
    *pp = NULL;
    c->nsessions--;
  }
  return 1;
}

/* Makes a context; returns it (one reference) or NULL with err. */
static glS_tlsctx *newcontext(int server, char *err, size_t size) {
  glS_tlsctx *c = calloc(1, sizeof *c);
  initindexes();
  if (c == NULL || (c->ctx = newctx(server)) == NULL) {
    free(c);
    snprintf(err, size, "out of memory");
    return NULL;
  }
  c->refs = 1;
  c->server = server;
  SSL_CTX_set_ex_data(c->ctx, ctxindex, c);
  if (server) {
    /* Resumption by tickets only: no per-session state on the server. */
    SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_alpn_select_cb(c->ctx, onalpn, NULL);
  } else {
    SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_CLIENT
                                   | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c->ctx, onnewsession);
    SSL_CTX_set_alpn_protos(c->ctx, (const unsigned char *)"\x08http/1.1",
                            9);
  }
  return c;
}

glS_tlsctx *glS_tlsctx_new(int server, char *err, size_t size) {
  return newcontext(server, err, size);
}

/* Adds a certificate chosen by SNI to the server context c. */
static int addsni(glS_tlsctx *c, const char *cert, const char *key,
                  char *err, size_t size) {
  SSL_CTX *ctx = newctx(1), **sni;
  X509 **certs;
  if (ctx == NULL || !usecert(ctx, cert, key, err, size)) {
    SSL_CTX_free(ctx);
    return 0;
  }
  sni = realloc(c->sni, (size_t)(c->nsni + 1) * sizeof *sni);
  if (sni != NULL) c->sni = sni;
  certs = realloc(c->snicert, (size_t)(c->nsni + 1) * sizeof *certs);
  if (certs != NULL) c->snicert = certs;
  if (sni == NULL || certs == NULL) {
    SSL_CTX_free(ctx);
    snprintf(err, size, "out of memory");
    return 0;
  }
  SSL_CTX_set_alpn_select_cb(ctx, onalpn, NULL);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  c->sni[c->nsni] = ctx;
  c->snicert[c->nsni] = SSL_CTX_get0_certificate(ctx);
  X509_up_ref(c->snicert[c->nsni]);
  c->nsni++;
  if (c->nsni == 1) {
    SSL_CTX_set_tlsext_servername_callback(c->ctx, onservername);
    SSL_CTX_set_tlsext_servername_arg(c->ctx, c);
  }
  return 1;
}

/* Sets the verification of a client context: the system's CA store or
 * `cafile`; nothing when verify is 0. */
static int setverify(glS_tlsctx *c, int verify, const char *cafile,
                     char *err, size_t size) {
  char why[128];
  if (!verify) {
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    return 1;
  }
  SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
  if (cafile != NULL) {
    if (!readable("cafile", cafile, err, size)) return 0;
    if (SSL_CTX_load_verify_locations(c->ctx, cafile, NULL) != 1) {
      snprintf(err, size, "cannot load cafile '%s': %s", cafile,
               glS_tls_reason(why, sizeof why, "bad certificate"));
      return 0;
    }
  } else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
    snprintf(err, size, "cannot load the system's certificates: %s",
             glS_tls_reason(why, sizeof why, "unknown error"));
    return 0;
  }
  return 1;
}

void glS_tlsctx_prepare(glS_tlsctx *c, SSL *ssl, const char *key) {
  session *p;
  char *k;
  if (c->server || key == NULL || (k = strdup(key)) == NULL) return;
  SSL_set_ex_data(ssl, keyindex, k);
  for (p = c->sessions; p != NULL; p = p->next) {
    if (strcmp(p->key, key) == 0) {
      SSL_set_session(ssl, p->sess);
      break;
    }
  }
}
/* }====== */

/* {====== Lua: green.tls.context ====== */

typedef struct ctxbox { glS_tlsctx *c; } ctxbox;

static const void *ctxmt;

glS_tlsctx *glS_tlsctx_test(lua_State *L, int i) {
  ctxbox *b = glL_testudatap(L, i, ctxmt);
  return b != NULL ? b->c : NULL;
}

/* Pushes a Lua object holding c (taking over its reference). */
static void pushctx(lua_State *L, glS_tlsctx *c) {
  ctxbox *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->c = NULL;
  luaL_setmetatable(L, GLS_TLSCTX_TYPE);
  b->c = c;
}

/* Reads an optional string field of the table at `t`. */
static const char *optfield(lua_State *L, int t, const char *name) {
  const char *s = NULL;
  int type = lua_getfield(L, t, name);
  if (type == LUA_TSTRING) s = lua_tostring(L, -1);
  else if (type != LUA_TNIL)
    luaL_error(L, "bad option '%s' (string expected, got %s)", name,
               luaL_typename(L, -1));
  lua_pop(L, 1);  /* the table keeps the string alive */
  return s;
}

#define SNI_MAX 64

/* Makes a context from the options table at `t` (as green.tls.context);
 * returns it, or NULL with err (a file that cannot be used); raises for
 * options of the wrong type, before anything is made. */
static glS_tlsctx *fromopts(lua_State *L, int t, char *err, size_t size) {
  const char *mode = optfield(L, t, "mode");
  const char *cert = optfield(L, t, "cert"), *key = optfield(L, t, "key");
  const char *cafile = optfield(L, t, "cafile");
  const char *snicert[SNI_MAX], *snikey[SNI_MAX];
  int server, verify = 1, i, n = 0, top = lua_gettop(L);
  glS_tlsctx *c;
  if (mode == NULL) mode = cert != NULL ? "server" : "client";
  if (strcmp(mode, "server") != 0 && strcmp(mode, "client") != 0)
    luaL_error(L, "bad option 'mode' ('server' or 'client' expected)");
  server = mode[0] == 's';
  if (lua_getfield(L, t, "verify") != LUA_TNIL) verify = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (server && (cert == NULL || key == NULL))
    luaL_error(L, "a server context needs 'cert' and 'key'");
  if ((cert == NULL) != (key == NULL))
    luaL_error(L, "'cert' and 'key' go together");
  if (lua_getfield(L, t, "certs") != LUA_TNIL) {  /* chosen by SNI */
    if (!server || !lua_istable(L, -1) || (n = (int)luaL_len(L, -1)) > SNI_MAX)
      luaL_error(L, "bad option 'certs' (up to %d tables of a server's "
                    "cert and key expected)", SNI_MAX);
    for (i = 0; i < n; i++) {
      if (lua_rawgeti(L, top + 1, i + 1) != LUA_TTABLE)
        luaL_error(L, "bad option 'certs' (tables of cert and key expected)");
      snicert[i] = optfield(L, top + 2, "cert");
      snikey[i] = optfield(L, top + 2, "key");
      if (snicert[i] == NULL || snikey[i] == NULL)
        luaL_error(L, "bad option 'certs' (cert and key expected)");
      lua_pop(L, 1);  /* the certs table keeps the strings alive */
    }
  }
  if ((c = newcontext(server, err, size)) == NULL) return NULL;
  if ((cert != NULL && !usecert(c->ctx, cert, key, err, size))
      || (!server && !setverify(c, verify, cafile, err, size))) {
    glS_tlsctx_unref(c);
    return NULL;
  }
  for (i = 0; i < n; i++) {
    if (!addsni(c, snicert[i], snikey[i], err, size)) {
      glS_tlsctx_unref(c);
      return NULL;
    }
  }
  lua_settop(L, top);
  return c;
}

/* green.tls.context(opts) -> context | nil, err.  opts: mode ("server"
 * when cert is given, else "client"), cert and key (PEM files; a chain
 * in cert works), certs (further {cert=, key=} of a server, chosen by
 * the name the client asks for), cafile and verify (clients: the CAs to
 * trust instead of the system's, and whether to check at all). */
static int tls_context(lua_State *L) {
  char err[512];
  glS_tlsctx *c;
  luaL_checktype(L, 1, LUA_TTABLE);
  if ((c = fromopts(L, 1, err, sizeof err)) == NULL)
    return glL_fail(L, err);
  pushctx(L, c);
  return 1;
}

glS_tlsctx *glS_tlsctx_client(lua_State *L, int verify, const char *cafile,
                              char *err, size_t size) {
  glS_tlsctx *c;
  lua_pushfstring(L, "%d|%s", verify, cafile != NULL ? cafile : "");
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &ctxmt) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &ctxmt);
  }
  lua_pushvalue(L, -2);
  if (lua_rawget(L, -2) != LUA_TNIL) {
    c = glS_tlsctx_test(L, -1);
    lua_pop(L, 3);
    return c;
  }
  lua_pop(L, 1);
  c = newcontext(0, err, size);
  if (c != NULL && !setverify(c, verify, cafile, err, size)) {
    glS_tlsctx_unref(c);
    c = NULL;
  }
  if (c != NULL) {  /* the cache keeps its Lua object */
    lua_pushvalue(L, -2);
    pushctx(L, c);
    lua_rawset(L, -3);
  }
  lua_pop(L, 2);
  return c;
}

static int ctx_gc(lua_State *L) {
  ctxbox *b = luaL_checkudata(L, 1, GLS_TLSCTX_TYPE);
  if (b->c != NULL) glS_tlsctx_unref(b->c);
  b->c = NULL;
  return 0;
}

static int ctx_tostring(lua_State *L) {
  ctxbox *b = luaL_checkudata(L, 1, GLS_TLSCTX_TYPE);
  lua_pushfstring(L, "%s{%s}: %p", GLS_TLSCTX_TYPE,
                  b->c != NULL && b->c->server ? "server" : "client",
                  (void *)b);
  return 1;
}

static const luaL_Reg ctx_meta[] = {
  {"__gc", ctx_gc},
  {"__tostring", ctx_tostring},
  {NULL, NULL}
};

int luaopen_green_tls(lua_State *L);
int luaopen_green_tls(lua_State *L) {
  glS_init();
  glL_newclass(L, GLS_TLSCTX_TYPE, NULL, ctx_meta);
  glL_setmtkey(L, &ctxmt);
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, tls_context);
  lua_setfield(L, -2, "context");
  lua_setfield(L, -2, "tls");
  return 0;
}
/* }====== */
