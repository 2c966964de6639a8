/* green.stats(): the runtime's figures.  Greenthreads alive and by state,
 * what the parked ones wait on, switches, the hub's turns of its loop,
 * timers pending, open sockets, and the stacks: in use (private and
 * shared), displaced and the bytes their saved frames keep, greenthreads
 * parked without one, and the pool. */
#include <string.h>

#include "lauxgl.h"
#include "net/stream.h"

/* The keys of stats().waiting: a kind of park each, several for the
 * socket calls and the queue family. */
static const char *waitkey(int kind) {
  switch (kind) {
    case GL_WAIT_SLEEP: return "sleep";
    case GL_WAIT_EVENT: return "event";
    case GL_WAIT_ASYNCRESULT: return "asyncresult";
    case GL_WAIT_QUEUE_GET: case GL_WAIT_QUEUE_PUT:
    case GL_WAIT_QUEUE_PEEK: case GL_WAIT_QUEUE_JOIN: return "queue";
    case GL_WAIT_SEMAPHORE: return "semaphore";
    case GL_WAIT_JOIN: return "join";
    case GL_WAIT_OTHERS: return "others";
    case GL_WAIT_RECEIVE: case GL_WAIT_SEND:
    case GL_WAIT_ACCEPT: case GL_WAIT_CONNECT: return "socket";
    case GL_WAIT_DNS: return "dns";
    case GL_WAIT_FD: return "fd";
    case GL_WAIT_CHILD: return "child";
    case GL_WAIT_SIGNAL: return "signal";
    default: return "other";
  }
}

typedef struct counts {
  size_t running, ready, parked, fresh;
  size_t kinds[GL_WAIT_NKINDS];
} counts;

static void count(gl_task *t, void *ud) {
  counts *c = ud;
  if (t == gl_hub_current()) c->running++;
  else if (t->state == GL_TASK_NEW) c->fresh++;
  else if (t->state == GL_TASK_PARKED && t->waiter != NULL) {
    c->parked++;
    if (t->waiter->kind < GL_WAIT_NKINDS) c->kinds[t->waiter->kind]++;
  } else c->ready++;
}

#define SET(k, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, k))

/* Pushes stats().waiting: every key, 0 when none waits so. */
static void pushwaiting(lua_State *L, const counts *c) {
  int k;
  lua_createtable(L, 0, 14);
  for (k = 0; k < GL_WAIT_NKINDS; k++) {
    lua_Integer n = (lua_Integer)c->kinds[k];
    if (lua_getfield(L, -1, waitkey(k)) == LUA_TNUMBER)
      n += lua_tointeger(L, -1);
    lua_pop(L, 1);
    SET(waitkey(k), n);
  }
}

/* green.stats() -> a table of the runtime's figures */
static int green_stats(lua_State *L) {
  gl_hub_stats h;
  gl_stack_stats st;
  counts c;
  size_t tls, tlsbuffered;
  memset(&c, 0, sizeof c);
  gl_hub_getstats(&h);
  gl_stack_getstats(&st);
  gl_hub_foreach(count, &c);
  lua_createtable(L, 0, 24);
  SET("greenthreads", h.live);
  lua_createtable(L, 0, 4);
  SET("running", c.running);
  SET("ready", c.ready);
  SET("waiting", c.parked);
  SET("new", c.fresh);
  lua_setfield(L, -2, "states");
  pushwaiting(L, &c);
  lua_setfield(L, -2, "waiting");
  SET("switches", gl_hub_switches());
  SET("loop_iterations", gl_hub_loops());
  SET("timers", gl_clock_timers());
  SET("sockets", glS_nopen);
  glS_tls_counts(&tls, &tlsbuffered);
  SET("tls_streams", tls);
  SET("tls_buffered", tlsbuffered);
  SET("private_stacks", h.private_stacks);
  SET("shared_stacks", h.shared_stacks);
  SET("displaced", h.displaced);
  SET("saved_bytes", h.saved_bytes);
  SET("displacements", h.displacements);
  SET("unwound", h.unwound);
  SET("unwinds", h.unwinds);
  SET("trims", h.trims);
  SET("trimmed_bytes", h.trimmed_bytes);
  SET("stacks_total", st.total);
  SET("stacks_pooled", st.pooled);
  SET("stack_size", gl_stack_getsize());
  SET("guards_madvise", st.guard_madvise);
  SET("guards_mprotect", st.guard_mprotect);
  SET("guards_none", st.guard_none);
  return 1;
}
#undef SET

int luaopen_green_stats(lua_State *L);
int luaopen_green_stats(lua_State *L) {
  lua_pushcfunction(L, green_stats);
  lua_setfield(L, -2, "stats");
  return 0;
}
