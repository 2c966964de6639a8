/* LuaSec's ssl module on the green TLS layer (bindings/net/tls.c): under
 * greenlua, require "ssl" gives ssl.newcontext, ssl.wrap, ssl.config and
 * ssl.loadcertificate with LuaSec's API, so that LuaSec's own ssl.https
 * (Debian's lua-sec) and the libraries written on LuaSec run unchanged,
 * and each of their blocking calls parks only its greenthread.
 *
 * A context (SSL:Context) is a glS_tlsctx whose SSL_CTX is set up from
 * LuaSec's parameters.  ssl.wrap moves the connected LuaSocket object
 * into a new one (SSL:Connection), as LuaSec takes the socket's fd over:
 * the old object is left closed.  Its handshake is the TLS layer's, run in
 * the read callbacks; its receive, send, timeouts and statistics are
 * LuaSocket's (ls_stream.c), with LuaSec's "wantread" and "wantwrite" for
 * a timeout.  LuaSec's C modules (ssl.core, ssl.context) are never
 * loaded: they would block the hub. */
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "luassl.h"

#define CTX_TYPE "SSL:Context"
#define CONN_TYPE "SSL:Connection"

typedef struct sslctx {
  glS_tlsctx *c;       /* one reference */
  int server;
} sslctx;

typedef struct glC_ssl {
  glC_sock sock;       /* first: a LuaSocket stream object */
  glS_tlsctx *ctx;     /* one reference, NULL once closed */
  int server;
  int reported;        /* dohandshake saw the handshake end */
  int failed;          /* ... and it failed: calls say "closed" */
  char sni[256];       /* the name a client sends ("": none) */
} glC_ssl;

static lua_CFunction streamfn(const char *name) {
  const luaL_Reg *m;
  for (m = glC_stream_methods; m->name != NULL; m++)
    if (strcmp(m->name, name) == 0) return m->func;
  return NULL;
}

static glC_ssl *checkconn(lua_State *L) {
  return (glC_ssl *)glC_check(L, GLC_CLIENT);
}

static sslctx *checkctx(lua_State *L, int i) {
  return luaL_checkudata(L, i, CTX_TYPE);
}

/* {====== Contexts ====== */

/* LuaSec's option names and OpenSSL's bits (0: obsolete in OpenSSL 3). */
static const struct { const char *name; uint64_t bit; } sslopts[] = {
  {"all", SSL_OP_ALL},
  {"allow_client_renegotiation", SSL_OP_ALLOW_CLIENT_RENEGOTIATION},
  {"allow_no_dhe_kex", SSL_OP_ALLOW_NO_DHE_KEX},
  {"allow_unsafe_legacy_renegotiation",
   SSL_OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION},
  {"cipher_server_preference", SSL_OP_CIPHER_SERVER_PREFERENCE},
  {"cisco_anyconnect", SSL_OP_CISCO_ANYCONNECT},
  {"cleanse_plaintext", SSL_OP_CLEANSE_PLAINTEXT},
  {"cookie_exchange", SSL_OP_COOKIE_EXCHANGE},
  {"cryptopro_tlsext_bug", SSL_OP_CRYPTOPRO_TLSEXT_BUG},
  {"disable_tlsext_ca_names", SSL_OP_DISABLE_TLSEXT_CA_NAMES},
  {"dont_insert_empty_fragments", SSL_OP_DONT_INSERT_EMPTY_FRAGMENTS},
  {"enable_ktls", SSL_OP_ENABLE_KTLS},
  {"enable_middlebox_compat", SSL_OP_ENABLE_MIDDLEBOX_COMPAT},
  {"ephemeral_rsa", 0},
  {"ignore_unexpected_eof", SSL_OP_IGNORE_UNEXPECTED_EOF},
  {"legacy_server_connect", SSL_OP_LEGACY_SERVER_CONNECT},
  {"microsoft_big_sslv3_buffer", 0},
  {"microsoft_sess_id_bug", 0},
  {"msie_sslv2_rsa_padding", 0},
  {"netscape_ca_dn_bug", 0},
  {"netscape_challenge_bug", 0},
  {"netscape_demo_cipher_change_bug", 0},
  {"netscape_reuse_cipher_change_bug", 0},
  {"no_anti_replay", SSL_OP_NO_ANTI_REPLAY},
  {"no_compression", SSL_OP_NO_COMPRESSION},
  {"no_dtls_mask", SSL_OP_NO_DTLS_MASK},
  {"no_dtlsv1", SSL_OP_NO_DTLSv1},
  {"no_dtlsv1_2", SSL_OP_NO_DTLSv1_2},
  {"no_encrypt_then_mac", SSL_OP_NO_ENCRYPT_THEN_MAC},
  {"no_extended_master_secret", SSL_OP_NO_EXTENDED_MASTER_SECRET},
  {"no_query_mtu", SSL_OP_NO_QUERY_MTU},
  {"no_renegotiation", SSL_OP_NO_RENEGOTIATION},
  {"no_session_resumption_on_renegotiation",
   SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION},
  {"no_ssl_mask", SSL_OP_NO_SSL_MASK},
  {"no_sslv2", 0},
  {"no_sslv3", SSL_OP_NO_SSLv3},
  {"no_ticket", SSL_OP_NO_TICKET},
  {"no_tlsv1", SSL_OP_NO_TLSv1},
  {"no_tlsv1_1", SSL_OP_NO_TLSv1_1},
  {"no_tlsv1_2", SSL_OP_NO_TLSv1_2},
  {"no_tlsv1_3", SSL_OP_NO_TLSv1_3},
  {"pkcs1_check_1", 0},
  {"pkcs1_check_2", 0},
  {"prioritize_chacha", SSL_OP_PRIORITIZE_CHACHA},
  {"safari_ecdhe_ecdsa_bug", SSL_OP_SAFARI_ECDHE_ECDSA_BUG},
  {"single_dh_use", 0},
  {"single_ecdh_use", 0},
  {"ssleay_080_client_dh_bug", 0},
  {"sslref2_reuse_cert_type_bug", 0},
  {"tls_block_padding_bug", 0},
  {"tls_d5_bug", 0},
  {"tls_rollback_bug", SSL_OP_TLS_ROLLBACK_BUG},
  {"tlsext_padding", SSL_OP_TLSEXT_PADDING},
  {NULL, 0}
};

