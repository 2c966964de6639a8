/* The keys of the WebSocket opening handshake (RFC 6455, 4.1 and 4.2.2),
 * with OpenSSL's SHA-1, base64 and random generator: a client's
 * Sec-WebSocket-Key and the server's Sec-WebSocket-Accept.  The rest of
 * the handshake is websocket.lua's. */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "websocket.h"

static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* core.wsaccept(key) -> the Sec-WebSocket-Accept for a client's key, or
 * nil if the key is not the base64 form of 16 bytes */
static int core_wsaccept(lua_State *L) {
  size_t n;
  const char *key = luaL_checklstring(L, 1, &n);
  unsigned char raw[24], md[EVP_MAX_MD_SIZE], out[64];
  char in[24 + sizeof GUID];
  unsigned int mdlen;
  if (n != 24 || key[22] != '=' || key[23] != '=' ||
      EVP_DecodeBlock(raw, (const unsigned char *)key, 24) != 18)
    return 0;
  memcpy(in, key, 24);
  memcpy(in + 24, GUID, sizeof GUID - 1);
  if (EVP_Digest(in, 24 + sizeof GUID - 1, md, &mdlen, EVP_sha1(), NULL) != 1)
    return luaL_error(L, "sha-1 failed");
  lua_pushlstring(L, (const char *)out,
                  (size_t)EVP_EncodeBlock(out, md, (int)mdlen));
  return 1;
}

/* core.wskey() -> a new Sec-WebSocket-Key: 16 random bytes, in base64 */
static int core_wskey(lua_State *L) {
  unsigned char raw[16], out[32];
  if (RAND_bytes(raw, sizeof raw) != 1)
    return luaL_error(L, "no random bytes for a websocket key");
  lua_pushlstring(L, (const char *)out,
                  (size_t)EVP_EncodeBlock(out, raw, sizeof raw));
  return 1;
}

static const luaL_Reg core_funcs[] = {
  {"wsaccept", core_wsaccept},
  {"wskey", core_wskey},
  {NULL, NULL}
};

int luaopen_green_ws_handshake(lua_State *L);
int luaopen_green_ws_handshake(lua_State *L) {
  glH_pushcore(L);
  luaL_setfuncs(L, core_funcs, 0);
  lua_pop(L, 1);
  return 0;
}
