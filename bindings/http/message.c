/* Formatting HTTP/1.1 messages: the head of a server's response (status
 * line, the handler's headers, date, content-length or chunked,
 * connection) with its body, the head of a client's request, and the
 * chunks of a chunked body.  Reading messages is parser.c's. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"

/* A body up to this size goes out in one string with its head; a larger
 * one is returned apart, to be sent after it, rather than copied. */
#define INLINE_BODY (64 * 1024)
#define KEEP_SCRATCH (256 * 1024)

/* {====== The output buffer ====== */

/* One buffer for every message built (one hub thread; nothing yields
 * while a message is built).  A Lua error while building (a bad header)
 * leaves it as it is, to be reset by the next message. */
static char *obuf;
static size_t olen, ocap;

static void need(lua_State *L, size_t n) {
  size_t cap;
  char *nb;
  if (ocap - olen >= n) return;
  cap = ocap ? ocap : 1024;
  while (cap - olen < n) cap *= 2;
  if ((nb = realloc(obuf, cap)) == NULL) luaL_error(L, "not enough memory");
  obuf = nb;
  ocap = cap;
}

static void put(lua_State *L, const char *s, size_t n) {
  need(L, n);
  memcpy(obuf + olen, s, n);
  olen += n;
}

#define PUTLIT(L, s) put(L, "" s, sizeof(s) - 1)

static void putuint(lua_State *L, uint64_t v, int base) {
  char tmp[24];
  int i = sizeof tmp;
  do {
    tmp[--i] = "0123456789abcdef"[v % (unsigned)base];
    v /= (unsigned)base;
  } while (v > 0);
  put(L, tmp + i, sizeof tmp - (size_t)i);
}

void glH_releaseout(void) {
  if (ocap > KEEP_SCRATCH) {
    free(obuf);
    obuf = NULL;
    ocap = 0;
  }
}

/* Pushes what was built and starts over. */
static void pushout(lua_State *L) {
  lua_pushlstring(L, obuf, olen);
  olen = 0;
  glH_releaseout();
}
/* }====== */

/* {====== Headers ====== */

/* The IMF-fixdate of now, formatted again only when the second changes
 * (by hand: strftime's names follow the locale). */
static const char *httpdate(void) {
  static const char days[] = "SunMonTueWedThuFriSat";
  static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  static char date[64];
  static time_t last = -1;
  time_t now = time(NULL);
  struct tm tm;
  if (now != last && gmtime_r(&now, &tm) != NULL) {
    snprintf(date, sizeof date, "%.3s, %02d %.3s %04d %02d:%02d:%02d GMT",
             days + 3 * tm.tm_wday, tm.tm_mday, months + 3 * tm.tm_mon,
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    last = now;
  }
  return date;
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
  if (t != LUA_TSTRING && t != LUA_TNUMBER)
    luaL_error(L, "invalid value for header '%s' (string expected, got %s)",
               name, luaL_typename(L, -1));
  v = lua_tolstring(L, -1, &vlen);
  for (i = 0; i < vlen; i++)
    if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0')
      luaL_error(L, "invalid value for header '%s' (CR, LF or NUL)", name);
  if (kind == 'l') {  /* content-length */
    uint64_t c = 0;
    sn->clbad = vlen == 0 || vlen > 19;
    for (i = 0; i < vlen && !sn->clbad; i++) {
      if (v[i] < '0' || v[i] > '9') sn->clbad = 1;
      else c = c * 10 + (uint64_t)(v[i] - '0');
    }
    sn->clen = c;
  } else if (kind == 'c' && hastoken(v, vlen, "close")) {
    sn->close = 1;
  }
  need(L, nlen + vlen + 4);
  memcpy(obuf + olen, name, nlen);
  olen += nlen;
  obuf[olen++] = ':';
  obuf[olen++] = ' ';
  memcpy(obuf + olen, v, vlen);
  olen += vlen;
  obuf[olen++] = '\r';
  obuf[olen++] = '\n';
}

/* Writes the headers of the table at idx (name -> string, number or an
 * array of them, each a line of its own) and notes those that matter. */
static void putheaders(lua_State *L, int idx, seen *sn) {
  memset(sn, 0, sizeof *sn);
  if (idx == 0 || lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    size_t n;
    const char *name;
    int kind = 0;
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "invalid header name (string expected, got %s)",
                 luaL_typename(L, -2));
    name = lua_tolstring(L, -2, &n);
    if (!glH_istoken(name, n)) luaL_error(L, "invalid header name '%s'", name);
    switch (name[0] | 0x20) {  /* the few that matter, cheaply */
      case 'a': if (lowereq(name, n, "accept-encoding")) sn->encoding = 1; break;
      case 'c':
        if (lowereq(name, n, "content-length")) kind = 'l', sn->length = 1;
        else if (lowereq(name, n, "connection")) kind = 'c', sn->connection = 1;
        break;
      case 'd': if (lowereq(name, n, "date")) sn->date = 1; break;
      case 'h': if (lowereq(name, n, "host")) sn->host = 1; break;
      case 't': if (lowereq(name, n, "transfer-encoding")) sn->te = 1; break;
      case 'u': if (lowereq(name, n, "user-agent")) sn->agent = 1; break;
      default: break;
    }
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_Integer i, len = (lua_Integer)lua_rawlen(L, -1);
      for (i = 1; i <= len; i++) {
        lua_rawgeti(L, -1, i);
        putfield(L, name, n, sn, kind);
        lua_pop(L, 1);
      }
    } else {
      putfield(L, name, n, sn, kind);
    }
    lua_pop(L, 1);
  }
}
/* }====== */

