/* LuaSec's certificates (SSL:Certificate): what conn:getpeercertificate,
 * conn:getpeerchain and ssl.loadcertificate return, over OpenSSL's X509:
 * subject and issuer, validity, digest, PEM, public key, serial,
 * extensions, signature algorithm. */
#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <time.h>

#include "luassl.h"

#define CERT_TYPE "SSL:Certificate"

typedef struct cert {
  X509 *x;
  int utf8;  /* setencode: names as UTF-8, else as they are (ai5) */
} cert;

static cert *checkcert(lua_State *L, int i) {
  return luaL_checkudata(L, i, CERT_TYPE);
}

void glC_pushcert(lua_State *L, X509 *x) {
  cert *c = lua_newuserdatauv(L, sizeof *c, 0);
  c->x = x;
  c->utf8 = 0;
  luaL_setmetatable(L, CERT_TYPE);
}

/* Pushes what a memory BIO holds, and frees it. */
static void pushbio(lua_State *L, BIO *b) {
  char *p;
  long n = BIO_get_mem_data(b, &p);
  lua_pushlstring(L, p, (size_t)(n > 0 ? n : 0));
  BIO_free(b);
}

/* Pushes a name as LuaSec does: {{oid=, name=, value=}, ...}. */
static void pushname(lua_State *L, X509_NAME *name, int utf8) {
  int i, n = X509_NAME_entry_count(name);
  char oid[128];
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
    ASN1_OBJECT *o = X509_NAME_ENTRY_get_object(e);
    ASN1_STRING *v = X509_NAME_ENTRY_get_data(e);
    unsigned char *u;
    int len;
    lua_createtable(L, 0, 3);
    OBJ_obj2txt(oid, sizeof oid, o, 1);
    lua_pushstring(L, oid);
    lua_setfield(L, -2, "oid");
    OBJ_obj2txt(oid, sizeof oid, o, 0);
    lua_pushstring(L, oid);
    lua_setfield(L, -2, "name");
    if (utf8 && (len = ASN1_STRING_to_UTF8(&u, v)) >= 0) {
      lua_pushlstring(L, (const char *)u, (size_t)len);
      OPENSSL_free(u);
    } else {
      lua_pushlstring(L, (const char *)ASN1_STRING_get0_data(v),
                      (size_t)ASN1_STRING_length(v));
    }
    lua_setfield(L, -2, "value");
    lua_rawseti(L, -2, i + 1);
  }
}

/* cert:subject(), cert:issuer() -> {{oid=, name=, value=}, ...} */
static int cert_subject(lua_State *L) {
  cert *c = checkcert(L, 1);
  pushname(L, X509_get_subject_name(c->x), c->utf8);
  return 1;
}

static int cert_issuer(lua_State *L) {
  cert *c = checkcert(L, 1);
  pushname(L, X509_get_issuer_name(c->x), c->utf8);
  return 1;
}

/* Pushes a time as ASN1_TIME_print writes it ("Dec  3 10:25:06 2026
 * GMT"). */
static int pushtime(lua_State *L, const ASN1_TIME *t) {
  BIO *b = BIO_new(BIO_s_mem());
  if (b == NULL) return luaL_error(L, "not enough memory");
  ASN1_TIME_print(b, t);
  pushbio(L, b);
  return 1;
}

static int cert_notbefore(lua_State *L) {
  return pushtime(L, X509_get0_notBefore(checkcert(L, 1)->x));
}

static int cert_notafter(lua_State *L) {
  return pushtime(L, X509_get0_notAfter(checkcert(L, 1)->x));
}

/* cert:validat(time) -> whether the certificate is valid at that time */
static int cert_validat(lua_State *L) {
  cert *c = checkcert(L, 1);
  time_t t = (time_t)luaL_checkinteger(L, 2);
  lua_pushboolean(L, X509_cmp_time(X509_get0_notAfter(c->x), &t) >= 0
                     && X509_cmp_time(X509_get0_notBefore(c->x), &t) <= 0);
  return 1;
}

