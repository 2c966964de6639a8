/* Formatting HTTP/1.1 messages: the head of a server's response (status
 * line, the handler's headers, date, content-length or chunked,
 * connection) with its body, the head of a client's request, and the
 * chunks of a chunked body.  Reading messages is parser.c's. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"

/* A body up to this size goes out in one string with its head; a larger
 * one is returned apart, to be sent after it, rather than copied. */
#define INLINE_BODY (64 * 1024)
#define KEEP_SCRATCH (256 * 1024)

/* {====== The output buffer ======
 * One buffer for every message built (one hub thread; nothing yields
 * while a message is built).  Building never raises: a failure (a bad
 * header, no memory) is noted in `oerr`, what follows it is skipped, and
 * the caller reports it. */

static char *obuf;
static size_t olen, ocap;
static const char *oerr;   /* why the message being built failed */
static char oerrbuf[160];

static int need(size_t n) {
  size_t cap;
  char *nb;
  if (ocap - olen >= n) return 1;
  if (oerr != NULL) return 0;
  cap = ocap ? ocap : 1024;
  while (cap - olen < n) cap *= 2;
  if ((nb = realloc(obuf, cap)) == NULL) {
    oerr = "not enough memory";
    return 0;
  }
  obuf = nb;
  ocap = cap;
  return 1;
}

static void put(const char *s, size_t n) {
  if (!need(n)) return;
  memcpy(obuf + olen, s, n);
  olen += n;
}

#define PUTLIT(s) put("" s, sizeof(s) - 1)

static void putuint(uint64_t v, int base) {
  char tmp[24];
  int i = sizeof tmp;
  do {
    tmp[--i] = "0123456789abcdef"[v % (unsigned)base];
    v /= (unsigned)base;
  } while (v > 0);
  put(tmp + i, sizeof tmp - (size_t)i);
}