static const struct { const char *name; int version; } protocols[] = {
  {"any", 0}, {"tlsv1", TLS1_VERSION}, {"tlsv1_1", TLS1_1_VERSION},
  {"tlsv1_2", TLS1_2_VERSION}, {"tlsv1_3", TLS1_3_VERSION}, {NULL, 0}
};

/* Calls f(L, name, ud) for a parameter that is a string or an array of
 * strings (LuaSec's verify, options, verifyext); stops at the first
 * failure, which it returns. */
static const char *eachname(lua_State *L, int idx,
                            const char *(*f)(const char *, void *), void *ud) {
  const char *e = NULL;
  int i;
  if (lua_type(L, idx) == LUA_TSTRING) return f(lua_tostring(L, idx), ud);
  if (!lua_istable(L, idx)) return "invalid parameter type";
  for (i = 1; e == NULL && lua_rawgeti(L, idx, i) == LUA_TSTRING; i++) {
    e = f(lua_tostring(L, -1), ud);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return e;
}

static char errbuf[320];

static const char *fmterr(const char *what, const char *arg) {
  snprintf(errbuf, sizeof errbuf, "%s (%s)", what, arg);
  return errbuf;
}

/* OpenSSL's reason for the last failure, as LuaSec shows it. */
static const char *reason(void) {
  static char why[200];
  unsigned long e = ERR_get_error();
  const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
  snprintf(why, sizeof why, "%s", r != NULL ? r : "(null)");
  ERR_clear_error();
  return why;
}

static const char *addverify(const char *name, void *ud) {
  int *mode = ud;
  if (strcmp(name, "none") == 0) *mode |= SSL_VERIFY_NONE;
  else if (strcmp(name, "peer") == 0) *mode |= SSL_VERIFY_PEER;
  else if (strcmp(name, "client_once") == 0) *mode |= SSL_VERIFY_CLIENT_ONCE;
  else if (strcmp(name, "fail_if_no_peer_cert") == 0)
    *mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  else return fmterr("invalid verify option", name);
  return NULL;
}

static const char *addoption(const char *name, void *ud) {
  uint64_t *bits = ud;
  int i;
  for (i = 0; sslopts[i].name != NULL; i++) {
    if (strcmp(sslopts[i].name, name) == 0) {
      *bits |= sslopts[i].bit;
      return NULL;
    }
  }
  return fmterr("invalid option", name);
}

/* verifyext flags: lsec_continue (the handshake goes on whatever the
 * verification says; getpeerverification tells), the others X509's. */
static const char *addverifyext(const char *name, void *ud) {
  unsigned long *flags = ud;
  if (strcmp(name, "lsec_continue") == 0) *flags |= 1;
  else if (strcmp(name, "lsec_ignore_purpose") == 0) *flags |= 2;
  else if (strcmp(name, "crl_check") == 0) *flags |= 4;
  else if (strcmp(name, "crl_check_chain") == 0) *flags |= 8;
  else return fmterr("invalid verify option", name);
  return NULL;
}

/* Verification that lets the handshake go on (lsec_continue), keeping
 * each failure with its depth for getpeerverification (SSL ex data: a
 * list of (depth, error) pairs, the first element their count). */
#define MAXVERRORS 32
static int verrindex = -1;

static void freeverrors(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                        long argl, void *argp) {
  GL_UNUSED(parent); GL_UNUSED(ad); GL_UNUSED(idx); GL_UNUSED(argl);
  GL_UNUSED(argp);
  free(ptr);
}

static int letgo(int ok, X509_STORE_CTX *x) {
  SSL *ssl = X509_STORE_CTX_get_ex_data(x,
                                        SSL_get_ex_data_X509_STORE_CTX_idx());
  int *errs;
  if (ok || ssl == NULL || verrindex < 0) return 1;
  if ((errs = SSL_get_ex_data(ssl, verrindex)) == NULL) {
    if ((errs = calloc(1 + 2 * MAXVERRORS, sizeof *errs)) == NULL) return 1;
    SSL_set_ex_data(ssl, verrindex, errs);
  }
  if (errs[0] < MAXVERRORS) {
    errs[1 + 2 * errs[0]] = X509_STORE_CTX_get_error_depth(x);
    errs[2 + 2 * errs[0]] = X509_STORE_CTX_get_error(x);
    errs[0]++;
  }
  return 1;
}

/* A field of the table at 1 as a string, or NULL. */
static const char *field(lua_State *L, int t, const char *name) {
  const char *s = NULL;
  if (lua_getfield(L, t, name) == LUA_TSTRING) s = lua_tostring(L, -1);
  lua_pop(L, 1);  /* the table keeps it */
  return s;
}

/* Loads a key (with its password, a string or a function that returns
 * one, called here) and a certificate chain into ctx. */
static const char *usecert(lua_State *L, SSL_CTX *ctx, int t) {
  const char *key = field(L, t, "key"), *cert = field(L, t, "certificate");
  const char *pass = NULL;
  lua_getfield(L, t, "password");
  if (lua_isfunction(L, -1)) {
    if (lua_pcall(L, 0, 1, 0) != LUA_OK || !lua_isstring(L, -1))
      return "error loading private key (password callback failed)";
  } else if (!lua_isnil(L, -1) && !lua_isstring(L, -1)) {
    return "invalid password type";
  }
  pass = lua_tostring(L, -1);  /* kept on the stack until newcontext ends */
  if (key != NULL) {
    SSL_CTX_set_default_passwd_cb_userdata(ctx, (void *)pass);
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
      return fmterr("error loading private key", reason());
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
  }
  if (cert != NULL) {
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
      return fmterr("error loading certificate", reason());
    if (key != NULL && SSL_CTX_check_private_key(ctx) != 1)
      return "private key does not match public key";
  }
  return NULL;
}

/* The ALPN list of a client (a string or an array) in wire format. */
static const char *alpnwire(lua_State *L, int idx, luaL_Buffer *b) {
  size_t len;
  const char *p;
  int i;
  luaL_buffinit(L, b);
  if (lua_type(L, idx) == LUA_TSTRING) {
    p = lua_tolstring(L, idx, &len);
    if (len == 0 || len > 255) return "invalid ALPN name";
    luaL_addchar(b, (char)len);
    luaL_addlstring(b, p, len);
    return NULL;
  }
  if (!lua_istable(L, idx)) return "invalid ALPN parameter";
  for (i = 1; lua_rawgeti(L, idx, i) != LUA_TNIL; i++) {
    p = lua_tolstring(L, -1, &len);
    lua_pop(L, 1);
    if (p == NULL || len == 0 || len > 255) return "invalid ALPN name";
    luaL_addchar(b, (char)len);
    luaL_addlstring(b, p, len);
  }
  lua_pop(L, 1);
  return i == 1 ? "invalid ALPN list (empty)" : NULL;
}

/* A server's ALPN choice: the first of its list (SSL_CTX ex data) the
 * client offers. */
static int alpnindex = -1;

static int onalpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                  const unsigned char *in, unsigned int inlen, void *arg) {
  const unsigned char *mine = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl),
                                                  alpnindex);
  GL_UNUSED(arg);
  if (mine == NULL) return SSL_TLSEXT_ERR_NOACK;
  if (SSL_select_next_proto((unsigned char **)out, outlen, mine + 1,
                            mine[0], in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  return SSL_TLSEXT_ERR_OK;
}

static void freealpn(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                     long argl, void *argp) {
  GL_UNUSED(parent); GL_UNUSED(ad); GL_UNUSED(idx); GL_UNUSED(argl);
  GL_UNUSED(argp);
  free(ptr);
}

/* Sets ALPN up from cfg.alpn (at idx). */
static const char *usealpn(lua_State *L, SSL_CTX *ctx, int server, int idx) {
  luaL_Buffer b;
  const char *e = alpnwire(L, idx, &b);
  size_t len;
  const char *wire;
  unsigned char *mine;
  if (e != NULL) return e;
  luaL_pushresult(&b);
  wire = lua_tolstring(L, -1, &len);
  if (!server) {
    if (SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)wire,
                                (unsigned)len) != 0)
      return "error setting ALPN";
    return NULL;
  }
  if (len > 255 * 2 || (mine = malloc(len + 1)) == NULL)
    return "invalid ALPN parameter";
  if (alpnindex < 0)
    alpnindex = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, freealpn);
  mine[0] = (unsigned char)len;  /* the length, then the list */
  memcpy(mine + 1, wire, len);
  SSL_CTX_set_ex_data(ctx, alpnindex, mine);
  SSL_CTX_set_alpn_select_cb(ctx, onalpn, NULL);
  return NULL;
}