/* cert:digest([algorithm="sha1"]) -> hex digest | nil, err */
static int cert_digest(lua_State *L) {
  cert *c = checkcert(L, 1);
  const char *alg = luaL_optstring(L, 2, "sha1");
  const EVP_MD *md = EVP_get_digestbyname(alg);
  unsigned char d[EVP_MAX_MD_SIZE];
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  unsigned n, i;
  if (md == NULL) {
    lua_pushnil(L);
    lua_pushfstring(L, "digest algorithm not supported (%s)", alg);
    return 2;
  }
  if (!X509_digest(c->x, md, d, &n))
    return glC_fail(L, "error processing the certificate");
  for (i = 0; i < n; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
  lua_pushlstring(L, hex, 2 * n);
  return 1;
}

/* cert:pem() -> the certificate in PEM */
static int cert_pem(lua_State *L) {
  cert *c = checkcert(L, 1);
  BIO *b = BIO_new(BIO_s_mem());
  if (b == NULL || !PEM_write_bio_X509(b, c->x)) {
    BIO_free(b);
    return glC_fail(L, "error encoding the certificate");
  }
  pushbio(L, b);
  return 1;
}

/* cert:pubkey() -> PEM, type ("RSA", "EC", ...), bits */
static int cert_pubkey(lua_State *L) {
  cert *c = checkcert(L, 1);
  EVP_PKEY *k = X509_get0_pubkey(c->x);
  BIO *b = BIO_new(BIO_s_mem());
  const char *type;
  if (k == NULL || b == NULL || !PEM_write_bio_PUBKEY(b, k)) {
    BIO_free(b);
    return glC_fail(L, "error reading the public key");
  }
  pushbio(L, b);
  switch (EVP_PKEY_base_id(k)) {
    case EVP_PKEY_RSA: type = "RSA"; break;
    case EVP_PKEY_DSA: type = "DSA"; break;
    case EVP_PKEY_DH: type = "DH"; break;
    case EVP_PKEY_EC: type = "EC"; break;
    default: type = "Unknown"; break;
  }
  lua_pushstring(L, type);
  lua_pushinteger(L, EVP_PKEY_bits(k));
  return 3;
}

/* cert:serial() -> the serial number in upper-case hex */
static int cert_serial(lua_State *L) {
  cert *c = checkcert(L, 1);
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(c->x), NULL);
  char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
  BN_free(bn);
  if (hex == NULL) return glC_fail(L, "error reading the serial number");
  lua_pushstring(L, hex);
  OPENSSL_free(hex);
  return 1;
}

/* cert:getsignaturename() -> the signature algorithm ("RSA-SHA256") */
static int cert_getsignaturename(lua_State *L) {
  cert *c = checkcert(L, 1);
  lua_pushstring(L, OBJ_nid2sn(X509_get_signature_nid(c->x)));
  return 1;
}

/* Appends `s` to the array t[name] of the table on top of the stack. */
static void addvalue(lua_State *L, const char *name, const char *s,
                     size_t len) {
  if (lua_getfield(L, -1, name) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, name);
  }
  lua_pushlstring(L, s, len);
  lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
  lua_pop(L, 1);
}

/* cert:extensions() -> {[oid] = {name=, dNSName={...}, ...}} for the
 * alternative names of a certificate (subject and issuer), as LuaSec. */
static int cert_extensions(lua_State *L) {
  cert *c = checkcert(L, 1);
  int i, j, n = X509_get_ext_count(c->x);
  char oid[128], ip[64];
  lua_newtable(L);
  for (i = 0; i < n; i++) {
    X509_EXTENSION *ext = X509_get_ext(c->x, i);
    ASN1_OBJECT *o = X509_EXTENSION_get_object(ext);
    int nid = OBJ_obj2nid(o);
    GENERAL_NAMES *names;
    if (nid != NID_subject_alt_name && nid != NID_issuer_alt_name) continue;
    if ((names = X509V3_EXT_d2i(ext)) == NULL) continue;
    OBJ_obj2txt(oid, sizeof oid, o, 1);
    lua_newtable(L);
    OBJ_obj2txt(ip, sizeof ip, o, 0);
    lua_pushstring(L, ip);
    lua_setfield(L, -2, "name");
    for (j = 0; j < sk_GENERAL_NAME_num(names); j++) {
      GENERAL_NAME *g = sk_GENERAL_NAME_value(names, j);
      const ASN1_STRING *v;
      switch (g->type) {
        case GEN_DNS:
          v = g->d.dNSName;
          addvalue(L, "dNSName", (const char *)ASN1_STRING_get0_data(v),
                   (size_t)ASN1_STRING_length(v));
          break;
        case GEN_EMAIL:
          v = g->d.rfc822Name;
          addvalue(L, "rfc822Name", (const char *)ASN1_STRING_get0_data(v),
                   (size_t)ASN1_STRING_length(v));
          break;
        case GEN_URI:
          v = g->d.uniformResourceIdentifier;
          addvalue(L, "uniformResourceIdentifier",
                   (const char *)ASN1_STRING_get0_data(v),
                   (size_t)ASN1_STRING_length(v));
          break;
        case GEN_IPADD:
          v = g->d.iPAddress;
          if (ASN1_STRING_length(v) == 4)
            inet_ntop(AF_INET, ASN1_STRING_get0_data(v), ip, sizeof ip);
          else if (ASN1_STRING_length(v) == 16)
            inet_ntop(AF_INET6, ASN1_STRING_get0_data(v), ip, sizeof ip);
          else
            continue;
          addvalue(L, "iPAddress", ip, strlen(ip));
          break;
        default:
          break;
      }
    }
    GENERAL_NAMES_free(names);
    lua_setfield(L, -2, oid);
  }
  return 1;
}

