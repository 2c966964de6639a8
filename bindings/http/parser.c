/* The HTTP/1.x parser glue: Debian's libhttp-parser (http_parser.h) made
 * into a parser that reads one message after another from a window of
 * bytes and builds their Lua tables, plus http_parser_parse_url for URLs.
 * It is the one file that knows http-parser, so that llhttp could replace
 * it here alone.  The parser reads a stream's buffer in conn.c, or the
 * strings given to a parser object (here: tests, fuzzing).  Formatting
 * messages is message.c's; percent-decoding and zlib are codec.c's. */
#include <http_parser.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* A piece of the head being parsed, as an offset from its first byte:
 * the head may move (buffer growth) between calls while it is partial. */
typedef struct span {
  uint32_t off, len;
} span;

typedef struct field {
  span name, value;
  int hasvalue;
} field;

struct glH_parser {
  http_parser hp;
  unsigned char request;    /* parses requests (else responses) */
  unsigned char phase;      /* GLH_HEAD, GLH_BODY, GLH_DONE, GLH_FAIL */
  unsigned char headdone;   /* on_headers_complete ran for this message */
  unsigned char skipbody;   /* on_body discards (a drained body) */
  unsigned char nobody;     /* responses: the request was HEAD */
  unsigned char expect;     /* requests: expect: 100-continue unanswered */
  unsigned char keepalive;  /* the peer allows another message after it */
  unsigned char upgrade;    /* the message asked for an upgrade */
  unsigned char minor;      /* HTTP/1.<minor> */
  unsigned char ishead;     /* requests: the method is HEAD */
  int fail;                 /* GLH_FAIL: the status to answer (400, ...) */
  const char *failmsg;      /* ... and why, as a short message */
  uint32_t fed;             /* bytes of the current head given to hp */
  span first;               /* request target, or response reason */
  field *saved;             /* the fields of a partial head, between calls */
  uint32_t nsaved;
  char *body;               /* the body kept so far: body[0, bodylen) */
  size_t bodylen, bodycap;
  uint64_t bodyseen;        /* body bytes seen, kept or not */
  uint64_t maxbody;         /* UINT64_MAX: no limit */
  size_t maxheader;
};

/* The strings every message table uses, made once and kept in a table
 * of the registry (lua_setfield would look each key up by its C string
 * at every use). */
enum {
  K_METHOD = 1, K_TARGET, K_PATH, K_QUERY, K_VERSION, K_HEADERS,
  K_STATUS, K_REASON, K_V10, K_V11, K_EMPTY,
  K_METHODS  /* + method: its name, made on first use */
};
static int keysref = LUA_NOREF;

/* {====== The execution context ======
 * http_parser calls back with pointers into the bytes it is given; the
 * callbacks turn them into spans from the head's first byte.  One hub
 * thread, and no Lua runs during an execute: one context serves all. */

static struct {
  glH_parser *p;
  const char *base;      /* the head's first byte */
  field *fields;         /* the head's fields so far */
  uint32_t n, cap;
} X;

static int fail(glH_parser *p, int status, const char *msg) {
  if (p->fail == 0) {
    p->fail = status;
    p->failmsg = msg;
  }
  return -1;  /* stops http_parser_execute */
}

static uint32_t offset(const char *at) { return (uint32_t)(at - X.base); }

/* Grows span s by the piece at..at+len, which follows it directly. */
static void extend(span *s, const char *at, size_t len) {
  uint32_t off = offset(at);
  if (s->off == UINT32_MAX) s->off = off;
  s->len = off + (uint32_t)len - s->off;
}

static int on_url(http_parser *hp, const char *at, size_t len) {
  GL_UNUSED(hp);
  extend(&X.p->first, at, len);
  return 0;
}

static int on_status(http_parser *hp, const char *at, size_t len) {
  GL_UNUSED(hp);
  extend(&X.p->first, at, len);
  return 0;
}

/* Fields after the head are the trailer of a chunked body: dropped. */
static int on_header_field(http_parser *hp, const char *at, size_t len) {
  field *f = X.n > 0 ? &X.fields[X.n - 1] : NULL;
  uint32_t off = offset(at);
  GL_UNUSED(hp);
  if (X.p->headdone) return 0;
  if (f != NULL && !f->hasvalue && f->name.off + f->name.len == off) {
    f->name.len += (uint32_t)len;  /* the rest of a name */
    return 0;
  }
  if (X.n == X.cap) {
    uint32_t cap = X.cap ? X.cap * 2 : 32;
    field *nf = realloc(X.fields, cap * sizeof *nf);
    if (nf == NULL) return fail(X.p, 500, "not enough memory");
    X.fields = nf;
    X.cap = cap;
  }
  f = &X.fields[X.n++];
  f->name.off = off;
  f->name.len = (uint32_t)len;
  f->value.off = off + (uint32_t)len;
  f->value.len = 0;
  f->hasvalue = 0;
  return 0;
}