/* Sets ctx up from LuaSec's parameters (the table at t, mode given);
 * returns NULL or what failed, as LuaSec says it. */
static const char *configure(lua_State *L, SSL_CTX *ctx, int t, int server) {
  const char *proto = field(L, t, "protocol"), *s, *e;
  const char *cafile = field(L, t, "cafile"), *capath = field(L, t, "capath");
  int i, version = -1, mode = SSL_VERIFY_NONE, top = lua_gettop(L);
  uint64_t bits = 0;
  unsigned long ext = 0;
  for (i = 0; protocols[i].name != NULL; i++)
    if (proto == NULL || strcmp(proto, protocols[i].name) == 0)
      version = protocols[i].version;
  if (version < 0) return fmterr("invalid protocol", proto);
  SSL_CTX_set_min_proto_version(ctx, version);
  SSL_CTX_set_max_proto_version(ctx, version);
  if (!server) SSL_CTX_set_alpn_protos(ctx, NULL, 0);  /* none unless asked */
  if (lua_getfield(L, t, "certificates") == LUA_TTABLE) {
    for (i = 1; lua_rawgeti(L, top + 1, i) == LUA_TTABLE; i++) {
      if ((e = usecert(L, ctx, lua_gettop(L))) != NULL) return e;
      lua_settop(L, top + 1);
    }
  } else if ((e = usecert(L, ctx, t)) != NULL) {
    return e;
  }
  lua_settop(L, top);
  if ((cafile != NULL || capath != NULL)
      && SSL_CTX_load_verify_locations(ctx, cafile, capath) != 1)
    return fmterr("error loading CA locations", reason());
  if ((s = field(L, t, "ciphers")) != NULL
      && SSL_CTX_set_cipher_list(ctx, s) != 1)
    return fmterr("error setting cipher list", reason());
  if ((s = field(L, t, "ciphersuites")) != NULL
      && SSL_CTX_set_ciphersuites(ctx, s) != 1)
    return fmterr("error setting cipher suites", reason());
  lua_getfield(L, t, "verifyext");
  if (!lua_isnil(L, -1) && (e = eachname(L, -1, addverifyext, &ext)) != NULL)
    return e;
  lua_getfield(L, t, "verify");
  if (!lua_isnil(L, -1) && (e = eachname(L, -1, addverify, &mode)) != NULL)
    return e;
  if ((ext & 1) && verrindex < 0)
    verrindex = SSL_get_ex_new_index(0, NULL, NULL, NULL, freeverrors);
  SSL_CTX_set_verify(ctx, mode, (ext & 1) ? letgo : NULL);
  if (ext & 2) X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(ctx), 0);
  if (ext & 4)
    X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_CRL_CHECK);
  if (ext & 8)
    X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx),
                                X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  lua_getfield(L, t, "options");
  if (!lua_isnil(L, -1) && (e = eachname(L, -1, addoption, &bits)) != NULL)
    return e;
  SSL_CTX_set_options(ctx, bits);
  if (lua_getfield(L, t, "depth") == LUA_TNUMBER)
    SSL_CTX_set_verify_depth(ctx, (int)lua_tointeger(L, -1));
  if (lua_getfield(L, t, "dhparam") != LUA_TNIL) {
    if (!lua_isfunction(L, -1)) return "invalid DH parameter type";
    SSL_CTX_set_dh_auto(ctx, 1);  /* OpenSSL's own groups */
  }
  if ((s = field(L, t, "curveslist")) == NULL) s = field(L, t, "curve");
  if (s != NULL && SSL_CTX_set1_curves_list(ctx, s) != 1)
    return fmterr("elliptic curve not supported", s);
  if (lua_getfield(L, t, "alpn") != LUA_TNIL) {
    if (lua_isfunction(L, -1))
      return "ALPN callback functions are not supported under greenlua";
    if ((e = usealpn(L, ctx, server, lua_gettop(L))) != NULL) return e;
  }
  lua_settop(L, top);
  return NULL;
}

