/* LuaSocket's socket options: obj:setoption(name, value) and
 * obj:getoption(name) for TCP, UDP and Unix stream objects, with
 * LuaSocket's names, value types, results and errors, applied to the
 * object's fd as LuaSocket does (an object without an fd yet fails with
 * "setsockopt failed"). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include "luasocket.h"

enum { T_BOOL, T_INT, T_LINGER, T_MCASTIF, T_MEMBER, T_MEMBER6, T_ERROR };

/* Which objects have an option, to set (s) and to get (g). */
#define TCP_S 1
#define TCP_G 2
#define UDP_S 4
#define UDP_G 8
#define UNIX_S 16

typedef struct option {
  const char *name;
  int level, opt, type, where;
} option;

static const option options[] = {
  {"keepalive", SOL_SOCKET, SO_KEEPALIVE, T_BOOL, TCP_S | TCP_G | UNIX_S},
  {"reuseaddr", SOL_SOCKET, SO_REUSEADDR, T_BOOL,
   TCP_S | TCP_G | UDP_S | UDP_G | UNIX_S},
  {"reuseport", SOL_SOCKET, SO_REUSEPORT, T_BOOL,
   TCP_S | TCP_G | UDP_S | UDP_G},
  {"tcp-nodelay", IPPROTO_TCP, TCP_NODELAY, T_BOOL, TCP_S | TCP_G},
  {"tcp-keepidle", IPPROTO_TCP, TCP_KEEPIDLE, T_INT, TCP_S | TCP_G},
  {"tcp-keepcnt", IPPROTO_TCP, TCP_KEEPCNT, T_INT, TCP_S | TCP_G},
  {"tcp-keepintvl", IPPROTO_TCP, TCP_KEEPINTVL, T_INT, TCP_S | TCP_G},
  {"tcp-defer-accept", IPPROTO_TCP, TCP_DEFER_ACCEPT, T_INT, TCP_S},
  {"tcp-fastopen", IPPROTO_TCP, TCP_FASTOPEN, T_INT, TCP_S},
  {"tcp-fastopen-connect", IPPROTO_TCP, TCP_FASTOPEN_CONNECT, T_INT, TCP_S},
  {"ipv6-v6only", IPPROTO_IPV6, IPV6_V6ONLY, T_BOOL, TCP_S | UDP_S | UDP_G},
  {"linger", SOL_SOCKET, SO_LINGER, T_LINGER, TCP_S | TCP_G | UNIX_S},
  {"recv-buffer-size", SOL_SOCKET, SO_RCVBUF, T_INT,
   TCP_S | TCP_G | UDP_S | UDP_G},
  {"send-buffer-size", SOL_SOCKET, SO_SNDBUF, T_INT,
   TCP_S | TCP_G | UDP_S | UDP_G},
  {"error", SOL_SOCKET, SO_ERROR, T_ERROR, TCP_G | UDP_G},
  {"dontroute", SOL_SOCKET, SO_DONTROUTE, T_BOOL, UDP_S | UDP_G},
  {"broadcast", SOL_SOCKET, SO_BROADCAST, T_BOOL, UDP_S | UDP_G},
  {"ip-multicast-if", IPPROTO_IP, IP_MULTICAST_IF, T_MCASTIF, UDP_S | UDP_G},
  {"ip-multicast-ttl", IPPROTO_IP, IP_MULTICAST_TTL, T_INT, UDP_S},
  {"ip-multicast-loop", IPPROTO_IP, IP_MULTICAST_LOOP, T_BOOL,
   UDP_S | UDP_G},
  {"ip-add-membership", IPPROTO_IP, IP_ADD_MEMBERSHIP, T_MEMBER, UDP_S},
  {"ip-drop-membership", IPPROTO_IP, IP_DROP_MEMBERSHIP, T_MEMBER, UDP_S},
  {"ipv6-unicast-hops", IPPROTO_IPV6, IPV6_UNICAST_HOPS, T_INT,
   UDP_S | UDP_G},
  {"ipv6-multicast-hops", IPPROTO_IPV6, IPV6_MULTICAST_HOPS, T_INT,
   UDP_S | UDP_G},
  {"ipv6-multicast-loop", IPPROTO_IPV6, IPV6_MULTICAST_LOOP, T_BOOL,
   UDP_S | UDP_G},
  {"ipv6-add-membership", IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, T_MEMBER6,
   UDP_S},
  {"ipv6-drop-membership", IPPROTO_IPV6, IPV6_DROP_MEMBERSHIP, T_MEMBER6,
   UDP_S},
  {NULL, 0, 0, 0, 0}
};

/* The option named by argument 2 for `what` objects, or an error. */
static const option *findoption(lua_State *L, const char *what, int get) {
  const char *name = luaL_checkstring(L, 2);
  int mask = what[0] == 't' ? (get ? TCP_G : TCP_S)
           : what[0] == 'u' && what[1] == 'd' ? (get ? UDP_G : UDP_S)
           : (get ? 0 : UNIX_S);
  const option *o;
  char msg[64];
  for (o = options; o->name != NULL; o++)
    if (strcmp(o->name, name) == 0 && (o->where & mask)) return o;
  snprintf(msg, sizeof msg, "unsupported option `%.35s'", name);
  luaL_argerror(L, 2, msg);
  return NULL;
}