/* Notes why the message failed (the first reason counts). */
static void failout(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void failout(const char *fmt, ...) {
  va_list ap;
  if (oerr != NULL) return;
  va_start(ap, fmt);
  vsnprintf(oerrbuf, sizeof oerrbuf, fmt, ap);
  va_end(ap);
  oerr = oerrbuf;
}

/* Starts a message. */
static void startout(void) {
  olen = 0;
  oerr = NULL;
}

void glH_releaseout(void) {
  if (ocap > KEEP_SCRATCH) {
    free(obuf);
    obuf = NULL;
    ocap = 0;
  }
}

/* Pushes what was built and starts over; raises if it failed. */
static void pushout(lua_State *L) {
  if (oerr != NULL) luaL_error(L, "%s", oerr);
  lua_pushlstring(L, obuf, olen);
  olen = 0;
  glH_releaseout();
}
/* }====== */

/* {====== Headers ====== */

/* The IMF-fixdate of now as a header line ("Date: ...\r\n", 37 bytes),
 * formatted again only when the second changes (by hand: strftime's
 * names follow the locale). */
#define DATE_LINE 37
static const char *dateline(void) {
  static const char days[] = "SunMonTueWedThuFriSat";
  static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  static char line[64];
  static time_t last = -1;
  time_t now = time(NULL);
  struct tm tm;
  if (now != last && gmtime_r(&now, &tm) != NULL) {
    snprintf(line, sizeof line,
             "Date: %.3s, %02d %.3s %04d %02d:%02d:%02d GMT\r\n",
             days + 3 * tm.tm_wday, tm.tm_mday, months + 3 * tm.tm_mon,
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    last = now;
  }
  return line;
}

/* The status line of `status` ("HTTP/1.1 200 OK\r\n"), kept for the
 * status asked for last. */
static const char *statusline(int status, size_t *len) {
  static char line[64];
  static size_t n;
  static int last = -1;
  if (status != last) {
    const char *reason = glH_reason(status);
    int m = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status,
                     reason != NULL ? reason : "Unknown");
    n = m > 0 && (size_t)m < sizeof line ? (size_t)m : 0;
    last = status;
  }
  *len = n;
  return line;
}

static int lowereq(const char *s, size_t n, const char *lower) {
  size_t i;
  if (strlen(lower) != n) return 0;
  for (i = 0; i < n; i++)
    if ((s[i] >= 'A' && s[i] <= 'Z' ? s[i] | 0x20 : s[i]) != lower[i])
      return 0;
  return 1;
}

/* Whether the comma-separated list s holds the token `tok` (lower). */
static int hastoken(const char *s, size_t n, const char *tok) {
  size_t i = 0, k = strlen(tok);
  while (i < n) {
    size_t j = i, e;
    while (j < n && s[j] != ',') j++;
    while (i < j && (s[i] == ' ' || s[i] == '\t')) i++;
    e = j;
    while (e > i && (s[e - 1] == ' ' || s[e - 1] == '\t')) e--;
    if (e - i == k && lowereq(s + i, k, tok)) return 1;
    i = j + 1;
  }
  return 0;
}

/* What a header name is, for the few a message sets by itself. */
enum {
  H_OTHER = 1, H_LENGTH, H_CONNECTION, H_DATE, H_HOST, H_TE, H_AGENT,
  H_ENCODING
};

/* The kind of a header name, or 0 if it is not a token. */
static int namekind(const char *name, size_t n) {
  if (!glH_istoken(name, n)) return 0;
  switch (name[0] | 0x20) {  /* the few that matter, cheaply */
    case 'a': if (lowereq(name, n, "accept-encoding")) return H_ENCODING; break;
    case 'c':
      if (lowereq(name, n, "content-length")) return H_LENGTH;
      if (lowereq(name, n, "connection")) return H_CONNECTION;
      break;
    case 'd': if (lowereq(name, n, "date")) return H_DATE; break;
    case 'h': if (lowereq(name, n, "host")) return H_HOST; break;
    case 't': if (lowereq(name, n, "transfer-encoding")) return H_TE; break;
    case 'u': if (lowereq(name, n, "user-agent")) return H_AGENT; break;
    default: break;
  }
  return H_OTHER;
}

/* The kinds of the header names messages used lately, by the address of
 * their Lua string: a short string is interned, so the same address is
 * the same name for as long as the string lives, and each one here is
 * kept alive by the slot of its entry in the registry table `namesref`
 * (an entry replaced lets its string go).  A handler returns the same
 * few names again and again; checking each name's characters and
 * comparing it with those that matter cost more than the message's
 * other work. */
#define NAME_CACHE 64
#define NAME_SHORT 40  /* LUAI_MAXSHORTLEN: longer strings are not interned */
static struct {
  const char *s;
  int kind;
} names[NAME_CACHE];
static int namesref = LUA_NOREF;

/* The kind of the name at stack index idx (n bytes at name). */
static int kindof(lua_State *L, int idx, const char *name, size_t n) {
  unsigned slot = (unsigned)(((uintptr_t)name >> 4) % NAME_CACHE);
  int kind;
  if (names[slot].s == name) return names[slot].kind;
  kind = namekind(name, n);
  if (kind != 0 && n <= NAME_SHORT && namesref != LUA_NOREF) {
    idx = lua_absindex(L, idx);
    lua_rawgeti(L, LUA_REGISTRYINDEX, namesref);
    lua_pushvalue(L, idx);
    lua_rawseti(L, -2, (lua_Integer)slot + 1);
    lua_pop(L, 1);
    names[slot].s = name;
    names[slot].kind = kind;
  }
  return kind;
}

/* The headers a message sets by itself unless the caller did. */
typedef struct seen {
  int length, te, date, connection, close, host, agent, encoding;
  uint64_t clen;   /* the content-length given */
  int clbad;       /* ... was not a number */
} seen;

/* Writes "name: value\r\n" for the value at the top of the stack (a
 * string or a number; no CR, LF or NUL). */
static void putfield(lua_State *L, const char *name, size_t nlen,
                     seen *sn, int kind) {
  size_t vlen, i;
  const char *v;
  int t = lua_type(L, -1);
  if (t != LUA_TSTRING && t != LUA_TNUMBER) {
    failout("invalid value for header '%s' (string expected, got %s)", name,
            luaL_typename(L, -1));
    return;
  }
  v = lua_tolstring(L, -1, &vlen);
  for (i = 0; i < vlen; i++)
    if ((unsigned char)v[i] <= '\r' &&
        (v[i] == '\r' || v[i] == '\n' || v[i] == '\0')) {
      failout("invalid value for header '%s' (CR, LF or NUL)", name);
      return;
    }
  if (kind == H_LENGTH) {
    uint64_t c = 0;
    sn->clbad = vlen == 0 || vlen > 19;
    for (i = 0; i < vlen && !sn->clbad; i++) {
      if (v[i] < '0' || v[i] > '9') sn->clbad = 1;
      else c = c * 10 + (uint64_t)(v[i] - '0');
    }
    sn->clen = c;
  } else if (kind == H_CONNECTION && hastoken(v, vlen, "close")) {
    sn->close = 1;
  }
  if (!need(nlen + vlen + 4)) return;
  memcpy(obuf + olen, name, nlen);
  olen += nlen;
  obuf[olen++] = ':';
  obuf[olen++] = ' ';
  memcpy(obuf + olen, v, vlen);
  olen += vlen;
  obuf[olen++] = '\r';
  obuf[olen++] = '\n';
}

/* Writes the headers of the table at idx (0 or nil: none; name ->
 * string, number or an array of them, each a line of its own) and notes
 * those that matter. */
static void putheaders(lua_State *L, int idx, seen *sn) {
  memset(sn, 0, sizeof *sn);
  if (idx == 0 || lua_isnoneornil(L, idx)) return;
  if (!lua_istable(L, idx)) {
    failout("invalid headers (table expected, got %s)",
            luaL_typename(L, idx));
    return;
  }
  lua_pushnil(L);
  while (oerr == NULL && lua_next(L, idx)) {
    size_t n;
    const char *name;
    int kind;
    if (lua_type(L, -2) != LUA_TSTRING) {
      failout("invalid header name (string expected, got %s)",
              luaL_typename(L, -2));
      lua_pop(L, 2);
      return;
    }
    name = lua_tolstring(L, -2, &n);
    switch ((kind = kindof(L, -2, name, n))) {
      case 0:
        failout("invalid header name '%s'", name);
        lua_pop(L, 2);
        return;
      case H_OTHER: break;
      case H_LENGTH: sn->length = 1; break;
      case H_CONNECTION: sn->connection = 1; break;
      case H_DATE: sn->date = 1; break;
      case H_HOST: sn->host = 1; break;
      case H_TE: sn->te = 1; break;
      case H_AGENT: sn->agent = 1; break;
      default: sn->encoding = 1; break;
    }
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_Integer i, len = (lua_Integer)lua_rawlen(L, -1);
      for (i = 1; i <= len && oerr == NULL; i++) {
        lua_rawgeti(L, -1, i);
        putfield(L, name, n, sn, kind);
        lua_pop(L, 1);
      }
    } else {
      putfield(L, name, n, sn, kind);
    }
    lua_pop(L, 1);
  }
  if (oerr != NULL) lua_pop(L, 1);  /* the key, when the loop stopped */
}
/* }====== */

