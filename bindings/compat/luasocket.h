/* LuaSocket on the green streams: the compat layer's internal API
 * (glC_*).  Under greenlua, require "socket.core" (and "socket.unix")
 * gives these modules instead of LuaSocket's C ones, so that LuaSocket's
 * own Lua modules (socket.lua, socket.http, ltn12, ...) and every library
 * written on them run unchanged, with each blocking call parking only
 * the calling greenthread.  One file per concept:
 *
 *   ls_core.c     the socket.core module, its functions, and the preload
 *                 entries that make require find it first
 *   ls_class.c    LuaSocket's classes (tcp{master}, ...), checks, the
 *                 timeouts, errors and numbers as LuaSocket gives them
 *   ls_stream.c   what TCP and Unix stream objects share: receive, send,
 *                 accept, listen, stats, timeouts, close, shutdown, fds
 *   ls_tcp.c      TCP objects: create, connect, bind, names, and
 *                 socket.connect
 *   ls_unix.c     the socket.unix module (Unix stream sockets)
 *   ls_udp.c      UDP objects, over green.socket.udp
 *   ls_options.c  setoption/getoption
 *   ls_select.c   socket.select
 *   ls_dns.c      socket.dns
 *   ls_except.c   socket.newtry and socket.protect
 *
 * A stream object is a glS_stream userdata (bindings/net/stream.h) with
 * LuaSocket's fields after it and one of LuaSocket's classes as its
 * metatable; its receives use LuaSocket's conventions (s->luasocket) and
 * its block timeout is the stream's idle timeout (s->tidle). */
#ifndef GL_LUASOCKET_H
#define GL_LUASOCKET_H

#include "net/stream.h"

#define GLC_VERSION "LuaSocket 3.0.0"

/* The families of stream classes, and the role a class gives. */
enum { GLC_TCP, GLC_UNIX, GLC_NFAMILIES };
enum { GLC_MASTER, GLC_CLIENT, GLC_SERVER, GLC_NROLES };

typedef struct glC_sock {
  glS_stream s;        /* first: the userdata is a stream */
  double block, total; /* LuaSocket's timeouts in seconds; < 0: none */
  double birthday;     /* gettime() when made (getstats) */
  double sent;         /* bytes sent (getstats, setstats) */
  double recvoff;      /* received = s.nconsumed + recvoff */
  int family;          /* AF_UNSPEC until a bind or connect picks one */
  int pending;         /* a connect left in flight on s.fd (timeout 0) */
  int connerr;         /* how that connect failed, reported once */
} glC_sock;

/* {====== Classes (ls_class.c) ====== */

/* Creates the classes of `family` (once): one metatable per role, named
 * as LuaSocket's ("tcp{client}", "unixstream{server}", ...), with the
 * methods and meta methods of `methods` (names starting with "__" go to
 * the metatable), each a closure whose upvalue is the family. */
void glC_newclasses(lua_State *L, int family, const luaL_Reg *methods);

/* Gives the object at idx the class of `family` and `role`. */
void glC_setclass(lua_State *L, int idx, int family, int role);

/* The object at index 1 if its class is that of `role` in the family of
 * the running method (its upvalue), else raises LuaSocket's argument
 * error ("tcp{client} expected"); role -1 accepts any role ("tcp{any}"). */
glC_sock *glC_check(lua_State *L, int role);

/* The role of the object at idx, or -1 if it is no LuaSocket stream. */
int glC_role(lua_State *L, int idx);

/* Pushes a new fresh stream object of `family` with the master class. */
glC_sock *glC_newsock(lua_State *L, int family);

/* Pushes 1 (as LuaSocket's lua_pushnumber does) and returns 1. */
int glC_one(lua_State *L);

/* Pushes nil, msg and returns 2. */
int glC_fail(lua_State *L, const char *msg);

/* LuaSocket's text for a getaddrinfo error (a libuv UV_EAI_* code). */
const char *glC_gaierror(int err);
/* }====== */

/* {====== Timeouts (ls_class.c) ====== */

/* LuaSocket's clock: seconds since the epoch. */
double glC_gettime(void);

/* Sets the stream's deadlines from c->block and c->total. */
void glC_applytimeouts(glC_sock *c);

/* The wait allowed for one blocking step: min(block, total) in ns,
 * UINT64_MAX for none. */
uint64_t glC_stepwait(const glC_sock *c);

/* obj:settimeout(t, [mode]) and obj:gettimeout() on the block and total
 * timeouts at *block, *total. */
int glC_settimeout(lua_State *L, double *block, double *total);
int glC_gettimeout(lua_State *L, double block, double total);
/* }====== */

/* {====== Streams (ls_stream.c) ====== */

/* The methods TCP and Unix stream objects share; glC_open_streams
 * readies them (once, before any is called). */
extern const luaL_Reg glC_stream_methods[];
void glC_open_streams(void);

/* Settles a connect left in flight (c->pending): waits up to `wait` ns
 * for it to end and then wraps the fd into the stream.  Returns 0 when
 * the stream is connected or the connect is still in flight (see
 * c->pending), or a libuv error when it failed; raises an interrupt. */
int glC_settle(lua_State *L, glC_sock *c, uint64_t wait);
/* }====== */

/* {====== Module parts ====== */

/* Add their functions to the socket.core table on top of the stack. */
void glC_open_tcp(lua_State *L);
void glC_open_udp(lua_State *L);
void glC_open_select(lua_State *L);
void glC_open_dns(lua_State *L);
void glC_open_except(lua_State *L);

/* The socket.unix module (ls_unix.c). */
int glC_luaopen_socket_unix(lua_State *L);

/* setoption/getoption on fd for objects of class kind `what` ("tcp",
 * "udp", "unix"), as LuaSocket's option tables (ls_options.c). */
int glC_setoption(lua_State *L, int fd, const char *what);
int glC_getoption(lua_State *L, int fd, const char *what);

/* Pushes the address of fd's local or peer end as LuaSocket does:
 * host, port (a string for the local end), family name; or nil, err. */
int glC_pushname(lua_State *L, int fd, int peer);
/* }====== */

#endif
