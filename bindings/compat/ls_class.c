/* LuaSocket's classes and conventions for the compat layer: the class
 * metatables of stream objects (a master becomes a client by connecting,
 * a server by listening) and their checks, the block and total timeouts,
 * the texts of name lookup errors, and LuaSocket's clock. */
#include <stdint.h>
#include <time.h>

#include "luasocket.h"

static const char *const families[GLC_NFAMILIES] = {"tcp", "unixstream"};
static const char *const roles[GLC_NROLES] = {"master", "client", "server"};
static const int kinds[GLC_NFAMILIES] = {GLS_TCP, GLS_UNIX};

/* The class metatables, compared by address (the registry keeps them). */
static const void *classes[GLC_NFAMILIES][GLC_NROLES];

/* {====== Classes ====== */

static void classname(char *buf, size_t size, int family, const char *role) {
  snprintf(buf, size, "%s{%s}", families[family], role);
}

/* __tostring: "tcp{client}: 0x..." */
static int sock_tostring(lua_State *L) {
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__name");
  lua_pushfstring(L, "%s: %p", lua_tostring(L, -1), lua_touserdata(L, 1));
  return 1;
}

void glC_newclasses(lua_State *L, int family, const luaL_Reg *methods) {
  char name[32], group[32];
  const luaL_Reg *m;
  int role;
  if (classes[family][0] != NULL) return;
  classname(group, sizeof group, family, "any");
  for (role = 0; role < GLC_NROLES; role++) {
    classname(name, sizeof name, family, roles[role]);
    luaL_newmetatable(L, name);
    lua_newtable(L);  /* __index */
    lua_pushstring(L, name);
    lua_setfield(L, -2, "class");
    for (m = methods; m->name != NULL; m++) {
      lua_pushinteger(L, family);
      lua_pushcclosure(L, m->func, 1);
      lua_setfield(L, m->name[0] == '_' ? -3 : -2, m->name);
    }
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, sock_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, group);
    glS_addclass(L, kinds[family]);
    classes[family][role] = lua_topointer(L, -1);
    lua_pop(L, 1);
  }
}

void glC_setclass(lua_State *L, int idx, int family, int role) {
  char name[32];
  idx = lua_absindex(L, idx);
  classname(name, sizeof name, family, roles[role]);
  luaL_getmetatable(L, name);
  lua_setmetatable(L, idx);
}

int glC_role(lua_State *L, int idx) {
  const void *mt;
  int f, r;
  if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx))
    return -1;
  mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  for (f = 0; f < GLC_NFAMILIES; f++)
    for (r = 0; r < GLC_NROLES; r++)
      if (classes[f][r] == mt) return r;
  return -1;
}

glC_sock *glC_check(lua_State *L, int role) {
  int family = (int)lua_tointeger(L, lua_upvalueindex(1));
  const void *mt = NULL;
  char name[32], msg[48];
  int r;
  if (lua_type(L, 1) == LUA_TUSERDATA && lua_getmetatable(L, 1)) {
    mt = lua_topointer(L, -1);
    lua_pop(L, 1);
    for (r = 0; r < GLC_NROLES; r++)
      if (mt == classes[family][r] && (role < 0 || role == r))
        return lua_touserdata(L, 1);
  }
  classname(name, sizeof name, family, role < 0 ? "any" : roles[role]);
  snprintf(msg, sizeof msg, "%s expected", name);
  luaL_argerror(L, 1, msg);
  return NULL;
}

glC_sock *glC_newsock(lua_State *L, int family) {
  glC_sock *c = (glC_sock *)glS_newstreamx(L, kinds[family], sizeof *c);
  c->s.luasocket = 1;
  c->s.maxline = SIZE_MAX;        /* LuaSocket has no longest line */
  c->s.optset = c->s.optval = 0;  /* LuaSocket leaves Nagle on */
  c->block = c->total = -1;
  c->birthday = glC_gettime();
  c->family = family == GLC_UNIX ? AF_UNIX : AF_UNSPEC;
  glC_setclass(L, -1, family, GLC_MASTER);
  return c;
}

int glC_one(lua_State *L) {
  lua_pushnumber(L, 1);
  return 1;
}

int glC_fail(lua_State *L, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

const char *glC_gaierror(int err) {
  switch (err) {
    case UV_EAI_AGAIN: return "temporary failure in name resolution";
    case UV_EAI_BADFLAGS: return "invalid value for ai_flags";
    case UV_EAI_FAIL: return "non-recoverable failure in name resolution";
    case UV_EAI_FAMILY: return "ai_family not supported";
    case UV_EAI_MEMORY: return "memory allocation failure";
    case UV_EAI_NONAME: return "host or service not provided, or not known";
    case UV_EAI_OVERFLOW: return "argument buffer overflow";
    case UV_EAI_PROTOCOL: return "resolved protocol is unknown";
    case UV_EAI_SERVICE: return "service not supported for socket type";
    case UV_EAI_SOCKTYPE: return "ai_socktype not supported";
    case UV_EAI_NODATA: return "No address associated with hostname";
    case UV_EAI_ADDRFAMILY:
      return "Address family for hostname not supported";
    default: return glS_luasocketerror(err);
  }
}
/* }====== */

/* {====== Timeouts ====== */

double glC_gettime(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t ns(double t) { return t < 0 ? UINT64_MAX : gl_hub_ns(t); }

void glC_applytimeouts(glC_sock *c) {
  c->s.tidle = ns(c->block);
  c->s.tread = c->s.tsend = c->s.tconnect = ns(c->total);
}

uint64_t glC_stepwait(const glC_sock *c) {
  uint64_t b = ns(c->block), t = ns(c->total);
  return b < t ? b : t;
}

int glC_settimeout(lua_State *L, double *block, double *total) {
  double t = luaL_optnumber(L, 2, -1);
  const char *mode = luaL_optstring(L, 3, "b");
  luaL_argcheck(L, t == t, 2, "timeout is not a number (NaN)");
  switch (*mode) {
    case 'b': *block = t; break;
    case 'r': case 't': *total = t; break;
    default: luaL_argerror(L, 3, "invalid timeout mode");
  }
  return glC_one(L);
}

int glC_gettimeout(lua_State *L, double block, double total) {
  lua_pushnumber(L, block);
  lua_pushnumber(L, total);
  return 2;
}
/* }====== */
