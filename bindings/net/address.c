/* Addresses, error messages and argument checks shared by the socket
 * bindings: libuv errors as short lower-case messages, socket addresses
 * as host, port and family, timeouts and ports as arguments.  Name
 * lookups are in resolve.c. */
#include "stream.h"

#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

uint64_t glS_opttimeout(lua_State *L, int arg) {
  lua_Number t;
  if (lua_isnoneornil(L, arg)) return UINT64_MAX;
  t = luaL_checknumber(L, arg);
  luaL_argcheck(L, t == t, arg, "timeout is not a number (NaN)");
  return t < 0 ? UINT64_MAX : gl_hub_ns(t);
}

int glS_checkport(lua_State *L, int arg) {
  lua_Integer p = luaL_checkinteger(L, arg);
  luaL_argcheck(L, p >= 0 && p <= 65535, arg, "port out of range");
  return (int)p;
}

const char *glS_strerror(int err, char *buf, size_t size) {
  const char *m;
  size_t n;
  switch (err) {
    case UV_EOF: case UV_EPIPE: case UV_ECANCELED: return "closed";
    case UV_ETIMEDOUT: return "timeout";
    case UV_EAI_NONAME: return "host not found";
    default: break;
  }
  m = uv_strerror(err);
  n = strlen(m);
  if (n >= size) n = size - 1;
  memcpy(buf, m, n);
  buf[n] = '\0';
  if (n > 0 && buf[n - 1] == '.') buf[--n] = '\0';
  if (buf[0] >= 'A' && buf[0] <= 'Z') buf[0] = (char)(buf[0] - 'A' + 'a');
  return buf;
}

const char *glS_luasocketerror(int err) {
  switch (err) {
    case UV_EOF: case UV_EPIPE: case UV_ECANCELED: case UV_ECONNRESET:
    case UV_ECONNABORTED:
      return "closed";
    case UV_ETIMEDOUT: return "timeout";
    case UV_EADDRINUSE: return "address already in use";
    case UV_EISCONN: return "already connected";
    case UV_EACCES: return "permission denied";
    case UV_ECONNREFUSED: return "connection refused";
    default: return err < 0 ? strerror(-err) : "unknown error";
  }
}

int glS_fail(lua_State *L, int err) {
  char buf[128];
  return glL_fail(L, glS_strerror(err, buf, sizeof buf));
}

void glS_pushaddr(lua_State *L, const struct sockaddr *sa) {
  char host[INET6_ADDRSTRLEN + 1] = "";
  if (sa->sa_family == AF_INET6)
    uv_ip6_name((const struct sockaddr_in6 *)sa, host, sizeof host);
  else
    uv_ip4_name((const struct sockaddr_in *)sa, host, sizeof host);
  lua_pushstring(L, host);
}

int glS_pushsockaddr(lua_State *L, const struct sockaddr *sa) {
  switch (sa->sa_family) {
    case AF_INET:
      glS_pushaddr(L, sa);
      lua_pushinteger(L, ntohs(((const struct sockaddr_in *)sa)->sin_port));
      lua_pushliteral(L, "inet");
      return 3;
    case AF_INET6:
      glS_pushaddr(L, sa);
      lua_pushinteger(L,
                      ntohs(((const struct sockaddr_in6 *)sa)->sin6_port));
      lua_pushliteral(L, "inet6");
      return 3;
    case AF_UNIX: {
      const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
      lua_pushstring(L, un->sun_path);  /* "" if unnamed */
      return 1;
    }
    default:
      return glL_fail(L, "unknown address family");
  }
}