/* A value comes in pieces that follow each other, except when a line
 * folds (obs-fold: a line that starts with a space continues the value
 * before it); http-parser accepts folds, we refuse them, as RFC 9112
 * lets a server do, since proxies read them differently. */
static int on_header_value(http_parser *hp, const char *at, size_t len) {
  field *f;
  uint32_t off, from;
  GL_UNUSED(hp);
  if (X.p->headdone || X.n == 0) return 0;  /* a trailer */
  f = &X.fields[X.n - 1];
  off = offset(at);
  if (len == 0) {  /* an empty value, or the end of one */
    if (!f->hasvalue) {
      f->hasvalue = 1;
      f->value.off = off;
    }
    return 0;
  }
  if (f->hasvalue && f->value.len > 0) {
    if (f->value.off + f->value.len != off)
      return fail(X.p, 400, "obsolete line folding");
    f->value.len += (uint32_t)len;
    return 0;
  }
  from = f->name.off + f->name.len;  /* a newline before it: a fold */
  if (off > from && memchr(X.base + from, '\n', off - from) != NULL)
    return fail(X.p, 400, "obsolete line folding");
  f->hasvalue = 1;
  f->value.off = off;
  f->value.len = (uint32_t)len;
  return 0;
}

/* Pauses after the head of a message with a body, so that the caller
 * gets the head first; a request without one runs on to its end. */
static int on_headers_complete(http_parser *hp) {
  glH_parser *p = X.p;
  p->headdone = 1;
  if (p->request) {
    if (!(hp->flags & F_CHUNKED) &&
        (hp->content_length == 0 || hp->content_length == ULLONG_MAX))
      return 0;
  } else if (p->nobody) {
    return 1;  /* the answer to HEAD: no body, whatever it announces */
  }
  http_parser_pause(hp, 1);
  return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len) {
  glH_parser *p = X.p;
  GL_UNUSED(hp);
  p->bodyseen += len;
  if (p->bodyseen > p->maxbody) return fail(p, 413, "body too large");
  if (p->skipbody) return 0;
  if (p->bodycap - p->bodylen < len) {
    size_t cap = p->bodycap ? p->bodycap : 1024;
    char *nb;
    while (cap - p->bodylen < len) cap *= 2;
    if ((nb = realloc(p->body, cap)) == NULL)
      return fail(p, 500, "not enough memory");
    p->body = nb;
    p->bodycap = cap;
  }
  memcpy(p->body + p->bodylen, at, len);
  p->bodylen += len;
  return 0;
}

static int on_message_complete(http_parser *hp) {
  X.p->phase = GLH_DONE;
  http_parser_pause(hp, 1);  /* the next message waits for the next head */
  return 0;
}

static const http_parser_settings settings = {
  .on_url = on_url,
  .on_status = on_status,
  .on_header_field = on_header_field,
  .on_header_value = on_header_value,
  .on_headers_complete = on_headers_complete,
  .on_body = on_body,
  .on_message_complete = on_message_complete,
};

/* Runs http-parser over n bytes at data, with `base` the first byte of
 * the head; returns how many it consumed. */
static size_t execute(glH_parser *p, const char *base, const char *data,
                      size_t n) {
  X.p = p;
  X.base = base;
  if (HTTP_PARSER_ERRNO(&p->hp) == HPE_PAUSED) http_parser_pause(&p->hp, 0);
  return http_parser_execute(&p->hp, &settings, data, n);
}
/* }====== */

/* {====== The parser ====== */

size_t glH_parsersize(void) { return sizeof(glH_parser); }

/* Starts the next message. */
static void newmessage(glH_parser *p) {
  http_parser_init(&p->hp, p->request ? HTTP_REQUEST : HTTP_RESPONSE);
  p->hp.data = p;
  p->phase = GLH_HEAD;
  p->headdone = p->skipbody = p->expect = p->upgrade = 0;
  p->ishead = p->keepalive = 0;
  p->minor = 1;
  p->fed = 0;
  p->first.off = UINT32_MAX;
  p->first.len = 0;
  free(p->body);
  p->body = NULL;
  p->bodylen = p->bodycap = 0;
  p->bodyseen = 0;
}

/* The largest head http-parser itself accepts is a process-wide setting:
 * it is raised to the largest max_header asked for, and each parser
 * checks its own. */
static void headerlimit(size_t max) {
  static size_t limit = HTTP_MAX_HEADER_SIZE;
  if (max + 1024 > limit) {
    limit = max + 1024 > UINT32_MAX / 2 ? UINT32_MAX / 2 : max + 1024;
    http_parser_set_max_header_size((uint32_t)limit);
  }
}