/* ssl.newcontext(params) -> context | nil, err */
static int ssl_newcontext(lua_State *L) {
  const char *mode, *e;
  char err[512];
  sslctx *x;
  int top;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  mode = field(L, 1, "mode");
  if (mode == NULL || (strcmp(mode, "client") && strcmp(mode, "server")))
    return glC_fail(L, "invalid mode");
  x = lua_newuserdatauv(L, sizeof *x, 0);  /* 2 */
  x->c = NULL;
  x->server = mode[0] == 's';
  luaL_setmetatable(L, CTX_TYPE);
  if ((x->c = glS_tlsctx_new(x->server, err, sizeof err)) == NULL)
    return glC_fail(L, err);
  top = lua_gettop(L);
  ERR_clear_error();
  e = configure(L, glS_tlsctx_get(x->c), 1, x->server);
  lua_settop(L, top);
  if (e != NULL) return glC_fail(L, e);
  return 1;
}

/* ctx:setverifyext(...): as the parameter verifyext */
static int ctx_setverifyext(lua_State *L) {
  sslctx *x = checkctx(L, 1);
  SSL_CTX *ctx = glS_tlsctx_get(x->c);
  unsigned long ext = 0;
  const char *e = NULL;
  int i, n = lua_gettop(L);
  for (i = 2; e == NULL && i <= n; i++)
    e = addverifyext(luaL_checkstring(L, i), &ext);
  if (e != NULL) return glC_fail(L, e);
  if ((ext & 1) && verrindex < 0)
    verrindex = SSL_get_ex_new_index(0, NULL, NULL, NULL, freeverrors);
  if (ext & 1) SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), letgo);
  if (ext & 2) X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(ctx), 0);
  lua_pushboolean(L, 1);
  return 1;
}

