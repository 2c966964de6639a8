/* LuaSocket's UDP objects (udp{unconnected}, udp{connected}) over
 * green.socket.udp: each object holds a green UDP socket (its user value)
 * and passes its calls on to it, adding LuaSocket's classes, block and
 * total timeouts (one wait per call, so the shorter bounds it), numbers
 * as floats, options on the fd, and error texts. */
#include <string.h>

#include "luasocket.h"

#define UDP_UNCONNECTED "udp{unconnected}"
#define UDP_CONNECTED "udp{connected}"
#define GREEN_UDP "green.socket.udp"

typedef struct glC_udp {
  double block, total;
  int family;
} glC_udp;

static const void *classes[2];  /* unconnected, connected */

/* The green UDP socket's methods this file passes calls to. */
enum { G_SETSOCKNAME, G_SETPEERNAME, G_GETSOCKNAME, G_GETPEERNAME, G_SEND,
       G_SENDTO, G_RECEIVE, G_RECEIVEFROM, G_SETTIMEOUT, G_GETFD, G_CLOSE,
       G_N };
static const char *const gnames[G_N] = {
  "setsockname", "setpeername", "getsockname", "getpeername", "send",
  "sendto", "receive", "receivefrom", "settimeout", "getfd", "close"
};
static lua_CFunction green[G_N];

/* {====== Checks and passing calls on ====== */

/* The object at index 1 if it is of class `want` (0 unconnected, 1
 * connected, -1 either), else LuaSocket's argument error. */
static glC_udp *checkudp(lua_State *L, int want) {
  const void *mt;
  int c;
  if (lua_type(L, 1) == LUA_TUSERDATA && lua_getmetatable(L, 1)) {
    mt = lua_topointer(L, -1);
    lua_pop(L, 1);
    for (c = 0; c < 2; c++)
      if (mt == classes[c] && (want < 0 || want == c))
        return lua_touserdata(L, 1);
  }
  luaL_argerror(L, 1, want == 0 ? UDP_UNCONNECTED " expected"
                      : want == 1 ? UDP_CONNECTED " expected"
                                  : "udp{any} expected");
  return NULL;
}

/* Calls green method m on the green socket with this call's arguments;
 * returns how many results it pushed. */
static int pass(lua_State *L, int m) {
  int top = lua_gettop(L), i;
  lua_pushcfunction(L, green[m]);
  lua_getiuservalue(L, 1, 1);
  for (i = 2; i <= top; i++) lua_pushvalue(L, i);
  lua_call(L, top, LUA_MULTRET);
  return lua_gettop(L) - top;
}

/* The green socket's fd, or -1. */
static int udpfd(lua_State *L) {
  int fd;
  lua_pushcfunction(L, green[G_GETFD]);
  lua_getiuservalue(L, 1, 1);
  lua_call(L, 1, 1);
  fd = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return fd;
}

/* Turns the number results of a call (count, port) into LuaSocket's
 * floats: replaces the value at idx. */
static void tofloat(lua_State *L, int idx) {
  if (lua_isinteger(L, idx)) {
    lua_pushnumber(L, (lua_Number)lua_tointeger(L, idx));
    lua_replace(L, idx > 0 ? idx : lua_gettop(L) + idx);
  }
}

/* Returns the n results of a passed call, with "host not found" as
 * LuaSocket's name lookups say it and the first result a float when it
 * is a number. */
static int results(lua_State *L, int n) {
  if (n == 2 && lua_isnil(L, -2)) {
    const char *e = lua_tostring(L, -1);
    if (e != NULL && strcmp(e, "host not found") == 0) {
      lua_pop(L, 1);
      lua_pushstring(L, glC_gaierror(UV_EAI_NONAME));
    }
    return 2;
  }
  if (lua_isboolean(L, -n)) {  /* true: LuaSocket says 1 */
    lua_settop(L, lua_gettop(L) - n);
    return glC_one(L);
  }
  tofloat(L, -n);
  return n;
}
/* }====== */

/* {====== Methods ====== */

static void setclass(lua_State *L, const char *name) {
  luaL_getmetatable(L, name);
  lua_setmetatable(L, 1);
}