void glH_parserinit(glH_parser *p, int request, size_t maxheader,
                    uint64_t maxbody) {
  memset(p, 0, sizeof *p);
  p->request = (unsigned char)request;
  p->maxheader = maxheader;
  p->maxbody = maxbody;
  headerlimit(maxheader);
  newmessage(p);
}

void glH_parserfree(glH_parser *p) {
  free(p->saved);
  free(p->body);
  p->saved = NULL;
  p->body = NULL;
  p->nsaved = 0;
  p->bodylen = p->bodycap = 0;
}

int glH_phase(const glH_parser *p) { return p->phase; }

/* Makes the parser fail with status and message (if it has not yet) and
 * pushes nil, status, message. */
static int failed(lua_State *L, glH_parser *p, int status, const char *msg) {
  if (p->phase != GLH_FAIL) {
    p->phase = GLH_FAIL;
    if (p->fail == 0) {
      p->fail = status;
      p->failmsg = msg;
    }
    free(p->saved);
    p->saved = NULL;
    p->nsaved = 0;
  }
  lua_pushnil(L);
  lua_pushinteger(L, p->fail);
  lua_pushstring(L, p->failmsg);
  return 3;
}

/* The status and message for an error of http-parser. */
static int failparse(lua_State *L, glH_parser *p) {
  enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
  if (p->fail != 0) return failed(L, p, p->fail, p->failmsg);
  if (e == HPE_HEADER_OVERFLOW)
    return failed(L, p, 431, "header too large");
  return failed(L, p, 400, http_errno_description(e));
}

static const char *at(const span *s) { return X.base + s->off; }

/* The length of a value without its trailing spaces and tabs (http-parser
 * drops the leading ones). */
static size_t trimmed(const field *f) {
  const char *v = at(&f->value);
  size_t n = f->value.len;
  while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
  return n;
}

static int isname(const char *s, size_t n, const char *name) {
  size_t i;
  if (strlen(name) != n) return 0;
  for (i = 0; i < n; i++)
    if ((s[i] | 0x20) != name[i]) return 0;
  return 1;
}

/* Checks what http-parser lets through and a server must not: names
 * that are not tokens (a space before the colon), a missing or repeated
 * host, a transfer coding other than chunked alone, another major
 * version.  Returns 0 or fails the parser. */
static int checkhead(glH_parser *p) {
  uint32_t i, hosts = 0;
  for (i = 0; i < X.n; i++) {
    const field *f = &X.fields[i];
    const char *name = at(&f->name);
    if (!glH_istoken(name, f->name.len))
      return fail(p, 400, "invalid header name");
    if (!p->request) continue;
    switch (name[0] | 0x20) {  /* the few that matter, cheaply */
      case 'h':
        if (isname(name, f->name.len, "host")) hosts++;
        break;
      case 't':
        if (isname(name, f->name.len, "transfer-encoding") &&
            !isname(at(&f->value), trimmed(f), "chunked"))
          return fail(p, 501, "transfer coding not implemented");
        break;
      case 'e':
        if (isname(name, f->name.len, "expect") &&
            isname(at(&f->value), trimmed(f), "100-continue") &&
            p->hp.http_minor >= 1)
          p->expect = 1;
        break;
      default:
        break;
    }
  }
  if (p->hp.http_major != 1)
    return fail(p, 505, "http version not supported");
  if (p->request && (hosts > 1 || (hosts == 0 && p->hp.http_minor >= 1)))
    return fail(p, 400, hosts ? "repeated host" : "missing host");
  return 0;
}

/* Pushes key k of the keys table at index `keys`; then the caller pushes
 * the value and sets it with lua_rawset. */
#define KEY(L, keys, k) lua_rawgeti(L, keys, k)

/* Whether two header names are the same, in any case. */
static int samename(const field *a, const field *b) {
  const char *x = at(&a->name), *y = at(&b->name);
  uint32_t i;
  if (a->name.len != b->name.len) return 0;
  for (i = 0; i < a->name.len; i++)
    if ((x[i] | 0x20) != (y[i] | 0x20)) return 0;
  return 1;
}

/* Whether a name repeats one before it (a lookup in Lua's table costs
 * more than comparing the lengths of a few names). */
static int repeated(uint32_t i) {
  uint32_t j;
  for (j = 0; j < i; j++)
    if (samename(&X.fields[i], &X.fields[j])) return 1;
  return 0;
}

/* Pushes the headers table: lower-case names; repeated ones joined with
 * ", ", except set-cookie, an array of its values. */