static int ctx_gc(lua_State *L) {
  sslctx *x = checkctx(L, 1);
  if (x->c != NULL) glS_tlsctx_unref(x->c);
  x->c = NULL;
  return 0;
}

static int ctx_tostring(lua_State *L) {
  lua_pushfstring(L, "SSL context: %p", lua_touserdata(L, 1));
  return 1;
}
/* }====== */

/* {====== Connections ====== */

/* ssl.wrap(sock, params | context) -> connection | nil, err.  sock is a
 * LuaSocket stream object; once connected, its connection moves into the
 * new object, and sock is left closed. */
static int ssl_wrap(lua_State *L) {
  sslctx *x;
  glC_sock *s;
  glC_ssl *c;
  int e;
  lua_settop(L, 2);
  if (lua_istable(L, 2)) {
    lua_pushcfunction(L, ssl_newcontext);
    lua_pushvalue(L, 2);
    lua_call(L, 1, 2);
    if (lua_isnil(L, -2)) return 2;
    lua_pop(L, 1);
    lua_replace(L, 2);
  }
  x = checkctx(L, 2);
  if (glC_role(L, 1) < 0) luaL_typeerror(L, 1, "LuaSocket stream");
  s = lua_touserdata(L, 1);
  c = (glC_ssl *)glC_newsockx(L, sizeof *c);  /* 3 */
  memset((char *)c + sizeof c->sock, 0, sizeof *c - sizeof c->sock);
  luaL_setmetatable(L, CONN_TYPE);
  c->server = x->server;
  c->ctx = x->c;
  glS_tlsctx_ref(c->ctx);
  if (s->s.state == GLS_CONNECTED) {
    if ((e = glS_move(L, 1, 3)) < 0)
      return glC_fail(L, e == UV_EBUSY ? "socket busy" : "invalid socket");
    c->sock.family = s->family;
    glC_applytimeouts(&c->sock);  /* none: a new object's */
  } else if (s->s.fd >= 0 && s->s.h == NULL) {  /* takes the fd, as LuaSec */
    c->sock.s.fd = s->s.fd;
    c->sock.s.state = GLS_BOUND;
    s->s.fd = -1;
    s->s.state = GLS_CLOSED;
  }
  return 1;
}

/* LuaSec's text for a failed handshake. */
static const char *hsfailure(glC_ssl *c) {
  char buf[200];
  const char *m = glS_errtext(&c->sock.s, GLS_ETLS, buf, sizeof buf);
  if (strncmp(m, "certificate verify failed", 25) == 0)
    return "certificate verify failed";
  if (strncmp(m, "handshake failed: ", 18) == 0) return m + 18;
  return m;
}

/* conn:dohandshake() -> true | false, err ("wantread" when it must wait
 * longer than the timeout allows: call again, after socket.select) */
static int conn_dohandshake(lua_State *L) {
  glC_ssl *c = checkconn(L);
  glS_stream *s = &c->sock.s;
  const char *e;
  uint64_t wait;
  int rc, st;
  if (c->failed || s->state == GLS_CLOSED) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (s->state != GLS_CONNECTED) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, glS_luasocketerror(s->fd < 0 ? UV_EBADF : UV_ENOTCONN));
    return 2;
  }
  if (glS_tls_state(s) == GLS_TLS_NONE) {
    if (s->wbusy || s->writeq.head != NULL) {
      lua_pushboolean(L, 0);
      lua_pushliteral(L, "socket busy");
      return 2;
    }
    e = glS_tls_begin(s, c->ctx, c->server || !c->sni[0] ? NULL : c->sni, 0);
    if (e != NULL) {
      lua_pushboolean(L, 0);
      lua_pushstring(L, e);
      return 2;
    }
  }
  if (glS_tls_state(s) == GLS_TLS_RUNNING) glS_readnow(s);
  wait = glC_stepwait(&c->sock);
  if (glS_tls_state(s) == GLS_TLS_RUNNING && wait > 0) {
    rc = glS_tls_wait(s, glL_deadline(wait));
    glL_raisepending(L, rc);
  }
  st = glS_tls_state(s);
  if (s->state == GLS_CLOSED) st = GLS_TLS_FAILED;
  if (st == GLS_TLS_RUNNING) {
    /* Let the kernel keep what comes, so that select sees it. */
    glS_stopreading(s);
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "wantread");
    return 2;
  }
  c->reported = 1;
  if (st == GLS_TLS_FAILED) {
    c->failed = 1;
    lua_pushboolean(L, 0);
    lua_pushstring(L, s->state == GLS_CLOSED ? "closed" : hsfailure(c));
    return 2;
  }
  glS_afterread(s);  /* reading on, for receives */
  lua_pushboolean(L, 1);
  return 1;
}

int glC_sslready(lua_State *L, int idx) {
  glC_ssl *c;
  if (!luaL_testudata(L, idx, CONN_TYPE)) return 0;
  c = lua_touserdata(L, idx);
  return !c->reported && glS_tls_state(&c->sock.s) > GLS_TLS_RUNNING;
}

/* Replaces a LuaSocket "timeout" among the results on the stack with
 * LuaSec's "wantread" (ctx 0) or "wantwrite" (ctx 1). */