/* {====== Responses ====== */

int glH_respond(lua_State *L, glH_parser *p, lua_Integer status, int hidx,
                int bidx, int force, glH_reply *r) {
  glH_info info;
  size_t blen = 0;
  const char *body = "", *reason;
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
  if (status < 100 || status > 999)
    luaL_error(L, "invalid status %d", (int)status);
  glH_getinfo(p, &info);
  olen = 0;
  PUTLIT(L, "HTTP/1.1 ");
  putuint(L, (uint64_t)status, 10);
  put(L, " ", 1);
  reason = glH_reason((int)status);
  if (reason == NULL) reason = "Unknown";
  put(L, reason, strlen(reason));
  PUTLIT(L, "\r\n");
  putheaders(L, hidx, &sn);
  if (sn.te) luaL_error(L, "transfer-encoding is set by the server");
  r->keepalive = info.keepalive && !force && !sn.close && !info.upgrade &&
                 !(info.expect && info.bodyleft);
  r->mode = NULL;
  nobody = status < 200 || status == 204 || status == 304;
  if (!streamed) {
    if (!nobody) {
      if (!sn.length) {
        PUTLIT(L, "Content-Length: ");
        putuint(L, blen, 10);
        PUTLIT(L, "\r\n");
      } else if (!info.head && (sn.clbad || sn.clen != blen)) {
        luaL_error(L, "content-length does not match the body");
      }
    }
    if (nobody || info.head) blen = 0;
  } else if (nobody || info.head) {
    r->mode = "none";
  } else if (sn.length) {
    if (sn.clbad) luaL_error(L, "invalid content-length");
    r->mode = "length";
  } else if (info.minor >= 1) {
    r->mode = "chunked";
    PUTLIT(L, "Transfer-Encoding: chunked\r\n");
  } else {
    r->mode = "close";
    r->keepalive = 0;
  }
  if (!sn.connection) {
    if (!r->keepalive) PUTLIT(L, "Connection: close\r\n");
    else if (info.minor == 0) PUTLIT(L, "Connection: keep-alive\r\n");
  }
  if (!sn.date) {
    PUTLIT(L, "Date: ");
    put(L, httpdate(), 29);
    PUTLIT(L, "\r\n");
  }
  PUTLIT(L, "\r\n");
  r->rest = blen > INLINE_BODY;
  if (blen > 0 && !r->rest) put(L, body, blen);
  r->bytes = obuf;
  r->len = olen;
  olen = 0;
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
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  if (glH_respond(L, p, status, 3, 4, lua_toboolean(L, 5), &r) != 0)
    return 0;
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
  olen = 0;
  putuint(L, n, 16);
  PUTLIT(L, "\r\n");
  put(L, s, n);
  PUTLIT(L, "\r\n");
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
  olen = 0;
  put(L, method, mlen);
  put(L, " ", 1);
  put(L, target, tlen);
  PUTLIT(L, " HTTP/1.1\r\n");
  putheaders(L, 4, &sn);
  if (!sn.host) {
    PUTLIT(L, "Host: ");
    put(L, host, hlen);
    PUTLIT(L, "\r\n");
  }
  if (!sn.agent) PUTLIT(L, "User-Agent: greenlua\r\n");
  if (!sn.encoding) PUTLIT(L, "Accept-Encoding: gzip\r\n");
  if (!sn.length && !sn.te &&
      (body != NULL || lowereq(method, mlen, "post") ||
       lowereq(method, mlen, "put") || lowereq(method, mlen, "patch"))) {
    PUTLIT(L, "Content-Length: ");
    putuint(L, blen, 10);
    PUTLIT(L, "\r\n");
  }
  PUTLIT(L, "\r\n");
  if (body != NULL) put(L, body, blen);
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
  glH_pushcore(L);
  luaL_setfuncs(L, core_funcs, 0);
  lua_pop(L, 1);
  return 0;
}