/* Checks a port argument given as a number or a numeric string. */
static void checkport(lua_State *L, int arg) {
  lua_Integer p;
  int isnum;
  luaL_checkany(L, arg);
  p = lua_tointegerx(L, arg, &isnum);
  luaL_argcheck(L, isnum && p >= 0 && p <= 65535, arg, "invalid port");
  lua_pushinteger(L, p);
  lua_replace(L, arg);
}

/* unconnected:setsockname(address, port) -> 1 | nil, err */
static int udp_setsockname(lua_State *L) {
  checkudp(L, 0);
  luaL_checkstring(L, 2);
  checkport(L, 3);
  lua_settop(L, 3);
  return results(L, pass(L, G_SETSOCKNAME));
}

/* udp:setpeername(address, port) -> 1 | nil, err; setpeername("*")
 * makes it unconnected again. */
static int udp_setpeername(lua_State *L) {
  const char *host;
  int n, connecting;
  checkudp(L, -1);
  host = luaL_checkstring(L, 2);
  connecting = strcmp(host, "*") != 0;
  if (connecting) checkport(L, 3);
  lua_settop(L, 3);
  n = results(L, pass(L, G_SETPEERNAME));
  if (n == 1) setclass(L, connecting ? UDP_CONNECTED : UDP_UNCONNECTED);
  return n;
}

/* udp:getsockname() -> host, port (a string), family | nil, err */
static int udp_getsockname(lua_State *L) {
  int n;
  checkudp(L, -1);
  lua_settop(L, 1);
  n = pass(L, G_GETSOCKNAME);
  if (n == 3) {
    lua_pushstring(L, lua_tostring(L, -2));
    lua_replace(L, -3);
  }
  return n;
}

/* connected:getpeername() -> host, port, family | nil, err */
static int udp_getpeername(lua_State *L) {
  checkudp(L, 1);
  lua_settop(L, 1);
  return pass(L, G_GETPEERNAME);
}

/* connected:send(datagram) -> size | nil, err */
static int udp_send(lua_State *L) {
  checkudp(L, 1);
  luaL_checkstring(L, 2);
  lua_settop(L, 2);
  return results(L, pass(L, G_SEND));
}

/* unconnected:sendto(datagram, ip, port) -> size | nil, err */
static int udp_sendto(lua_State *L) {
  checkudp(L, 0);
  luaL_checkstring(L, 2);
  luaL_checkstring(L, 3);
  checkport(L, 4);
  lua_settop(L, 4);
  return results(L, pass(L, G_SENDTO));
}

/* udp:receive([size=8192]) -> datagram | nil, err */
static int udp_receive(lua_State *L) {
  checkudp(L, -1);
  lua_settop(L, 2);
  if (lua_isnoneornil(L, 2)) {
    lua_pushinteger(L, 8192);
    lua_replace(L, 2);
  }
  return pass(L, G_RECEIVE);
}

/* unconnected:receivefrom([size=8192]) -> datagram, ip, port |
 * nil, err */
static int udp_receivefrom(lua_State *L) {
  checkudp(L, 0);
  lua_settop(L, 2);
  return pass(L, G_RECEIVEFROM);
}

/* udp:settimeout([t], [mode="b"]) -> 1 */
static int udp_settimeout(lua_State *L) {
  glC_udp *u = checkudp(L, -1);
  double t;
  glC_settimeout(L, &u->block, &u->total);
  t = u->block < 0 ? u->total
      : u->total < 0 ? u->block
      : u->block < u->total ? u->block : u->total;
  lua_settop(L, 1);
  if (t >= 0) lua_pushnumber(L, t);
  else lua_pushnil(L);
  pass(L, G_SETTIMEOUT);
  return glC_one(L);
}

/* udp:gettimeout() -> block, total */
static int udp_gettimeout(lua_State *L) {
  glC_udp *u = checkudp(L, -1);
  return glC_gettimeout(L, u->block, u->total);
}

static int udp_setoption(lua_State *L) {
  checkudp(L, -1);
  return glC_setoption(L, udpfd(L), "udp");
}

static int udp_getoption(lua_State *L) {
  checkudp(L, -1);
  return glC_getoption(L, udpfd(L), "udp");
}

/* udp:getfd() -> fd (a float), -1 if it has none yet */
static int udp_getfd(lua_State *L) {
  checkudp(L, -1);
  lua_pushnumber(L, udpfd(L));
  return 1;
}