static int wantk(lua_State *L, int status, lua_KContext ctx) {
  const char *e;
  GL_UNUSED(status);
  if (lua_gettop(L) >= 2 && lua_isnil(L, 1)
      && (e = lua_tostring(L, 2)) != NULL && strcmp(e, "timeout") == 0) {
    lua_pushstring(L, ctx ? "wantwrite" : "wantread");
    lua_replace(L, 2);
  }
  return lua_gettop(L);
}

/* Calls the LuaSocket stream method `name` with this call's arguments,
 * with the results of wantk (the call may park and unwind). */
static int passwant(lua_State *L, const char *name, int write) {
  glC_ssl *c = checkconn(L);
  if (glS_tls_state(&c->sock.s) != GLS_TLS_DONE || c->failed) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    if (write) lua_pushnumber(L, 0);
    else lua_pushliteral(L, "");
    return 3;
  }
  lua_pushinteger(L, GLC_SSL);
  lua_pushcclosure(L, streamfn(name), 1);
  lua_insert(L, 1);
  lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, write, wantk);
  return wantk(L, LUA_OK, write);
}

/* conn:receive([pattern], [prefix]), conn:send(data, [i], [j]): as
 * LuaSocket's, once the handshake is done */
static int conn_receive(lua_State *L) { return passwant(L, "receive", 0); }
static int conn_send(lua_State *L) { return passwant(L, "send", 1); }

/* conn:close(): sends close_notify as far as the socket takes it at
 * once, and closes */
static int conn_close(lua_State *L) {
  glC_ssl *c = checkconn(L);
  glS_close(&c->sock.s);
  if (c->sock.s.anchored) {
    lua_pushnil(L);
    lua_setiuservalue(L, 1, 1);
    c->sock.s.anchored = 0;
  }
  if (c->ctx != NULL) glS_tlsctx_unref(c->ctx);
  c->ctx = NULL;
  return 0;
}

static int conn_gc(lua_State *L) {
  glC_ssl *c = lua_touserdata(L, 1);
  glS_close(&c->sock.s);
  if (c->ctx != NULL) glS_tlsctx_unref(c->ctx);
  c->ctx = NULL;
  return 0;
}

static int conn_tostring(lua_State *L) {
  glC_ssl *c = lua_touserdata(L, 1);
  lua_pushfstring(L, "SSL connection: %p%s", (void *)c,
                  c->sock.s.state == GLS_CLOSED ? " (closed)" : "");
  return 1;
}

/* conn:sni(name): the server name a client sends (before dohandshake). */
static int conn_sni(lua_State *L) {
  glC_ssl *c = checkconn(L);
  size_t len;
  const char *name;
  if (c->server) return luaL_error(L, "sni: server names by context are "
                                      "not supported under greenlua");
  name = luaL_checklstring(L, 2, &len);
  luaL_argcheck(L, len < sizeof c->sni, 2, "name too long");
  memcpy(c->sni, name, len + 1);
  return 0;
}

/* The connection's SSL once its handshake is done, or NULL. */
static SSL *connssl(glC_ssl *c) {
  return glS_tls_state(&c->sock.s) == GLS_TLS_DONE
             ? glS_tls_ssl(&c->sock.s) : NULL;
}

/* conn:getpeercertificate([n=1]) -> certificate | nil: the peer's (1),
 * or the n-th of the chain it sent */
static int conn_getpeercertificate(lua_State *L) {
  glC_ssl *c = checkconn(L);
  int n = (int)luaL_optinteger(L, 2, 1);
  SSL *ssl = connssl(c);
  STACK_OF(X509) *chain;
  X509 *x;
  lua_pushnil(L);
  if (ssl == NULL || n < 1) return 1;
  if (n == 1) {
    if ((x = SSL_get1_peer_certificate(ssl)) == NULL) return 1;
  } else {
    chain = SSL_get_peer_cert_chain(ssl);
    if (c->server) n--;  /* a server's chain has no peer certificate */
    if (chain == NULL || n > sk_X509_num(chain)) return 1;
    x = sk_X509_value(chain, n - 1);
    X509_up_ref(x);
  }
  glC_pushcert(L, x);
  return 1;
}

/* conn:getpeerchain() -> {certificates} | nil */
static int conn_getpeerchain(lua_State *L) {
  glC_ssl *c = checkconn(L);
  SSL *ssl = connssl(c);
  STACK_OF(X509) *chain = ssl != NULL ? SSL_get_peer_cert_chain(ssl) : NULL;
  X509 *x;
  int i, n;
  if (chain == NULL) return 0;
  n = sk_X509_num(chain);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    x = sk_X509_value(chain, i);
    X509_up_ref(x);
    glC_pushcert(L, x);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* conn:getpeerverification() -> true | false, err: with lsec_continue,
 * err is {[depth + 1] = {errors}} */
static int conn_getpeerverification(lua_State *L) {
  glC_ssl *c = checkconn(L);
  SSL *ssl = connssl(c);
  int *errs, i;
  long v;
  if (ssl == NULL || c->failed) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (verrindex >= 0 && (errs = SSL_get_ex_data(ssl, verrindex)) != NULL) {
    lua_pushboolean(L, 0);
    lua_newtable(L);
    for (i = 0; i < errs[0]; i++) {
      if (lua_rawgeti(L, -1, errs[1 + 2 * i] + 1) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, errs[1 + 2 * i] + 1);
      }
      lua_pushstring(L, X509_verify_cert_error_string(errs[2 + 2 * i]));
      lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
      lua_pop(L, 1);
    }
    return 2;
  }
  if ((v = SSL_get_verify_result(ssl)) == X509_V_OK) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_pushstring(L, X509_verify_cert_error_string(v));
  return 2;
}

