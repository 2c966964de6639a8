/* The worker side of greenlua --workers N (the master is host/workers.c):
 * green.worker(), and what worker.lua needs to tell the master that the
 * worker serves and to know its grace period. */
#include "proc.h"
#include "workers.h"

/* green.worker() -> this worker's number (1..N), or nil outside workers */
static int green_worker(lua_State *L) {
  if (gl_worker_id == 0) return 0;
  lua_pushinteger(L, gl_worker_id);
  return 1;
}

/* green._worker_ready(): tells the master that this worker serves (its
 * first server listens); a SIGHUP reload then stops the worker it
 * replaces.  Does nothing outside workers, or the second time. */
static int green_worker_ready(lua_State *L) {
  GL_UNUSED(L);
  gl_worker_ready();
  return 0;
}

/* green._worker_grace() -> the seconds a worker told to stop has to
 * finish what is in flight (--grace), or nil outside workers. */
static int green_worker_grace(lua_State *L) {
  if (gl_worker_id == 0) return 0;
  lua_pushnumber(L, gl_worker_grace);
  return 1;
}

static const luaL_Reg worker_funcs[] = {
  {"worker", green_worker},
  {"_worker_ready", green_worker_ready},
  {"_worker_grace", green_worker_grace},
  {NULL, NULL}
};

int luaopen_green_worker(lua_State *L);
int luaopen_green_worker(lua_State *L) {
  luaL_setfuncs(L, worker_funcs, 0);
  return 0;
}