/* {====== Responses ====== */

int glH_respond(lua_State *L, glH_parser *p, lua_Integer status, int hidx,
                int bidx, int force, glH_reply *r) {
  glH_info info;
  size_t blen = 0, n;
  const char *body = "", *line;
  int nobody, streamed = 0;
  seen sn;
  switch (lua_type(L, bidx)) {
    case LUA_TSTRING: case LUA_TNUMBER:
      body = lua_tolstring(L, bidx, &blen);
      break;
    case LUA_TNIL: case LUA_TNONE:
      break;
    case LUA_TBOOLEAN:
      if (!lua_toboolean(L, bidx)) {
        streamed = 1;
        break;
      }
      /* fall through */
    default:
      return -1;
  }
  startout();
  r->err = NULL;
  if (status < 100 || status > 999) {
    failout("invalid status %d", (int)status);
    r->err = oerr;
    return -2;
  }
  glH_getinfo(p, &info);
  line = statusline((int)status, &n);
  put(line, n);
  putheaders(L, hidx, &sn);
  if (sn.te) failout("transfer-encoding is set by the server");
  r->keepalive = info.keepalive && !force && !sn.close && !info.upgrade &&
                 !(info.expect && info.bodyleft);
  r->mode = NULL;
  nobody = status < 200 || status == 204 || status == 304;
  if (!streamed) {
    if (!nobody) {
      if (!sn.length) {
        PUTLIT("Content-Length: ");
        putuint(blen, 10);
        PUTLIT("\r\n");
      } else if (!info.head && (sn.clbad || sn.clen != blen)) {
        failout("content-length does not match the body");
      }
    }
    if (nobody || info.head) blen = 0;
  } else if (nobody || info.head) {
    r->mode = "none";
  } else if (sn.length) {
    if (sn.clbad) failout("invalid content-length");
    r->mode = "length";
  } else if (info.minor >= 1) {
    r->mode = "chunked";
    PUTLIT("Transfer-Encoding: chunked\r\n");
  } else {
    r->mode = "close";
    r->keepalive = 0;
  }
  if (!sn.connection) {
    if (!r->keepalive) PUTLIT("Connection: close\r\n");
    else if (info.minor == 0) PUTLIT("Connection: keep-alive\r\n");
  }
  if (!sn.date) put(dateline(), DATE_LINE);
  PUTLIT("\r\n");
  r->rest = blen > INLINE_BODY;
  if (blen > 0 && !r->rest) put(body, blen);
  r->bytes = obuf;
  r->len = olen;
  olen = 0;
  if (oerr != NULL) {
    r->err = oerr;
    return -2;
  }
  return 0;
}

