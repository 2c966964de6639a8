/* green.socket.dns: name lookups with uv_getaddrinfo, which runs on
 * libuv's thread pool, so only the calling greenthread waits.  The lookup
 * itself is resolve.c's glS_getaddrinfo, shared with connect and bind. */
#include <netinet/in.h>
#include <string.h>

#include "stream.h"

/* Looks up `name` (IPv4 and IPv6, one entry per address); raises a
 * pending interrupt.  Returns the list or NULL after pushing nil, err. */
static struct addrinfo *lookup(lua_State *L, const char *name) {
  int rc, err;
  struct addrinfo *res =
      glS_getaddrinfo(name, SOCK_STREAM, NULL, UINT64_MAX, &rc, &err);
  glL_raisepending(L, rc);
  if (res == NULL) glS_fail(L, err);
  return res;
}

/* dns.toip(name) -> the first address name resolves to | nil, err */
static int dns_toip(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  struct addrinfo *res, *ai;
  struct sockaddr_storage ss;
  if (strchr(name, ':') == NULL
      && uv_ip4_addr(name, 0, (struct sockaddr_in *)&ss) == 0) {
    lua_settop(L, 1);  /* already an address */
    return 1;
  }
  if (uv_ip6_addr(name, 0, (struct sockaddr_in6 *)&ss) == 0) {
    glS_pushaddr(L, (struct sockaddr *)&ss);
    return 1;
  }
  if ((res = lookup(L, name)) == NULL) return 2;
  for (ai = res; ai != NULL; ai = ai->ai_next)
    if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6) break;
  if (ai == NULL) {
    uv_freeaddrinfo(res);
    return glS_fail(L, UV_EAI_NONAME);
  }
  memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
  uv_freeaddrinfo(res);
  glS_pushaddr(L, (struct sockaddr *)&ss);
  return 1;
}

/* dns.getaddrinfo(name) -> {{family="inet"|"inet6", addr=...}, ...} |
 * nil, err.  The list is copied out before any Lua allocation, so an
 * allocation error leaks nothing. */
static int dns_getaddrinfo(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  struct sockaddr_storage addrs[32];
  struct addrinfo *res, *ai;
  int n = 0, i;
  if ((res = lookup(L, name)) == NULL) return 2;
  for (ai = res; ai != NULL && n < 32; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    memset(&addrs[n], 0, sizeof addrs[n]);
    memcpy(&addrs[n], ai->ai_addr, ai->ai_addrlen);
    n++;
  }
  uv_freeaddrinfo(res);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, addrs[i].ss_family == AF_INET6 ? "inet6" : "inet");
    lua_setfield(L, -2, "family");
    glS_pushaddr(L, (struct sockaddr *)&addrs[i]);
    lua_setfield(L, -2, "addr");
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* dns.gethostname() -> the host's name | nil, err */
static int dns_gethostname(lua_State *L) {
  char buf[UV_MAXHOSTNAMESIZE];
  size_t size = sizeof buf;
  int e = uv_os_gethostname(buf, &size);
  if (e < 0) return glS_fail(L, e);
  lua_pushstring(L, buf);
  return 1;
}

static const luaL_Reg dns_funcs[] = {
  {"toip", dns_toip},
  {"getaddrinfo", dns_getaddrinfo},
  {"gethostname", dns_gethostname},
  {NULL, NULL}
};

int luaopen_green_dns(lua_State *L);
int luaopen_green_dns(lua_State *L) {
  glS_init();
  glS_pushsockets(L);
  if (lua_getfield(L, -1, "dns") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "dns");
  }
  luaL_setfuncs(L, dns_funcs, 0);
  lua_pop(L, 2);
  return 0;
}
