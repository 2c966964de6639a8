/* The HTTP/1.x parser glue: Debian's libhttp-parser (http_parser.h) made
 * into a parser object that reads one message after another from the
 * bytes it is given and builds their Lua tables, plus
 * http_parser_parse_url for URLs.  It is the one file that knows
 * http-parser, so that llhttp could replace it here alone.  Formatting
 * messages is message.c's; percent-decoding and zlib are codec.c's. */
#include <http_parser.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* Where a parser is in its current message. */
enum {
  PHEAD,  /* waiting for (the rest of) a head */
  PBODY,  /* head read, body not all read */
  PDONE,  /* message complete: the next head() starts the next one */
  PFAIL   /* a bad message: every call fails the same way */
};

/* A piece of the head being parsed, as an offset from its first byte:
 * the head may move (buffer growth) between calls while it is partial. */
typedef struct span {
  uint32_t off, len;
} span;

typedef struct field {
  span name, value;
  int hasvalue;
} field;

typedef struct parser {
  http_parser hp;
  unsigned char request;    /* parses requests (else responses) */
  unsigned char phase;
  unsigned char headdone;   /* on_headers_complete ran for this message */
  unsigned char skipbody;   /* on_body discards (a drained body) */
  unsigned char nobody;     /* responses: the request was HEAD */
  unsigned char expect;     /* requests: expect: 100-continue unanswered */
  unsigned char keepalive;  /* the peer allows another message after it */
  unsigned char upgrade;    /* the message asked for an upgrade */
  unsigned char minor;      /* HTTP/1.<minor> */
  unsigned char ishead;     /* requests: the method is HEAD */
  int fail;                 /* PFAIL: the status to answer (400, ...) */
  const char *failmsg;      /* ... and why, as a short message */
  char *buf;                /* given, not consumed: buf[bstart, bend) */
  size_t bstart, bend, bcap;
  uint32_t fed;             /* bytes of the current head given to hp */
  span first;               /* request target, or response reason */
  field *saved;             /* the fields of a partial head, between calls */
  uint32_t nsaved;
  char *body;               /* the body kept so far: body[0, bodylen) */
  size_t bodylen, bodycap;
  uint64_t bodyseen;        /* body bytes seen, kept or not */
  uint64_t maxbody;         /* UINT64_MAX: no limit */
  size_t maxheader;
  lua_Integer port;         /* requests: the peer's port */
} parser;

/* The uservalues of a request parser: what every request table gets. */
enum { UV_META = 1, UV_CONN, UV_ADDR, UV_COUNT = UV_ADDR };

static const void *parser_mt;

/* {====== The execution context ======
 * http_parser calls back with pointers into the bytes it is given; the
 * callbacks turn them into spans from the head's first byte.  One hub
 * thread, and no Lua runs during an execute: one context serves all. */

static struct {
  parser *p;
  const char *base;      /* the head's first byte */
  field *fields;         /* the head's fields so far */
  uint32_t n, cap;
} X;