/* core.response(conn, status, headers, body, close) -> bytes, keepalive,
 * [rest] | bytes, keepalive, mode | nothing: glH_respond for Lua (the
 * streamed responses and the server's own answers); `rest` is a body too
 * large to copy after the head, to be sent after `bytes`. */
static int core_response(lua_State *L) {
  glH_parser *p = glH_toparser(L, 1);
  lua_Integer status = luaL_checkinteger(L, 2);
  glH_reply r;
  int e;
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  if ((e = glH_respond(L, p, status, 3, 4, lua_toboolean(L, 5), &r)) != 0) {
    if (e == -1) return 0;
    return luaL_error(L, "%s", r.err);
  }
  lua_pushlstring(L, r.bytes, r.len);
  glH_releaseout();
  lua_pushboolean(L, r.keepalive);
  if (r.mode != NULL) {
    lua_pushstring(L, r.mode);
    return 3;
  }
  if (r.rest) {
    lua_pushvalue(L, 4);
    return 3;
  }
  return 2;
}

/* core.chunk(data) -> data framed as one chunk of a chunked body ("" for
 * empty data: the last chunk is sent by finishing). */
static int core_chunk(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  if (n == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  startout();
  putuint(n, 16);
  PUTLIT("\r\n");
  put(s, n);
  PUTLIT("\r\n");
  pushout(L);
  return 1;
}
/* }====== */

/* {====== Requests ====== */

/* core.request(method, target, host, headers, body) -> bytes: the head of
 * a client's request, with its body (a string or nil) after it.  Adds
 * Host, User-Agent, Accept-Encoding: gzip and Content-Length unless the
 * headers have them (a POST, PUT or PATCH without a body says
 * Content-Length: 0). */
static int core_request(lua_State *L) {
  size_t mlen, tlen, hlen, blen = 0, i;
  const char *method = luaL_checklstring(L, 1, &mlen);
  const char *target = luaL_checklstring(L, 2, &tlen);
  const char *host = luaL_checklstring(L, 3, &hlen);
  const char *body = luaL_optlstring(L, 5, NULL, &blen);
  seen sn;
  luaL_argcheck(L, glH_istoken(method, mlen), 1, "invalid method");
  for (i = 0; i < tlen; i++)
    if ((unsigned char)target[i] <= ' ' || target[i] == 0x7f)
      luaL_argerror(L, 2, "invalid character in target");
  if (!lua_isnoneornil(L, 4)) luaL_checktype(L, 4, LUA_TTABLE);
  startout();
  put(method, mlen);
  put(" ", 1);
  put(target, tlen);
  PUTLIT(" HTTP/1.1\r\n");
  putheaders(L, 4, &sn);
  if (!sn.host) {
    PUTLIT("Host: ");
    put(host, hlen);
    PUTLIT("\r\n");
  }
  if (!sn.agent) PUTLIT("User-Agent: greenlua\r\n");
  if (!sn.encoding) PUTLIT("Accept-Encoding: gzip\r\n");
  if (!sn.length && !sn.te &&
      (body != NULL || lowereq(method, mlen, "post") ||
       lowereq(method, mlen, "put") || lowereq(method, mlen, "patch"))) {
    PUTLIT("Content-Length: ");
    putuint(blen, 10);
    PUTLIT("\r\n");
  }
  PUTLIT("\r\n");
  if (body != NULL) put(body, blen);
  pushout(L);
  return 1;
}
/* }====== */

static const luaL_Reg core_funcs[] = {
  {"response", core_response},
  {"chunk", core_chunk},
  {"request", core_request},
  {NULL, NULL}
};

int luaopen_green_http_message(lua_State *L);
int luaopen_green_http_message(lua_State *L) {
  memset(names, 0, sizeof names);
  lua_createtable(L, NAME_CACHE, 0);
  namesref = luaL_ref(L, LUA_REGISTRYINDEX);
  glH_pushcore(L);
  luaL_setfuncs(L, core_funcs, 0);
  lua_pop(L, 1);
  return 0;
}
