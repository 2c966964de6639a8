/* Helpers shared by the bindings (glL_*), in the manner of lauxlib: reading
 * timeouts, returning failures, raising pending interrupts, making
 * classes. */
#ifndef GL_LAUXGL_H
#define GL_LAUXGL_H

#include <lauxlib.h>
#include <lua.h>

#include "green.h"

/* Reads an optional timeout in seconds at `arg`: nil or none gives
 * UINT64_MAX (wait forever), a negative number 0. */
uint64_t glL_opttimeout(lua_State *L, int arg);

/* The hub-clock deadline `timeout` ns from now (UINT64_MAX: none), and
 * the ns left until one (0 once passed), for calls that wait more than
 * once under one timeout. */
uint64_t glL_deadline(uint64_t timeout);
uint64_t glL_remaining(uint64_t deadline);

/* Pushes nil, msg and returns 2: the `nil, message` of an expected
 * failure. */
int glL_fail(lua_State *L, const char *msg);

/* Raises the pending interrupt (kill, Timeout) if rc is GL_EINTR. */
#define glL_raisepending(L, rc) \
  do { if ((rc) == GL_EINTR) gl_green_raise(L); } while (0)

/* The continuation (green.h) of a wait that ends in `true`, or in
 * `nil, "timeout"`; raises a pending interrupt. */
int glL_waited(lua_State *L, int rc, gl_waiter *w);

/* Creates metatable `name` with the `meta` functions and, unless `meta`
 * has its own __index, an __index table of `methods`.  Leaves the
 * metatable on the stack. */
void glL_newclass(lua_State *L, const char *name, const luaL_Reg *methods,
                  const luaL_Reg *meta);

/* Sets `name` in the table at the top of the stack to a callable table
 * whose __call is `ctor` (called without the table itself) and whose
 * fields are `statics`: a constructor like green.Event or green.Timeout. */
void glL_setconstructor(lua_State *L, const char *name, lua_CFunction ctor,
                        const luaL_Reg *statics);

/* Remembers in *mt the metatable on top of the stack (which must stay
 * alive: luaL_newmetatable keeps it), for glL_checkudatap. */
void glL_setmtkey(lua_State *L, const void **mt);

/* The userdata at `idx` if its metatable is the one remembered in mt,
 * else NULL (luaL_testudata by metatable address). */
void *glL_testudatap(lua_State *L, int idx, const void *mt);

/* luaL_checkudata for hot paths: compares the metatable with the one
 * remembered in mt instead of looking it up by name (a registry lookup
 * costs hundreds of instructions with many greenthreads referenced).
 * Lua's collector never moves a table, so the address identifies it. */
void *glL_checkudatap(lua_State *L, int arg, const void *mt,
                      const char *tname);

/* Pushes a new green.Timeout value for `seconds` (bindings/core/timeout.c). */
void glL_pushtimeout(lua_State *L, double seconds);

/* Checks that the caller runs in a greenthread and returns it. */
gl_green *glL_current(lua_State *L);

#endif