static int fail(parser *p, int status, const char *msg) {
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
    if (nf == NULL) {
      return fail(X.p, 500, "not enough memory");
    }
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

static int on_status(http_parser *hp, const char *at, size_t len) {
  GL_UNUSED(hp);
  extend(&X.p->first, at, len);
  return 0;
}

/* Pauses after the head of a message with a body, so that the caller
 * gets the head first; a request without one runs on to its end. */
static int on_headers_complete(http_parser *hp) {
  parser *p = X.p;
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
  parser *p = X.p;
  GL_UNUSED(hp);
  p->bodyseen += len;
  if (p->bodyseen > p->maxbody) return fail(p, 413, "body too large");
  if (p->skipbody) return 0;
  if (p->bodycap - p->bodylen < len) {
    size_t cap = p->bodycap ? p->bodycap : 1024;
    char *nb;
    while (cap - p->bodylen < len) cap *= 2;
    if ((nb = realloc(p->body, cap)) == NULL) {
      return fail(p, 500, "not enough memory");
    }
    p->body = nb;
    p->bodycap = cap;
  }
  memcpy(p->body + p->bodylen, at, len);
  p->bodylen += len;
  return 0;
}

static int on_message_complete(http_parser *hp) {
  X.p->phase = PDONE;
  http_parser_pause(hp, 1);  /* the next message waits for the next head() */
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
static size_t execute(parser *p, const char *base, const char *data,
                      size_t n) {
  X.p = p;
  X.base = base;
  if (HTTP_PARSER_ERRNO(&p->hp) == HPE_PAUSED) http_parser_pause(&p->hp, 0);
  return http_parser_execute(&p->hp, &settings, data, n);
}
/* }====== */

/* {====== Buffer ====== */

static size_t buffered(const parser *p) { return p->bend - p->bstart; }

/* Appends n bytes; raises a memory error if there is no room. */
static void append(lua_State *L, parser *p, const char *s, size_t n) {
  size_t have = buffered(p), cap;
  char *nb;
  if (n == 0) return;
  if (p->bcap - p->bend < n && p->bstart > 0) {  /* slide to the front */
    memmove(p->buf, p->buf + p->bstart, have);
    p->bstart = 0;
    p->bend = have;
  }
  if (p->bcap - p->bend < n) {
    cap = p->bcap ? p->bcap : 512;
    while (cap - have < n) cap *= 2;
    if ((nb = realloc(p->buf, cap)) == NULL) luaL_error(L, "not enough memory");
    p->buf = nb;
    p->bcap = cap;
  }
  memcpy(p->buf + p->bend, s, n);
  p->bend += n;
}

/* Drops n bytes from the front; an emptied buffer is freed, so that an
 * idle connection holds none. */
static void consume(parser *p, size_t n) {
  p->bstart += n;
  if (p->bstart >= p->bend) {
    free(p->buf);
    p->buf = NULL;
    p->bstart = p->bend = p->bcap = 0;
  }
}

/* The bytes to parse: those buffered followed by data (appended), or
 * data itself when nothing is buffered (no copy; *own = 0). */
static const char *input(lua_State *L, parser *p, const char *data,
                         size_t n, size_t *len, int *own) {
  if (buffered(p) == 0) {
    *own = 0;
    *len = n;
    return data;
  }
  append(L, p, data, n);
  *own = 1;
  *len = buffered(p);
  return p->buf + p->bstart;
}

/* After parsing `used` of the `len` bytes at `in`: consumes them from the
 * buffer, or keeps the rest of data that was not buffered. */
static void settle(lua_State *L, parser *p, const char *in, size_t len,
                   size_t used, int own) {
  if (own) consume(p, used);
  else append(L, p, in + used, len - used);
}
/* }====== */

/* {====== Heads ====== */

static parser *checkparser(lua_State *L, int arg) {
  return glL_checkudatap(L, arg, parser_mt, GLH_PARSER_TYPE);
}

/* Makes the parser fail with status and message (if it has not yet) and
 * returns nil, status, message. */
static int failed(lua_State *L, parser *p, int status, const char *msg) {
  if (p->phase != PFAIL) {
    p->phase = PFAIL;
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
static int failparse(lua_State *L, parser *p) {
  enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
  if (p->fail != 0) return failed(L, p, p->fail, p->failmsg);
  if (e == HPE_HEADER_OVERFLOW)
    return failed(L, p, 431, "header too large");
  return failed(L, p, 400, http_errno_description(e));
}

/* Starts the next message. */
static void newmessage(parser *p) {
  http_parser_init(&p->hp, p->request ? HTTP_REQUEST : HTTP_RESPONSE);
  p->hp.data = p;
  p->phase = PHEAD;
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

/* RFC 9110 tchar: what a header name may hold. */
static int istoken(const char *s, size_t n) {
  static const char other[] = "!#$%&'*+-.^_`|~";
  size_t i;
  if (n == 0) return 0;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || (c != 0 && strchr(other, c) != NULL)))
      return 0;
  }
  return 1;
}

/* Checks what http-parser lets through and a server must not: names
 * that are not tokens (a space before the colon), a missing or repeated
 * host, a transfer coding other than chunked alone, another major
 * version.  Returns 0 or fails the parser. */
static int checkhead(parser *p) {
  uint32_t i, hosts = 0;
  for (i = 0; i < X.n; i++) {
    const field *f = &X.fields[i];
    if (!istoken(at(&f->name), f->name.len))
      return fail(p, 400, "invalid header name");
    if (!p->request) continue;
    if (isname(at(&f->name), f->name.len, "host")) hosts++;
    else if (isname(at(&f->name), f->name.len, "transfer-encoding") &&
             !isname(at(&f->value), trimmed(f), "chunked"))
      return fail(p, 501, "transfer coding not implemented");
    else if (isname(at(&f->name), f->name.len, "expect") &&
             isname(at(&f->value), trimmed(f), "100-continue") &&
             p->hp.http_minor >= 1)
      p->expect = 1;
  }
  if (p->hp.http_major != 1)
    return fail(p, 505, "http version not supported");
  if (p->request && (hosts > 1 || (hosts == 0 && p->hp.http_minor >= 1)))
    return fail(p, 400, hosts ? "repeated host" : "missing host");
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
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TNIL) {
      lua_pop(L, 1);
      if (cookie) lua_createtable(L, 1, 0);
      lua_pushlstring(L, at(&f->value), trimmed(f));
      if (cookie) lua_rawseti(L, -2, 1);
      lua_rawset(L, -3);
    } else if (cookie) {
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

static void setstring(lua_State *L, const char *k, const char *s, size_t n) {
  lua_pushlstring(L, s, n);
  lua_setfield(L, -2, k);
}

static void pushversion(lua_State *L, const http_parser *hp) {
  if (hp->http_major == 1 && hp->http_minor == 1) lua_pushliteral(L, "1.1");
  else if (hp->http_major == 1 && hp->http_minor == 0) lua_pushliteral(L, "1.0");
  else lua_pushfstring(L, "%d.%d", (int)hp->http_major, (int)hp->http_minor);
}

/* Pushes the request table of the head at X.base: method, target, path,
 * query, version, headers, remote_addr, remote_port, the connection (_c)
 * and the metatable of the parser's uservalues.  Returns 0, or -1 for a
 * target http-parser took but its URL parser does not (the parser then
 * fails with 400). */
static int pushrequest(lua_State *L, parser *p) {
  struct http_parser_url u;
  const char *target = at(&p->first);
  size_t tlen = p->first.off == UINT32_MAX ? 0 : p->first.len;
  const char *path = target, *query = "";
  size_t plen = tlen, qlen = 0;
  int connect = p->hp.method == HTTP_CONNECT;
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
  lua_createtable(L, 0, 12);
  if (pushpath(L, path, plen) != 0) {
    lua_pop(L, 1);
    return fail(p, 400, "invalid escape in path");
  }
  lua_setfield(L, -2, "path");
  lua_pushstring(L, http_method_str((enum http_method)p->hp.method));
  lua_setfield(L, -2, "method");
  setstring(L, "target", target, tlen);
  setstring(L, "query", query, qlen);
  pushversion(L, &p->hp);
  lua_setfield(L, -2, "version");
  pushheaders(L);
  lua_setfield(L, -2, "headers");
  lua_getiuservalue(L, 1, UV_ADDR);
  lua_setfield(L, -2, "remote_addr");
  lua_pushinteger(L, p->port);
  lua_setfield(L, -2, "remote_port");
  lua_getiuservalue(L, 1, UV_CONN);
  lua_setfield(L, -2, "_c");
  if (lua_getiuservalue(L, 1, UV_META) == LUA_TTABLE) lua_setmetatable(L, -2);
  else lua_pop(L, 1);
  return 0;
}

/* Pushes the response table: status, reason, version, headers. */
static void pushresponse(lua_State *L, parser *p) {
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, p->hp.status_code);
  lua_setfield(L, -2, "status");
  if (p->first.off == UINT32_MAX) lua_pushliteral(L, "");
  else lua_pushlstring(L, at(&p->first), p->first.len);
  lua_setfield(L, -2, "reason");
  pushversion(L, &p->hp);
  lua_setfield(L, -2, "version");
  pushheaders(L);
  lua_setfield(L, -2, "headers");
}

/* Keeps the fields of a partial head for the next call; returns -1 out
 * of memory. */
static int savefields(parser *p) {
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
static void restorefields(lua_State *L, parser *p) {
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

/* p:head([data], [nobody]) -> head | false | nil, status, message.
 * Parses data (a string; nil: only what is buffered) after what was
 * buffered.  Returns the head once it is complete (the request table for
 * a request parser, {status, reason, version, headers} for a response
 * parser; the rest of the bytes stay buffered for body and the next
 * head), false if more bytes are needed, or nil, status, message for a
 * bad message (400, 431 head over max_header, 413 content-length over
 * max_body, 501, 505; the parser then stays failed).  `nobody`: the
 * response answers HEAD, so it has no body. */
static int parser_head(lua_State *L) {
  parser *p = checkparser(L, 1);
  size_t n = 0, len, used, headlen;
  const char *data = luaL_optlstring(L, 2, NULL, &n), *in;
  int own;
  if (p->phase == PFAIL) return failed(L, p, p->fail, p->failmsg);
  if (p->phase == PBODY)
    return luaL_error(L, "the body of the last message is not read");
  if (p->phase == PDONE) newmessage(p);
  p->nobody = (unsigned char)lua_toboolean(L, 3);
  in = input(L, p, data, n, &len, &own);
  if (len == p->fed) {  /* nothing new */
    lua_pushboolean(L, 0);
    return 1;
  }
  restorefields(L, p);
  used = execute(p, in, in + p->fed, len - p->fed);
  if (!p->headdone) {
    if (HTTP_PARSER_ERRNO(&p->hp) != HPE_OK) return failparse(L, p);
    p->fed += (uint32_t)used;
    if (p->fed > p->maxheader) return failed(L, p, 431, "header too large");
    if (savefields(p) != 0) return failed(L, p, 500, "not enough memory");
    if (!own) append(L, p, in, len);  /* keep the partial head */
    lua_pushboolean(L, 0);
    return 1;
  }
  headlen = p->fed + used;
  if (HTTP_PARSER_ERRNO(&p->hp) != HPE_PAUSED) return failparse(L, p);
  if (headlen > p->maxheader) return failed(L, p, 431, "header too large");
  if (checkhead(p) != 0) return failed(L, p, p->fail, p->failmsg);
  p->minor = (unsigned char)p->hp.http_minor;
  p->keepalive = (unsigned char)http_should_keep_alive(&p->hp);
  p->upgrade = (unsigned char)p->hp.upgrade;
  if (p->request) {
    p->ishead = p->hp.method == HTTP_HEAD;
    if (p->phase != PDONE && !(p->hp.flags & F_CHUNKED) &&
        p->hp.content_length > p->maxbody)
      return failed(L, p, 413, "body too large");
    if (pushrequest(L, p) != 0) return failed(L, p, p->fail, p->failmsg);
  } else {
    pushresponse(L, p);
  }
  if (p->phase != PDONE) p->phase = PBODY;
  p->fed = 0;
  X.n = 0;
  settle(L, p, in, len, headlen, own);
  return 1;
}

/* Pushes the body read and lets go of it. */
static int takebody(lua_State *L, parser *p) {
  lua_pushlstring(L, p->body != NULL ? p->body : "", p->bodylen);
  free(p->body);
  p->body = NULL;
  p->bodylen = p->bodycap = 0;
  return 1;
}

/* p:body([data], [eof]) -> body | false | nil, status, message.  Goes on
 * with the body of the message whose head was read, from what is
 * buffered and data; `eof` says the peer closed (a response body read
 * until the close ends there).  Returns the whole body once complete
 * ("" after skipbody, or for a message without one; the bytes after it
 * stay buffered), false if more are needed, or nil, status, message:
 * 413 past max_body, 400 for a bad chunk, 0 "closed" when the peer
 * closed before the end. */
static int parser_body(lua_State *L) {
  parser *p = checkparser(L, 1);
  size_t n = 0, len, used;
  const char *data = luaL_optlstring(L, 2, NULL, &n), *in;
  int eof = lua_toboolean(L, 3), own;
  if (p->phase == PFAIL) return failed(L, p, p->fail, p->failmsg);
  if (p->phase == PHEAD) return luaL_error(L, "no message head was read");
  if (p->phase == PDONE) return takebody(L, p);
  in = input(L, p, data, n, &len, &own);
  if (len > 0) {
    used = execute(p, in, in, len);
    settle(L, p, in, len, used, own);
  }
  if (p->phase != PDONE && HTTP_PARSER_ERRNO(&p->hp) == HPE_OK && eof &&
      buffered(p) == 0)
    execute(p, NULL, NULL, 0);  /* the end: completes a read-until-close */
  if (p->phase == PDONE) return takebody(L, p);
  if (HTTP_PARSER_ERRNO(&p->hp) != HPE_OK) {
    if (eof && p->fail == 0 &&
        HTTP_PARSER_ERRNO(&p->hp) == HPE_INVALID_EOF_STATE)
      return failed(L, p, 0, "closed");
    return failparse(L, p);
  }
  if (eof) return failed(L, p, 0, "closed");
  lua_pushboolean(L, 0);
  return 1;
}

/* p:skipbody(): the rest of the body is read and dropped (drained), not
 * kept. */
static int parser_skipbody(lua_State *L) {
  parser *p = checkparser(L, 1);
  p->skipbody = 1;
  free(p->body);
  p->body = NULL;
  p->bodylen = p->bodycap = 0;
  return 0;
}

/* p:state() -> "head", "body", "done" or "failed" */
static int parser_state(lua_State *L) {
  static const char *const names[] = {"head", "body", "done", "failed"};
  lua_pushstring(L, names[checkparser(L, 1)->phase]);
  return 1;
}

/* p:continue() -> true if the request expects 100-continue and the 100
 * was not sent yet (it counts as sent from then on), else false. */
static int parser_continue(lua_State *L) {
  parser *p = checkparser(L, 1);
  lua_pushboolean(L, p->expect && p->phase == PBODY);
  p->expect = 0;
  return 1;
}

/* p:take() -> the bytes buffered after the last message (for another
 * protocol: an upgrade), leaving none. */
static int parser_take(lua_State *L) {
  parser *p = checkparser(L, 1);
  lua_pushlstring(L, p->buf != NULL ? p->buf + p->bstart : "", buffered(p));
  consume(p, buffered(p));
  return 1;
}

/* p:buffered() -> how many bytes wait in the parser's buffer */
static int parser_buffered(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)buffered(checkparser(L, 1)));
  return 1;
}

/* p:keepalive() -> whether the last message lets the connection carry
 * another (http_should_keep_alive), and whether it asked for an upgrade */
static int parser_keepalive(lua_State *L) {
  parser *p = checkparser(L, 1);
  lua_pushboolean(L, p->keepalive);
  lua_pushboolean(L, p->upgrade);
  return 2;
}

static int parser_gc(lua_State *L) {
  parser *p = checkparser(L, 1);
  free(p->buf);
  free(p->saved);
  free(p->body);
  p->buf = p->body = NULL;
  p->saved = NULL;
  p->bstart = p->bend = p->bcap = p->bodylen = p->bodycap = 0;
  p->nsaved = 0;
  return 0;
}

static int parser_tostring(lua_State *L) {
  parser *p = checkparser(L, 1);
  lua_pushfstring(L, "%s (%s): %p", GLH_PARSER_TYPE,
                  p->request ? "request" : "response", (void *)p);
  return 1;
}

void glH_checkinfo(lua_State *L, int arg, glH_info *info) {
  parser *p = checkparser(L, arg);
  info->request = p->request;
  info->head = p->request ? p->ishead : p->nobody;
  info->minor = p->minor;
  info->keepalive = p->keepalive;
  info->expect = p->expect;
  info->bodyleft = p->phase == PBODY;
  info->upgrade = p->upgrade;
}

const char *glH_reason(int status) {
  const char *s = http_status_str((enum http_status)status);
  return strcmp(s, "<unknown>") == 0 ? NULL : s;
}
/* }====== */

/* {====== Constructors and URLs ====== */

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

static parser *newparser(lua_State *L, int request, int nuv) {
  lua_Integer maxheader = luaL_checkinteger(L, 1);
  lua_Number maxbody = luaL_optnumber(L, 2, -1);
  parser *p;
  luaL_argcheck(L, maxheader > 0 && maxheader <= INT32_MAX, 1,
                "out of range");
  p = lua_newuserdatauv(L, sizeof *p, nuv);
  memset(p, 0, sizeof *p);
  p->request = (unsigned char)request;
  p->maxheader = (size_t)maxheader;
  p->maxbody = maxbody < 0 || maxbody >= 0x1p63 ? UINT64_MAX
                                                 : (uint64_t)maxbody;
  headerlimit(p->maxheader);
  newmessage(p);
  luaL_setmetatable(L, GLH_PARSER_TYPE);
  return p;
}

/* core.requestparser(max_header, max_body, meta, conn, addr, port) -> p:
 * a request parser whose request tables get `meta` as metatable, `conn`
 * as _c and the peer's address.  max_body nil or negative: no limit. */
static int core_requestparser(lua_State *L) {
  parser *p = newparser(L, 1, UV_COUNT);
  p->port = luaL_optinteger(L, 6, 0);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, -2, UV_META);
  lua_pushvalue(L, 4);
  lua_setiuservalue(L, -2, UV_CONN);
  lua_pushvalue(L, 5);
  lua_setiuservalue(L, -2, UV_ADDR);
  return 1;
}

/* core.responseparser(max_header, [max_body]) -> p */
static int core_responseparser(lua_State *L) {
  newparser(L, 0, 0);
  return 1;
}

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

static const luaL_Reg parser_methods[] = {
  {"head", parser_head},
  {"body", parser_body},
  {"skipbody", parser_skipbody},
  {"state", parser_state},
  {"continue", parser_continue},
  {"take", parser_take},
  {"buffered", parser_buffered},
  {"keepalive", parser_keepalive},
  {NULL, NULL}
};

static const luaL_Reg parser_meta[] = {
  {"__gc", parser_gc},
  {"__close", parser_gc},
  {"__tostring", parser_tostring},
  {NULL, NULL}
};

/* core.reason(status) -> the reason phrase ("OK") or nil */
static int core_reason(lua_State *L) {
  const char *r = glH_reason((int)luaL_checkinteger(L, 1));
  if (r == NULL) return 0;
  lua_pushstring(L, r);
  return 1;
}

static const luaL_Reg core_funcs[] = {
  {"reason", core_reason},
  {"requestparser", core_requestparser},
  {"responseparser", core_responseparser},
  {"parseurl", core_parseurl},
  {NULL, NULL}
};
/* }====== */

int luaopen_green_http_parser(lua_State *L);
int luaopen_green_http_parser(lua_State *L) {
  glL_newclass(L, GLH_PARSER_TYPE, parser_methods, parser_meta);
  glL_setmtkey(L, &parser_mt);
  lua_pop(L, 1);
  glH_pushcore(L);
  luaL_setfuncs(L, core_funcs, 0);
  lua_pop(L, 1);
  return 0;
}
