/* Codecs of green.http: percent-decoding (paths, query strings,
 * green.http.parse_query), tokens, and gzip/deflate bodies with zlib;
 * plus the table of private functions the Lua parts share
 * (glH_pushcore). */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "http.h"

#define CORE_NAME "green.http.core"

void glH_pushcore(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, CORE_NAME) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, CORE_NAME);
  }
  lua_remove(L, -2);
}

/* RFC 9110 tchar, by byte. */
static const unsigned char tchar[256] = {
  ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
  ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
  ['`'] = 1, ['|'] = 1, ['~'] = 1,
  ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
  ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
  ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
  ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
  ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
  ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
  ['Y'] = 1, ['Z'] = 1,
  ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
  ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
  ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
  ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
  ['y'] = 1, ['z'] = 1,
};

int glH_istoken(const char *s, size_t n) {
  size_t i;
  if (n == 0) return 0;
  for (i = 0; i < n; i++)
    if (!tchar[(unsigned char)s[i]]) return 0;
  return 1;
}

/* {====== Percent-decoding ====== */

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

size_t glH_unescape(const char *s, size_t n, char *out, int flags) {
  size_t i, o = 0;
  for (i = 0; i < n; i++) {
    int hi, lo;
    if (s[i] == '%' && i + 2 < n &&
        (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
        (lo = hexval((unsigned char)s[i + 2])) >= 0) {
      out[o++] = (char)(hi << 4 | lo);
      i += 2;
    } else if (s[i] == '%' && !(flags & GLH_LENIENT)) {
      return (size_t)-1;
    } else if (s[i] == '+' && (flags & GLH_PLUS)) {
      out[o++] = ' ';
    } else {
      out[o++] = s[i];
    }
  }
  return o;
}

/* Pushes n bytes at s, percent-decoded with '+' as a space (bad escapes
 * are kept as they are). */
static void pushformpart(lua_State *L, const char *s, size_t n) {
  luaL_Buffer b;
  char *out;
  if (memchr(s, '%', n) == NULL && memchr(s, '+', n) == NULL) {
    lua_pushlstring(L, s, n);
    return;
  }
  out = luaL_buffinitsize(L, &b, n);
  luaL_pushresultsize(&b, glH_unescape(s, n, out, GLH_PLUS | GLH_LENIENT));
}

/* green.http.parse_query(s) -> table: "a=1&b=x%20y" gives {a = "1",
 * b = "x y"}.  Names and values are percent-decoded ('+' is a space); a
 * name without '=' gets ""; a repeated name gets an array of its values,
 * in order (as OpenResty's get_uri_args). */
static int http_parse_query(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n), *end = s + n;
  lua_newtable(L);
  while (s < end) {
    const char *amp = memchr(s, '&', (size_t)(end - s)), *eq;
    size_t len = (size_t)((amp != NULL ? amp : end) - s);
    if (len > 0) {
      eq = memchr(s, '=', len);
      pushformpart(L, s, eq != NULL ? (size_t)(eq - s) : len);
      if (eq != NULL) pushformpart(L, eq + 1, len - (size_t)(eq - s) - 1);
      else lua_pushliteral(L, "");
      lua_pushvalue(L, -2);
      switch (lua_rawget(L, -4)) {
        case LUA_TNIL:  /* first: name = value */
          lua_pop(L, 1);
          lua_rawset(L, -3);
          break;
        case LUA_TTABLE:  /* third and later: appended */
          lua_insert(L, -2);
          lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
          lua_pop(L, 2);
          break;
        default:  /* second: {first, value} */
          lua_createtable(L, 2, 0);
          lua_insert(L, -2);
          lua_rawseti(L, -2, 1);
          lua_insert(L, -2);
          lua_rawseti(L, -2, 2);
          lua_rawset(L, -3);
          break;
      }
    }
    s += len + 1;
  }
  return 1;
}
/* }====== */

/* {====== gzip and deflate ====== */

/* Inflates n bytes at s with zlib's windowBits wbits into the buffer at
 * the top of the stack, up to max bytes.  Returns Z_STREAM_END, or a
 * zlib error (Z_BUF_ERROR: cut short; Z_MEM_ERROR past max). */