static void pushheaders(lua_State *L) {
  char small[64];
  uint32_t i;
  lua_createtable(L, 0, (int)X.n);
  for (i = 0; i < X.n; i++) {
    const field *f = &X.fields[i];
    size_t n = f->name.len, j;
    const char *s = at(&f->name);
    char *low = n <= sizeof small ? small : lua_newuserdatauv(L, n, 0);
    int cookie;
    for (j = 0; j < n; j++)
      low[j] = (s[j] >= 'A' && s[j] <= 'Z') ? (char)(s[j] | 0x20) : s[j];
    lua_pushlstring(L, low, n);
    if (low != small) lua_remove(L, -2);
    cookie = n == 10 && memcmp(low, "set-cookie", 10) == 0;
    if (!repeated(i)) {
      if (cookie) lua_createtable(L, 1, 0);
      lua_pushlstring(L, at(&f->value), trimmed(f));
      if (cookie) lua_rawseti(L, -2, 1);
      lua_rawset(L, -3);
      continue;
    }
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (cookie) {
      lua_pushlstring(L, at(&f->value), trimmed(f));
      lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
      lua_pop(L, 2);
    } else {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, at(&f->value), trimmed(f));
      lua_concat(L, 3);
      lua_rawset(L, -3);
    }
  }
}

/* Pushes the percent-decoded path of the target; returns 0, or -1 (and
 * pushes nothing) for a bad escape. */
static int pushpath(lua_State *L, const char *s, size_t n) {
  luaL_Buffer b;
  size_t m;
  char *out;
  if (memchr(s, '%', n) == NULL) {
    lua_pushlstring(L, s, n);
    return 0;
  }
  out = luaL_buffinitsize(L, &b, n);
  if ((m = glH_unescape(s, n, out, 0)) == (size_t)-1) {
    luaL_pushresultsize(&b, 0);
    lua_pop(L, 1);
    return -1;
  }
  luaL_pushresultsize(&b, m);
  return 0;
}

static void pushversion(lua_State *L, const http_parser *hp, int keys) {
  if (hp->http_major == 1 && hp->http_minor <= 1)
    lua_rawgeti(L, keys, hp->http_minor ? K_V11 : K_V10);
  else
    lua_pushfstring(L, "%d.%d", (int)hp->http_major, (int)hp->http_minor);
}

/* Pushes the name of method m, kept in the keys table once made. */
static void pushmethod(lua_State *L, int keys, unsigned m) {
  if (lua_rawgeti(L, keys, K_METHODS + (int)m) == LUA_TSTRING) return;
  lua_pop(L, 1);
  lua_pushstring(L, http_method_str((enum http_method)m));
  lua_pushvalue(L, -1);
  lua_rawseti(L, keys, K_METHODS + (int)m);
}

/* Sets the fields of every message table at index t: version, headers. */
static void setcommon(lua_State *L, glH_parser *p, int t, int keys) {
  KEY(L, keys, K_VERSION);
  pushversion(L, &p->hp, keys);
  lua_rawset(L, t);
  KEY(L, keys, K_HEADERS);
  pushheaders(L);
  lua_rawset(L, t);
}

/* Pushes the request table of the head at X.base: method, target, path,
 * query, version, headers; its metatable is the uservalue GLH_UV_META of
 * the userdata at index 1 (what every request of a connection shares:
 * its methods, the peer's address).  Returns 0, or -1 for a target
 * http-parser took but its URL parser does not (the parser then fails
 * with 400). */
static int pushrequest(lua_State *L, glH_parser *p, int keys) {
  struct http_parser_url u;
  const char *target = at(&p->first);
  size_t tlen = p->first.off == UINT32_MAX ? 0 : p->first.len;
  const char *path = target, *query = "";
  size_t plen = tlen, qlen = 0;
  int connect = p->hp.method == HTTP_CONNECT, t;
  if (tlen == 0) return fail(p, 400, "invalid url");
  if (!(tlen == 1 && target[0] == '*')) {
    http_parser_url_init(&u);
    if (tlen > UINT16_MAX || http_parser_parse_url(target, tlen, connect, &u))
      return fail(p, 400, "invalid url");
    plen = 0;
    if (u.field_set & (1 << UF_PATH)) {
      path = target + u.field_data[UF_PATH].off;
      plen = u.field_data[UF_PATH].len;
    } else if (!connect) {
      path = "/";  /* http://host */
      plen = 1;
    }
    if (u.field_set & (1 << UF_QUERY)) {
      query = target + u.field_data[UF_QUERY].off;
      qlen = u.field_data[UF_QUERY].len;
    }
  }
  lua_createtable(L, 0, 6);
  t = lua_gettop(L);
  KEY(L, keys, K_TARGET);
  lua_pushlstring(L, target, tlen);
  lua_rawset(L, t);
  KEY(L, keys, K_PATH);
  if (path == target && plen == tlen && memchr(path, '%', plen) == NULL) {
    KEY(L, keys, K_TARGET);  /* the target is its own path ("/") */
    lua_rawget(L, t);
  } else if (pushpath(L, path, plen) != 0) {
    lua_pop(L, 2);
    return fail(p, 400, "invalid escape in path");
  }
  lua_rawset(L, t);
  KEY(L, keys, K_METHOD);
  pushmethod(L, keys, p->hp.method);
  lua_rawset(L, t);
  KEY(L, keys, K_QUERY);
  if (qlen == 0) lua_rawgeti(L, keys, K_EMPTY);
  else lua_pushlstring(L, query, qlen);
  lua_rawset(L, t);
  setcommon(L, p, t, keys);
  if (lua_getiuservalue(L, 1, GLH_UV_META) == LUA_TTABLE)
    lua_setmetatable(L, t);
  else
    lua_pop(L, 1);
  return 0;
}