static int pushfinished(lua_State *L, int peer) {
  glC_ssl *c = checkconn(L);
  SSL *ssl = connssl(c);
  char buf[128];
  size_t n;
  if (ssl == NULL) return 0;
  n = peer ? SSL_get_peer_finished(ssl, buf, sizeof buf)
           : SSL_get_finished(ssl, buf, sizeof buf);
  if (n == 0) return 0;
  lua_pushlstring(L, buf, n);
  return 1;
}

static int conn_getfinished(lua_State *L) { return pushfinished(L, 0); }
static int conn_getpeerfinished(lua_State *L) { return pushfinished(L, 1); }

/* Sets t[key] to the n-th word of `d` after `prefix` ("Kx=ECDH"). */
static void describe(lua_State *L, const char *d, const char *prefix,
                     const char *key) {
  const char *p = strstr(d, prefix), *q;
  if (p == NULL) return;
  p += strlen(prefix);
  for (q = p; *q && *q != ' ' && *q != '\n'; q++) {}
  lua_pushlstring(L, p, (size_t)(q - p));
  lua_setfield(L, -2, key);
}

/* conn:info([field]) -> {cipher=, protocol=, key=, authentication=,
 * encryption=, mac=, bits=, algbits=, export=} or that field */
static int conn_info(lua_State *L) {
  glC_ssl *c = checkconn(L);
  SSL *ssl = connssl(c);
  const SSL_CIPHER *cipher;
  char d[256];
  int bits, algbits;
  if (!lua_isnoneornil(L, 2)) luaL_checkstring(L, 2);
  lua_settop(L, 2);
  if (ssl == NULL || (cipher = SSL_get_current_cipher(ssl)) == NULL)
    return 0;
  SSL_CIPHER_description(cipher, d, sizeof d);
  bits = SSL_CIPHER_get_bits(cipher, &algbits);
  lua_createtable(L, 0, 9);
  lua_pushstring(L, SSL_CIPHER_get_name(cipher));
  lua_setfield(L, -2, "cipher");
  lua_pushstring(L, SSL_get_version(ssl));
  lua_setfield(L, -2, "protocol");
  describe(L, d, "Kx=", "key");
  describe(L, d, "Au=", "authentication");
  describe(L, d, "Enc=", "encryption");
  describe(L, d, "Mac=", "mac");
  lua_pushinteger(L, bits);
  lua_setfield(L, -2, "bits");
  lua_pushinteger(L, algbits);
  lua_setfield(L, -2, "algbits");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "export");
  if (!lua_isnil(L, 2)) lua_getfield(L, -1, lua_tostring(L, 2));
  return 1;
}

/* conn:getalpn() -> the protocol agreed on | nil */
static int conn_getalpn(lua_State *L) {
  glC_ssl *c = checkconn(L);
  SSL *ssl = connssl(c);
  const unsigned char *p;
  unsigned len;
  lua_pushnil(L);
  if (ssl == NULL) return 1;
  SSL_get0_alpn_selected(ssl, &p, &len);
  if (len == 0) return 1;
  lua_pushlstring(L, (const char *)p, len);
  return 1;
}

/* conn:getsniname() -> the server name the client sent | nil */
static int conn_getsniname(lua_State *L) {
  glC_ssl *c = checkconn(L);
  SSL *ssl = connssl(c);
  const char *name;
  lua_pushnil(L);
  if (ssl == NULL) return 1;
  if ((name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) == NULL)
    return 1;
  lua_pushstring(L, name);
  return 1;
}

/* conn:want() -> "nothing" | "read": what the connection waits for */
static int conn_want(lua_State *L) {
  glC_ssl *c = checkconn(L);
  lua_pushstring(L, glS_tls_state(&c->sock.s) == GLS_TLS_RUNNING ? "read"
                                                                  : "nothing");
  return 1;
}

/* conn:exportkeyingmaterial(label, length, [context]) -> bytes | nil */
static int conn_exportkeyingmaterial(lua_State *L) {
  glC_ssl *c = checkconn(L);
  size_t llen, clen = 0;
  const char *label = luaL_checklstring(L, 2, &llen);
  lua_Integer n = luaL_checkinteger(L, 3);
  const char *context = luaL_optlstring(L, 4, NULL, &clen);
  SSL *ssl = connssl(c);
  unsigned char *out;
  luaL_argcheck(L, n > 0 && n <= 65536, 3, "invalid length");
  if (ssl == NULL) return 0;
  out = lua_newuserdatauv(L, (size_t)n, 0);
  if (SSL_export_keying_material(ssl, out, (size_t)n, label, llen,
                                 (const unsigned char *)context, clen,
                                 context != NULL) != 1)
    return 0;
  lua_pushlstring(L, (const char *)out, (size_t)n);
  return 1;
}