static int inflateinto(luaL_Buffer *b, const char *s, size_t n, int wbits,
                       size_t max, size_t *total) {
  z_stream z;
  int rc;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, wbits) != Z_OK) return Z_MEM_ERROR;
  z.next_in = (Bytef *)(uintptr_t)s;
  *total = 0;
  do {
    size_t room;
    char *out = luaL_prepbuffsize(b, 16384);
    uInt chunk = (uInt)(n - (size_t)(z.next_in - (const Bytef *)s));
    z.avail_in = chunk;
    z.next_out = (Bytef *)out;
    z.avail_out = 16384;
    rc = inflate(&z, Z_NO_FLUSH);
    room = 16384 - z.avail_out;
    luaL_addsize(b, room);
    *total += room;
    if (*total > max) rc = Z_MEM_ERROR;
    /* a gzip body may hold several members, one after the other */
    if (rc == Z_STREAM_END && wbits > 15 && z.avail_in > 0) {
      rc = inflateReset(&z);
    }
  } while (rc == Z_OK);
  inflateEnd(&z);
  if (rc == Z_BUF_ERROR && z.avail_in == 0) rc = Z_DATA_ERROR;  /* cut */
  return rc;
}

/* core.inflate(data, kind, [max]) -> decoded | nil, err.  kind "gzip"
 * (also x-gzip) or "deflate" (zlib-wrapped, or raw as some servers send
 * it); past max bytes (default: none) -> nil, "body too large". */
static int core_inflate(lua_State *L) {
  static const char *const kinds[] = {"gzip", "deflate", NULL};
  size_t n, total;
  const char *s = luaL_checklstring(L, 1, &n);
  int kind = luaL_checkoption(L, 2, NULL, kinds), rc;
  lua_Number m = luaL_optnumber(L, 3, -1);
  size_t max = m < 0 || m >= 0x1p62 ? (size_t)-1 : (size_t)m;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  rc = inflateinto(&b, s, n, kind == 0 ? 16 + MAX_WBITS : MAX_WBITS, max,
                   &total);
  if (rc == Z_DATA_ERROR && kind == 1 && total == 0) {
    luaL_pushresult(&b);  /* not zlib-wrapped: raw deflate */
    lua_pop(L, 1);
    luaL_buffinit(L, &b);
    rc = inflateinto(&b, s, n, -MAX_WBITS, max, &total);
  }
  if (rc != Z_STREAM_END) {
    luaL_pushresult(&b);
    lua_pop(L, 1);
    return glL_fail(L, rc == Z_MEM_ERROR && total > max
                           ? "body too large"
                           : "invalid compressed body");
  }
  luaL_pushresult(&b);
  return 1;
}

/* core.deflate(data, [kind="gzip"]) -> compressed: for tests and for
 * servers that compress their answers. */
static int core_deflate(lua_State *L) {
  static const char *const kinds[] = {"gzip", "deflate", NULL};
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  int kind = luaL_checkoption(L, 2, "gzip", kinds), rc;
  z_stream z;
  luaL_Buffer b;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
                   kind == 0 ? 16 + MAX_WBITS : MAX_WBITS, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK)
    return luaL_error(L, "not enough memory");
  luaL_buffinit(L, &b);
  z.next_in = (Bytef *)(uintptr_t)s;
  z.avail_in = (uInt)n;
  do {
    char *out = luaL_prepbuffsize(&b, 16384);
    z.next_out = (Bytef *)out;
    z.avail_out = 16384;
    rc = deflate(&z, Z_FINISH);
    luaL_addsize(&b, 16384 - z.avail_out);
  } while (rc == Z_OK);
  deflateEnd(&z);
  luaL_pushresult(&b);
  return 1;
}
/* }====== */

static const luaL_Reg core_funcs[] = {
  {"parse_query", http_parse_query},
  {"inflate", core_inflate},
  {"deflate", core_deflate},
  {NULL, NULL}
};

int luaopen_green_http_codec(lua_State *L);
int luaopen_green_http_codec(lua_State *L) {
  glH_pushcore(L);
  luaL_setfuncs(L, core_funcs, 0);
  lua_pop(L, 1);
  return 0;
}