/* Pushes the response table: status, reason, version, headers. */
static void pushresponse(lua_State *L, glH_parser *p, int keys) {
  int t;
  lua_createtable(L, 0, 6);  /* room for body and url, set by the client */
  t = lua_gettop(L);
  KEY(L, keys, K_STATUS);
  lua_pushinteger(L, p->hp.status_code);
  lua_rawset(L, t);
  KEY(L, keys, K_REASON);
  if (p->first.off == UINT32_MAX) lua_rawgeti(L, keys, K_EMPTY);
  else lua_pushlstring(L, at(&p->first), p->first.len);
  lua_rawset(L, t);
  setcommon(L, p, t, keys);
}

/* Keeps the fields of a partial head for the next call; returns -1 out
 * of memory. */
static int savefields(glH_parser *p) {
  free(p->saved);
  p->saved = NULL;
  p->nsaved = 0;
  if (X.n == 0) return 0;
  if ((p->saved = malloc(X.n * sizeof *p->saved)) == NULL) return -1;
  memcpy(p->saved, X.fields, X.n * sizeof *p->saved);
  p->nsaved = X.n;
  return 0;
}

/* Puts the fields kept by savefields back into the context. */
static void restorefields(lua_State *L, glH_parser *p) {
  X.n = 0;
  if (p->nsaved == 0) return;
  if (X.cap < p->nsaved) {
    field *nf = realloc(X.fields, p->nsaved * sizeof *nf);
    if (nf == NULL) luaL_error(L, "not enough memory");
    X.fields = nf;
    X.cap = p->nsaved;
  }
  memcpy(X.fields, p->saved, p->nsaved * sizeof *X.fields);
  X.n = p->nsaved;
  free(p->saved);
  p->saved = NULL;
  p->nsaved = 0;
}

int glH_parsehead(lua_State *L, glH_parser *p, const char *data, size_t len,
                  size_t *used, int nobody) {
  size_t n, headlen;
  int keys, nres;
  *used = 0;
  if (p->phase == GLH_FAIL) return failed(L, p, p->fail, p->failmsg);
  if (p->phase == GLH_BODY)
    return luaL_error(L, "the body of the last message is not read");
  if (p->phase == GLH_DONE) newmessage(p);
  if (len <= p->fed) return 0;  /* nothing new */
  p->nobody = (unsigned char)nobody;
  restorefields(L, p);
  n = execute(p, data, data + p->fed, len - p->fed);
  if (!p->headdone) {
    if (HTTP_PARSER_ERRNO(&p->hp) != HPE_OK) return failparse(L, p);
    p->fed = (uint32_t)len;
    if (p->fed > p->maxheader) return failed(L, p, 431, "header too large");
    if (savefields(p) != 0) return failed(L, p, 500, "not enough memory");
    return 0;
  }
  headlen = p->fed + n;
  if (HTTP_PARSER_ERRNO(&p->hp) != HPE_PAUSED) return failparse(L, p);
  if (headlen > p->maxheader) return failed(L, p, 431, "header too large");
  if (checkhead(p) != 0) return failed(L, p, p->fail, p->failmsg);
  p->minor = (unsigned char)p->hp.http_minor;
  p->keepalive = (unsigned char)http_should_keep_alive(&p->hp);
  p->upgrade = (unsigned char)p->hp.upgrade;
  lua_rawgeti(L, LUA_REGISTRYINDEX, keysref);
  keys = lua_gettop(L);
  if (p->request) {
    p->ishead = p->hp.method == HTTP_HEAD;
    if (p->phase != GLH_DONE && !(p->hp.flags & F_CHUNKED) &&
        p->hp.content_length > p->maxbody) {
      lua_pop(L, 1);
      return failed(L, p, 413, "body too large");
    }
    if (pushrequest(L, p, keys) != 0) {
      lua_pop(L, 1);
      return failed(L, p, p->fail, p->failmsg);
    }
  } else {
    pushresponse(L, p, keys);
  }
  lua_remove(L, keys);
  nres = 1;
  if (p->phase != GLH_DONE) p->phase = GLH_BODY;
  p->fed = 0;
  X.n = 0;
  *used = headlen;
  return nres;
}

/* Pushes the body read and lets go of it. */
static int takebody(lua_State *L, glH_parser *p) {
  lua_pushlstring(L, p->body != NULL ? p->body : "", p->bodylen);
  free(p->body);
  p->body = NULL;
  p->bodylen = p->bodycap = 0;
  return 1;
}