/* Checks a table field that must be a string with an IPv4 address. */
static struct in_addr checkip(lua_State *L, const char *field, int star) {
  struct in_addr a;
  char msg[64];
  lua_getfield(L, 3, field);
  if (!lua_isstring(L, -1)) {
    snprintf(msg, sizeof msg, "string '%s' field expected", field);
    luaL_argerror(L, 3, msg);
  }
  a.s_addr = htonl(INADDR_ANY);
  if (!(star && strcmp(lua_tostring(L, -1), "*") == 0) &&
      !inet_aton(lua_tostring(L, -1), &a)) {
    snprintf(msg, sizeof msg, "invalid '%s' ip address", field);
    luaL_argerror(L, 3, msg);
  }
  lua_pop(L, 1);
  return a;
}

static int setopt(lua_State *L, int fd, const option *o, const void *v,
                  socklen_t len) {
  if (setsockopt(fd, o->level, o->opt, v, len) != 0)
    return glC_fail(L, "setsockopt failed");
  return glC_one(L);
}

int glC_setoption(lua_State *L, int fd, const char *what) {
  const option *o = findoption(L, what, 0);
  struct linger li;
  struct ip_mreq mr;
  struct ipv6_mreq mr6;
  struct in_addr a;
  int v;
  switch (o->type) {
    case T_BOOL:
      luaL_checktype(L, 3, LUA_TBOOLEAN);
      v = lua_toboolean(L, 3);
      return setopt(L, fd, o, &v, sizeof v);
    case T_INT:
      v = (int)lua_tonumber(L, 3);
      return setopt(L, fd, o, &v, sizeof v);
    case T_LINGER:
      luaL_checktype(L, 3, LUA_TTABLE);
      lua_getfield(L, 3, "on");
      if (!lua_isboolean(L, -1))
        luaL_argerror(L, 3, "boolean 'on' field expected");
      li.l_onoff = lua_toboolean(L, -1);
      lua_getfield(L, 3, "timeout");
      if (!lua_isnumber(L, -1))
        luaL_argerror(L, 3, "number 'timeout' field expected");
      li.l_linger = (int)lua_tonumber(L, -1);
      return setopt(L, fd, o, &li, sizeof li);
    case T_MCASTIF: {
      const char *ip = luaL_checkstring(L, 3);
      a.s_addr = htonl(INADDR_ANY);
      if (strcmp(ip, "*") != 0 && !inet_aton(ip, &a))
        luaL_argerror(L, 3, "ip expected");
      return setopt(L, fd, o, &a, sizeof a);
    }
    case T_MEMBER:
      luaL_checktype(L, 3, LUA_TTABLE);
      mr.imr_multiaddr = checkip(L, "multiaddr", 0);
      mr.imr_interface = checkip(L, "interface", 1);
      return setopt(L, fd, o, &mr, sizeof mr);
    default:  /* T_MEMBER6 */
      luaL_checktype(L, 3, LUA_TTABLE);
      memset(&mr6, 0, sizeof mr6);
      lua_getfield(L, 3, "multiaddr");
      if (!lua_isstring(L, -1))
        luaL_argerror(L, 3, "string 'multiaddr' field expected");
      if (inet_pton(AF_INET6, lua_tostring(L, -1), &mr6.ipv6mr_multiaddr) != 1)
        luaL_argerror(L, 3, "invalid 'multiaddr' ip address");
      lua_getfield(L, 3, "interface");
      if (!lua_isnil(L, -1)) {
        if (!lua_isnumber(L, -1))
          luaL_argerror(L, 3, "number 'interface' field expected");
        mr6.ipv6mr_interface = (unsigned)lua_tonumber(L, -1);
      }
      return setopt(L, fd, o, &mr6, sizeof mr6);
  }
}

int glC_getoption(lua_State *L, int fd, const char *what) {
  const option *o = findoption(L, what, 1);
  struct linger li;
  struct in_addr a;
  socklen_t len;
  int v = 0, r;
  if (o->type == T_LINGER) {
    len = sizeof li;
    r = getsockopt(fd, o->level, o->opt, &li, &len);
  } else if (o->type == T_MCASTIF) {
    len = sizeof a;
    r = getsockopt(fd, o->level, o->opt, &a, &len);
  } else {
    len = sizeof v;
    r = getsockopt(fd, o->level, o->opt, &v, &len);
  }
  if (r != 0) return glC_fail(L, "getsockopt failed");
  switch (o->type) {
    case T_BOOL: lua_pushboolean(L, v); break;
    case T_INT: lua_pushnumber(L, v); break;
    case T_LINGER:
      lua_createtable(L, 0, 2);
      lua_pushboolean(L, li.l_onoff);
      lua_setfield(L, -2, "on");
      lua_pushinteger(L, li.l_linger);
      lua_setfield(L, -2, "timeout");
      break;
    case T_MCASTIF: lua_pushstring(L, inet_ntoa(a)); break;
    default:  /* T_ERROR: nil when there is none */
      if (v == 0) lua_pushnil(L);
      else lua_pushstring(L, glS_luasocketerror(-v));
      break;
  }
  return 1;
}