/* conn:setdane(), conn:settlsa(): DANE is not provided */
static int conn_nodane(lua_State *L) {
  checkconn(L);
  return glC_fail(L, "DANE is not supported under greenlua");
}
/* }====== */

/* {====== The module ====== */

/* ssl.config: what this build can do, as LuaSec's. */
static void pushconfig(lua_State *L) {
  int i;
  lua_createtable(L, 0, 5);
  lua_createtable(L, 0, 4);
  for (i = 1; protocols[i].name != NULL; i++) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, protocols[i].name);
  }
  lua_setfield(L, -2, "protocols");
  lua_newtable(L);
  for (i = 0; sslopts[i].name != NULL; i++) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, sslopts[i].name);
  }
  lua_setfield(L, -2, "options");
  lua_createtable(L, 0, 1);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "ec");
  lua_setfield(L, -2, "algorithms");
  lua_createtable(L, 0, 3);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "alpn");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "curves_list");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "ecdh_auto");
  lua_setfield(L, -2, "capabilities");
  lua_newtable(L);
  {
    static const char *const curves[] = {"P-256", "P-384", "P-521",
                                         "X25519", "X448", "prime256v1",
                                         "secp384r1", "secp521r1", NULL};
    for (i = 0; curves[i] != NULL; i++) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, curves[i]);
    }
  }
  lua_setfield(L, -2, "curves");
}

static const luaL_Reg ctx_methods[] = {
  {"setverifyext", ctx_setverifyext},
  {NULL, NULL}
};

static const luaL_Reg ctx_meta[] = {
  {"__gc", ctx_gc},
  {"__close", ctx_gc},
  {"__tostring", ctx_tostring},
  {NULL, NULL}
};

static const luaL_Reg conn_methods[] = {
  {"dohandshake", conn_dohandshake},
  {"receive", conn_receive},
  {"send", conn_send},
  {"close", conn_close},
  {"sni", conn_sni},
  {"getpeercertificate", conn_getpeercertificate},
  {"getpeerchain", conn_getpeerchain},
  {"getpeerverification", conn_getpeerverification},
  {"getfinished", conn_getfinished},
  {"getpeerfinished", conn_getpeerfinished},
  {"info", conn_info},
  {"getalpn", conn_getalpn},
  {"getsniname", conn_getsniname},
  {"want", conn_want},
  {"exportkeyingmaterial", conn_exportkeyingmaterial},
  {"setdane", conn_nodane},
  {"settlsa", conn_nodane},
  {NULL, NULL}
};

/* The LuaSocket methods a connection has too. */
static const char *const shared[] = {
  "settimeout", "getstats", "setstats", "dirty", "getfd", NULL
};

/* Makes the classes (once). */
static void newclasses(lua_State *L) {
  const luaL_Reg *m;
  int i;
  if (!luaL_newmetatable(L, CONN_TYPE)) {
    lua_pop(L, 1);
    return;
  }
  glC_open_streams();
  lua_newtable(L);  /* __index */
  for (m = conn_methods; m->name != NULL; m++) {
    lua_pushinteger(L, GLC_SSL);
    lua_pushcclosure(L, m->func, 1);
    lua_setfield(L, -2, m->name);
  }
  for (i = 0; shared[i] != NULL; i++) {
    lua_pushinteger(L, GLC_SSL);
    lua_pushcclosure(L, streamfn(shared[i]), 1);
    lua_setfield(L, -2, shared[i]);
  }
  lua_setfield(L, -2, "__index");
  lua_pushinteger(L, GLC_SSL);
  lua_pushcclosure(L, conn_close, 1);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, conn_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, conn_tostring);
  lua_setfield(L, -2, "__tostring");
  glC_addclass(L, GLC_SSL, GLC_CLIENT);
  lua_pop(L, 1);
  glL_newclass(L, CTX_TYPE, ctx_methods, ctx_meta);
  lua_pop(L, 1);
  glC_open_x509(L);
}

static const luaL_Reg ssl_funcs[] = {
  {"newcontext", ssl_newcontext},
  {"wrap", ssl_wrap},
  {"loadcertificate", glC_loadcertificate},
  {NULL, NULL}
};

/* require "ssl" */
int glC_luaopen_ssl(lua_State *L) {
  newclasses(L);
  luaL_newlib(L, ssl_funcs);
  pushconfig(L);
  lua_setfield(L, -2, "config");
  lua_pushliteral(L, "1.2.0");
  lua_setfield(L, -2, "_VERSION");
  lua_pushliteral(L, "LuaSec 1.2.0's API on greenlua's TLS layer");
  lua_setfield(L, -2, "_COPYRIGHT");
  return 1;
}

/* require "ssl.core", "ssl.context", "ssl.x509", "ssl.config": LuaSec's
 * C modules, which would block the hub: use require "ssl". */
int glC_luaopen_ssl_refused(lua_State *L) {
  return luaL_error(L, "module '%s' is LuaSec's C part, which would block "
                       "the hub under greenlua: require 'ssl' instead",
                    luaL_optstring(L, 1, "ssl.core"));
}
/* }====== */