int glH_parsebody(lua_State *L, glH_parser *p, const char *data, size_t len,
                  int eof, size_t *used) {
  *used = 0;
  if (p->phase == GLH_FAIL) return failed(L, p, p->fail, p->failmsg);
  if (p->phase == GLH_HEAD) return luaL_error(L, "no message head was read");
  if (p->phase == GLH_DONE) return takebody(L, p);
  if (len > 0) *used = execute(p, NULL, data, len);
  if (p->phase != GLH_DONE && HTTP_PARSER_ERRNO(&p->hp) == HPE_OK && eof &&
      *used == len)
    execute(p, NULL, NULL, 0);  /* the end: completes a read-until-close */
  if (p->phase == GLH_DONE) return takebody(L, p);
  if (HTTP_PARSER_ERRNO(&p->hp) != HPE_OK) {
    if (eof && p->fail == 0 &&
        HTTP_PARSER_ERRNO(&p->hp) == HPE_INVALID_EOF_STATE)
      return failed(L, p, 0, "closed");
    return failparse(L, p);
  }
  if (eof) return failed(L, p, 0, "closed");
  return 0;
}

void glH_skipbody(glH_parser *p) {
  p->skipbody = 1;
  free(p->body);
  p->body = NULL;
  p->bodylen = p->bodycap = 0;
}

int glH_continue(glH_parser *p) {
  int r = p->expect && p->phase == GLH_BODY;
  p->expect = 0;
  return r;
}

void glH_getinfo(const glH_parser *p, glH_info *info) {
  info->request = p->request;
  info->head = p->request ? p->ishead : p->nobody;
  info->minor = p->minor;
  info->keepalive = p->keepalive;
  info->expect = p->expect;
  info->bodyleft = p->phase == GLH_BODY;
  info->upgrade = p->upgrade;
}

const char *glH_reason(int status) {
  const char *s = http_status_str((enum http_status)status);
  return strcmp(s, "<unknown>") == 0 ? NULL : s;
}
/* }====== */

/* {====== Parser objects ======
 * A parser fed with strings: p:head(data), p:body(data): what it was
 * given and has not consumed waits in a buffer of its own (freed once
 * empty).  For tests and the fuzzers; servers and clients parse their
 * stream's buffer in place (conn.c). */

typedef struct parserobj {
  char *buf;                /* given, not consumed: buf[bstart, bend) */
  size_t bstart, bend, bcap;
  glH_parser p;
} parserobj;

static const void *parser_mt;

static parserobj *checkparser(lua_State *L, int arg) {
  return glL_checkudatap(L, arg, parser_mt, GLH_PARSER_TYPE);
}

glH_parser *glH_toparser(lua_State *L, int idx) {
  glH_parser *p = glH_connparser(L, idx);
  parserobj *o;
  if (p != NULL) return p;
  if ((o = glL_testudatap(L, idx, parser_mt)) != NULL) return &o->p;
  luaL_typeerror(L, idx, "green.http.conn");
  return NULL;
}

static size_t buffered(const parserobj *o) { return o->bend - o->bstart; }

/* Appends n bytes; raises a memory error if there is no room. */
static void append(lua_State *L, parserobj *o, const char *s, size_t n) {
  size_t have = buffered(o), cap;
  char *nb;
  if (n == 0) return;
  if (o->bcap - o->bend < n && o->bstart > 0) {  /* slide to the front */
    memmove(o->buf, o->buf + o->bstart, have);
    o->bstart = 0;
    o->bend = have;
  }
  if (o->bcap - o->bend < n) {
    cap = o->bcap ? o->bcap : 512;
    while (cap - have < n) cap *= 2;
    if ((nb = realloc(o->buf, cap)) == NULL)
      luaL_error(L, "not enough memory");
    o->buf = nb;
    o->bcap = cap;
  }
  memcpy(o->buf + o->bend, s, n);
  o->bend += n;
}

/* Drops n bytes from the front; an emptied buffer is freed. */
static void consume(parserobj *o, size_t n) {
  o->bstart += n;
  if (o->bstart >= o->bend) {
    free(o->buf);
    o->buf = NULL;
    o->bstart = o->bend = o->bcap = 0;
  }
}

/* The bytes to parse: those buffered followed by the string at index 2
 * (appended), or that string itself when nothing is buffered (no copy;
 * *own = 0). */
static const char *input(lua_State *L, parserobj *o, size_t *len,
                         int *own) {
  size_t n = 0;
  const char *data = luaL_optlstring(L, 2, "", &n);
  if (buffered(o) == 0) {
    *own = 0;
    *len = n;
    return data;
  }
  append(L, o, data, n);
  *own = 1;
  *len = buffered(o);
  return o->buf + o->bstart;
}

/* After parsing: consumes `used` bytes, and keeps what is left of data
 * that was not buffered (keep: all of it, a partial head). */