/* udp:setfd(fd): a UDP object keeps its socket; only -1 (let go) is
 * taken, as a close. */
static int udp_setfd(lua_State *L) {
  checkudp(L, -1);
  if (luaL_checknumber(L, 2) >= 0)
    return luaL_error(L, "setfd: the socket has an fd already");
  lua_settop(L, 1);
  pass(L, G_CLOSE);
  return 0;
}

/* udp:dirty() -> false: datagrams wait in the kernel */
static int udp_dirty(lua_State *L) {
  checkudp(L, -1);
  lua_pushboolean(L, 0);
  return 1;
}

/* udp:getfamily() -> "inet4" | "inet6" */
static int udp_getfamily(lua_State *L) {
  glC_udp *u = checkudp(L, -1);
  lua_pushstring(L, u->family == AF_INET6 ? "inet6" : "inet4");
  return 1;
}

/* udp:close() -> 1 */
static int udp_close(lua_State *L) {
  checkudp(L, -1);
  lua_settop(L, 1);
  pass(L, G_CLOSE);
  return glC_one(L);
}

static int udp_tostring(lua_State *L) {
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__name");
  lua_pushfstring(L, "%s: %p", lua_tostring(L, -1), lua_touserdata(L, 1));
  return 1;
}
/* }====== */

/* {====== Constructors ====== */

/* Pushes a new unconnected object over a new green UDP socket. */
static int newudp(lua_State *L, int family) {
  glC_udp *u;
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "green");
  lua_getfield(L, -1, "socket");
  lua_getfield(L, -1, "udp");
  lua_call(L, 0, 1);  /* the green socket */
  u = lua_newuserdatauv(L, sizeof *u, 1);
  u->block = u->total = -1;
  u->family = family;
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, UDP_UNCONNECTED);
  return 1;
}

static int socket_udp(lua_State *L) { return newudp(L, AF_UNSPEC); }
static int socket_udp4(lua_State *L) { return newudp(L, AF_INET); }
static int socket_udp6(lua_State *L) { return newudp(L, AF_INET6); }

static const luaL_Reg udp_methods[] = {
  {"setsockname", udp_setsockname},
  {"setpeername", udp_setpeername},
  {"getsockname", udp_getsockname},
  {"getpeername", udp_getpeername},
  {"send", udp_send},
  {"sendto", udp_sendto},
  {"receive", udp_receive},
  {"receivefrom", udp_receivefrom},
  {"settimeout", udp_settimeout},
  {"gettimeout", udp_gettimeout},
  {"setoption", udp_setoption},
  {"getoption", udp_getoption},
  {"getfd", udp_getfd},
  {"setfd", udp_setfd},
  {"dirty", udp_dirty},
  {"getfamily", udp_getfamily},
  {"close", udp_close},
  {NULL, NULL}
};

static const luaL_Reg udp_meta[] = {
  {"__gc", udp_close},
  {"__tostring", udp_tostring},
  {NULL, NULL}
};

static const luaL_Reg udp_funcs[] = {
  {"udp", socket_udp},
  {"udp4", socket_udp4},
  {"udp6", socket_udp6},
  {NULL, NULL}
};

void glC_open_udp(lua_State *L) {
  static const char *const names[2] = {UDP_UNCONNECTED, UDP_CONNECTED};
  int i;
  if (classes[0] == NULL) {
    luaL_getmetatable(L, GREEN_UDP);
    lua_getfield(L, -1, "__index");
    for (i = 0; i < G_N; i++) {
      lua_getfield(L, -1, gnames[i]);
      green[i] = lua_tocfunction(L, -1);
      lua_pop(L, 1);
      if (green[i] == NULL) luaL_error(L, "no green.socket.udp %s", gnames[i]);
    }
    lua_pop(L, 2);
    for (i = 0; i < 2; i++) {
      glL_newclass(L, names[i], udp_methods, udp_meta);
      lua_getfield(L, -1, "__index");
      lua_pushstring(L, names[i]);
      lua_setfield(L, -2, "class");
      lua_pop(L, 1);
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "udp{any}");
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "select{able}");
      classes[i] = lua_topointer(L, -1);
      lua_pop(L, 1);
    }
  }
  luaL_setfuncs(L, udp_funcs, 0);
}
/* }====== */