/* cert:issued(issuer, ...) -> true | nil, err: whether this certificate
 * was issued (and signed) by the chain given. */
static int cert_issued(lua_State *L) {
  cert *c = checkcert(L, 1);
  X509_STORE *store = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  STACK_OF(X509) *chain = sk_X509_new_null();
  int i, n = lua_gettop(L), ok = 0, err;
  if (store == NULL || ctx == NULL || chain == NULL) goto done;
  X509_STORE_add_cert(store, checkcert(L, 2)->x);
  for (i = 3; i <= n; i++) sk_X509_push(chain, checkcert(L, i)->x);
  if (X509_STORE_CTX_init(ctx, store, c->x, chain) == 1)
    ok = X509_verify_cert(ctx) == 1;
done:
  if (ok) {
    lua_pushboolean(L, 1);
  } else {
    err = ctx != NULL ? X509_STORE_CTX_get_error(ctx) : 0;
    lua_pushnil(L);
    lua_pushstring(L, X509_verify_cert_error_string(err));
  }
  sk_X509_free(chain);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return ok ? 1 : 2;
}

/* cert:setencode("utf8" | "ai5") -> true: how names' values come out */
static int cert_setencode(lua_State *L) {
  static const char *const modes[] = {"ai5", "utf8", NULL};
  cert *c = checkcert(L, 1);
  c->utf8 = luaL_checkoption(L, 2, NULL, modes);
  lua_pushboolean(L, 1);
  return 1;
}

static int cert_gc(lua_State *L) {
  cert *c = checkcert(L, 1);
  X509_free(c->x);
  c->x = NULL;
  return 0;
}

static int cert_tostring(lua_State *L) {
  lua_pushfstring(L, "X509 certificate: %p", lua_touserdata(L, 1));
  return 1;
}

/* ssl.loadcertificate(pem) -> certificate | nil */
int glC_loadcertificate(lua_State *L) {
  size_t len;
  const char *pem = luaL_checklstring(L, 1, &len);
  BIO *b = BIO_new_mem_buf(pem, (int)len);
  X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  ERR_clear_error();
  if (x == NULL) {
    lua_pushnil(L);
    return 1;
  }
  glC_pushcert(L, x);
  return 1;
}

static const luaL_Reg cert_methods[] = {
  {"subject", cert_subject},
  {"issuer", cert_issuer},
  {"notbefore", cert_notbefore},
  {"notafter", cert_notafter},
  {"validat", cert_validat},
  {"digest", cert_digest},
  {"pem", cert_pem},
  {"pubkey", cert_pubkey},
  {"serial", cert_serial},
  {"getsignaturename", cert_getsignaturename},
  {"extensions", cert_extensions},
  {"issued", cert_issued},
  {"setencode", cert_setencode},
  {NULL, NULL}
};

static const luaL_Reg cert_meta[] = {
  {"__gc", cert_gc},
  {"__close", cert_gc},
  {"__tostring", cert_tostring},
  {NULL, NULL}
};

void glC_open_x509(lua_State *L) {
  glL_newclass(L, CERT_TYPE, cert_methods, cert_meta);
  lua_pop(L, 1);
}