static void settle(lua_State *L, parserobj *o, const char *in, size_t len,
                   size_t used, int own) {
  if (own) consume(o, used);
  else append(L, o, in + used, len - used);
}

/* p:head([data], [nobody]) -> head | false | nil, status, message.
 * Parses data (nil: only what is buffered) after what was buffered.
 * Returns the head once it is complete (the request table for a request
 * parser, {status, reason, version, headers} for a response parser; the
 * rest stays buffered for the body and the next head), false if more
 * bytes are needed, or nil, status, message for a bad message (400, 431
 * head over max_header, 413 content-length over max_body, 501, 505; the
 * parser then stays failed).  `nobody`: the response answers HEAD. */
static int parser_head(lua_State *L) {
  parserobj *o = checkparser(L, 1);
  size_t len, used;
  int own, nobody = lua_toboolean(L, 3), n;
  const char *in;
  lua_settop(L, 2);
  in = input(L, o, &len, &own);
  n = glH_parsehead(L, &o->p, in, len, &used, nobody);
  if (n == 0) {
    if (!own) append(L, o, in, len);  /* keep the partial head */
    lua_pushboolean(L, 0);
    return 1;
  }
  if (n == 1) settle(L, o, in, len, used, own);
  return n;
}

/* p:body([data], [eof]) -> body | false | nil, status, message.  Goes on
 * with the body of the message whose head was read, from what is
 * buffered and data; `eof` says the peer closed (a body read until the
 * close ends there).  Returns the whole body once complete ("" after
 * skipbody, or for a message without one; the bytes after it stay
 * buffered), false if more are needed, or nil, status, message: 413 past
 * max_body, 400 for a bad chunk, 0, "closed" when the peer closed before
 * the end. */
static int parser_body(lua_State *L) {
  parserobj *o = checkparser(L, 1);
  size_t len, used;
  int own, eof = lua_toboolean(L, 3), n;
  const char *in;
  lua_settop(L, 2);
  in = input(L, o, &len, &own);
  n = glH_parsebody(L, &o->p, in, len, eof, &used);
  settle(L, o, in, len, used, own);
  if (n == 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  return n;
}

/* p:skipbody(): the rest of the body is read and dropped, not kept. */
static int parser_skipbody(lua_State *L) {
  glH_skipbody(&checkparser(L, 1)->p);
  return 0;
}

/* p:state() -> "head", "body", "done" or "failed" */
static int parser_state(lua_State *L) {
  static const char *const names[] = {"head", "body", "done", "failed"};
  lua_pushstring(L, names[checkparser(L, 1)->p.phase]);
  return 1;
}

/* p:continue() -> true if the request expects 100-continue and the 100
 * was not sent yet (it counts as sent from then on) */
static int parser_continue(lua_State *L) {
  lua_pushboolean(L, glH_continue(&checkparser(L, 1)->p));
  return 1;
}

/* p:take() -> the bytes buffered after the last message, leaving none */
static int parser_take(lua_State *L) {
  parserobj *o = checkparser(L, 1);
  lua_pushlstring(L, o->buf != NULL ? o->buf + o->bstart : "", buffered(o));
  consume(o, buffered(o));
  return 1;
}

/* p:keepalive() -> whether the last message lets the connection carry
 * another (http_should_keep_alive), and whether it asked for an upgrade */
static int parser_keepalive(lua_State *L) {
  parserobj *o = checkparser(L, 1);
  lua_pushboolean(L, o->p.keepalive);
  lua_pushboolean(L, o->p.upgrade);
  return 2;
}

static int parser_gc(lua_State *L) {
  parserobj *o = checkparser(L, 1);
  free(o->buf);
  o->buf = NULL;
  o->bstart = o->bend = o->bcap = 0;
  glH_parserfree(&o->p);
  return 0;
}

static int parser_tostring(lua_State *L) {
  parserobj *o = checkparser(L, 1);
  lua_pushfstring(L, "%s (%s): %p", GLH_PARSER_TYPE,
                  o->p.request ? "request" : "response", (void *)o);
  return 1;
}

/* The limits of a new parser: max_header at arg, max_body at arg + 1
 * (nil or negative: none). */
void glH_checklimits(lua_State *L, int arg, size_t *maxheader,
                     uint64_t *maxbody) {
  lua_Integer mh = luaL_checkinteger(L, arg);
  lua_Number mb = luaL_optnumber(L, arg + 1, -1);
  luaL_argcheck(L, mh > 0 && mh <= INT32_MAX, arg, "out of range");
  *maxheader = (size_t)mh;
  *maxbody = mb < 0 || mb >= 0x1p63 ? UINT64_MAX : (uint64_t)mb;
}

static parserobj *newparser(lua_State *L, int request) {
  size_t maxheader;
  uint64_t maxbody;
  parserobj *o;
  glH_checklimits(L, 1, &maxheader, &maxbody);
  o = lua_newuserdatauv(L, sizeof *o, GLH_UV_META);
  memset(o, 0, sizeof *o);
  glH_parserinit(&o->p, request, maxheader, maxbody);
  luaL_setmetatable(L, GLH_PARSER_TYPE);
  return o;
}

/* core.requestparser(max_header, [max_body], [meta]) -> p: a request
 * parser whose request tables get `meta` as metatable. */
static int core_requestparser(lua_State *L) {
  newparser(L, 1);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, -2, GLH_UV_META);
  return 1;
}

/* core.responseparser(max_header, [max_body]) -> p */
static int core_responseparser(lua_State *L) {
  newparser(L, 0);
  return 1;
}
/* }====== */

/* {====== URLs ====== */

/* core.parseurl(url) -> scheme, host, port (nil if none), path ("/" if
 * none), query (nil if none), userinfo (nil if none) | nil, "invalid url".
 * The scheme is lower-cased; the host of "[::1]" comes without brackets. */
static int core_parseurl(lua_State *L) {
  size_t n, i;
  const char *s = luaL_checklstring(L, 1, &n);
  struct http_parser_url u;
  char scheme[16];
  http_parser_url_init(&u);
  if (n > UINT16_MAX || http_parser_parse_url(s, n, 0, &u) != 0 ||
      !(u.field_set & (1 << UF_SCHEMA)) || !(u.field_set & (1 << UF_HOST)) ||
      u.field_data[UF_SCHEMA].len >= sizeof scheme ||
      ((u.field_set & (1 << UF_PORT)) && u.port == 0))
    return glL_fail(L, "invalid url");
  for (i = 0; i < u.field_data[UF_SCHEMA].len; i++) {
    char c = s[u.field_data[UF_SCHEMA].off + i];
    scheme[i] = (c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c;
  }
  lua_pushlstring(L, scheme, u.field_data[UF_SCHEMA].len);
  lua_pushlstring(L, s + u.field_data[UF_HOST].off, u.field_data[UF_HOST].len);
  if (u.field_set & (1 << UF_PORT)) lua_pushinteger(L, u.port);
  else lua_pushnil(L);
  if (u.field_set & (1 << UF_PATH))
    lua_pushlstring(L, s + u.field_data[UF_PATH].off,
                    u.field_data[UF_PATH].len);
  else
    lua_pushliteral(L, "/");
  if (u.field_set & (1 << UF_QUERY))
    lua_pushlstring(L, s + u.field_data[UF_QUERY].off,
                    u.field_data[UF_QUERY].len);
  else
    lua_pushnil(L);
  if (u.field_set & (1 << UF_USERINFO))
    lua_pushlstring(L, s + u.field_data[UF_USERINFO].off,
                    u.field_data[UF_USERINFO].len);
  else
    lua_pushnil(L);
  return 6;
}

/* core.reason(status) -> the reason phrase ("OK") or nil */
static int core_reason(lua_State *L) {
  const char *r = glH_reason((int)luaL_checkinteger(L, 1));
  if (r == NULL) return 0;
  lua_pushstring(L, r);
  return 1;
}
/* }====== */

static const luaL_Reg parser_methods[] = {
  {"head", parser_head},
  {"body", parser_body},
  {"skipbody", parser_skipbody},
  {"state", parser_state},
  {"continue", parser_continue},
  {"take", parser_take},
  {"keepalive", parser_keepalive},
  {NULL, NULL}
};

static const luaL_Reg parser_meta[] = {
  {"__gc", parser_gc},
  {"__close", parser_gc},
  {"__tostring", parser_tostring},
  {NULL, NULL}
};

static const luaL_Reg core_funcs[] = {
  {"reason", core_reason},
  {"requestparser", core_requestparser},
  {"responseparser", core_responseparser},
  {"parseurl", core_parseurl},
  {NULL, NULL}
};

/* The keys table: what every message table's fields are named. */
static void newkeys(lua_State *L) {
  static const char *const names[] = {
    "method", "target", "path", "query", "version", "headers",
    "status", "reason", "1.0", "1.1", ""
  };
  size_t i;
  lua_createtable(L, K_METHODS + 40, 0);
  for (i = 0; i < sizeof names / sizeof names[0]; i++) {
    lua_pushstring(L, names[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  keysref = luaL_ref(L, LUA_REGISTRYINDEX);
}

int luaopen_green_http_parser(lua_State *L);
int luaopen_green_http_parser(lua_State *L) {
  glL_newclass(L, GLH_PARSER_TYPE, parser_methods, parser_meta);
  glL_setmtkey(L, &parser_mt);
  lua_pop(L, 1);
  newkeys(L);
  glH_pushcore(L);
  luaL_setfuncs(L, core_funcs, 0);
  lua_pop(L, 1);
  return 0;
}
