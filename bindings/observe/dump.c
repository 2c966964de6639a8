/* green.dump(): every greenthread, oldest first: its id and name, its
 * state (running, ready, new, or what it waits on and for how long) and
 * its Lua traceback.  SIGQUIT prints the same on stderr and the program
 * goes on.  Parked greenthreads are read, never run: their waiter (the
 * hub repoints it at the saved copy while their shared stack is
 * displaced; it lives in their object once they gave the stack up) and
 * their Lua threads, whose frames are in Lua's heap whatever became of
 * their C stack. */
#include <stdio.h>
#include <string.h>

#include "lauxgl.h"

typedef struct dumping {
  lua_State *L;        /* where the text is built */
  luaL_Buffer *b;
  lua_State *caller;   /* the thread green.dump was called from, or NULL */
  uint64_t now;
} dumping;

static double secs(uint64_t ns) { return (double)ns / 1e9; }

/* What the park on w waits on, in words: the layer's describer for its
 * kind if there is one, else the object in the form of its tostring, the
 * time left of a sleep, the greenthread joined. */
static void describe(const gl_waiter *w, uint64_t now, char *buf,
                     size_t n) {
  gl_wait_describer fn = gl_wait_getdescriber(w->kind);
  size_t used;
  char name[64];
  buf[0] = '\0';
  if (fn != NULL) {
    fn(w, buf, n);
  } else {
    switch (w->kind) {
      case GL_WAIT_SLEEP:
        break;  /* the time left, below */
      case GL_WAIT_EVENT:
        snprintf(buf, n, "green.Event: %p", w->obj);
        break;
      case GL_WAIT_ASYNCRESULT:
        snprintf(buf, n, "green.AsyncResult: %p", w->obj);
        break;
      case GL_WAIT_QUEUE_GET: case GL_WAIT_QUEUE_PUT:
      case GL_WAIT_QUEUE_PEEK: case GL_WAIT_QUEUE_JOIN:
        snprintf(buf, n, "queue: %p", w->obj);
        break;
      case GL_WAIT_SEMAPHORE:
        snprintf(buf, n, "semaphore: %p", w->obj);
        break;
      case GL_WAIT_JOIN: {
        const gl_task *t = &((const gl_green *)w->obj)->task;
        snprintf(buf, n, "greenthread %llu %s", (unsigned long long)t->id,
                 gl_task_name(t, name, sizeof name));
        break;
      }
      case GL_WAIT_OTHERS:
        snprintf(buf, n, "the other greenthreads to end");
        break;
      case GL_WAIT_FD:
        snprintf(buf, n, "fd %d", (int)w->n);
        break;
      default:
        if (w->obj != NULL) snprintf(buf, n, "%p", w->obj);
        break;
    }
  }
  if (w->timer.slot == 0) return;  /* no deadline */
  used = strlen(buf);
  if (used + 1 >= n) return;
  snprintf(buf + used, n - used, "%s%.3f s left%s",
           used > 0 ? ", " : "",
           w->timer.due > now ? secs(w->timer.due - now) : 0.0,
           w->kind == GL_WAIT_SLEEP ? "" : " until its timeout");
}

/* Appends the traceback of T from `level`, after the line `what`. */
static void addtrace(dumping *d, lua_State *T, int level, const char *what) {
  luaL_traceback(d->L, T, what, level);
  luaL_addvalue(d->b);
  luaL_addchar(d->b, '\n');
}

static void dumpone(gl_task *t, void *ud) {
  dumping *d = ud;
  gl_green *g = gl_container_of(t, gl_green, task);
  char name[64], state[64], what[256], line[512];
  const char *notes = "";
  what[0] = '\0';
  if (t == gl_hub_current()) {
    snprintf(state, sizeof state, "running");
  } else if (t->state == GL_TASK_NEW) {
    snprintf(state, sizeof state, "new");
  } else if (t->state == GL_TASK_PARKED && t->waiter != NULL) {
    uint64_t waited = d->now > t->since ? d->now - t->since : 0;
    snprintf(state, sizeof state, "%s, %.3f s", gl_wait_name(t->waiter->kind),
             secs(waited));
    describe(t->waiter, d->now, what, sizeof what);
    if (g->L == NULL) notes = " (not started yet)";
    else if (!t->started) notes = " (stack given up)";
    else if (t->coro.saved != NULL) notes = " (frames saved off its stack)";
  } else {
    snprintf(state, sizeof state, "ready");
  }
  snprintf(line, sizeof line, "%llu %s [%s]%s%s%s\n",
           (unsigned long long)t->id, gl_task_name(t, name, sizeof name),
           state, what[0] != '\0' ? ": " : "", what, notes);
  luaL_addstring(d->b, line);
  if (t == gl_hub_current() && d->caller != NULL) {
    if (d->caller != g->L) {
      addtrace(d, d->caller, 1, "in a coroutine:");
      if (g->L != NULL) addtrace(d, g->L, 0, NULL);
    } else {
      addtrace(d, d->caller, 1, NULL);
    }
  } else if (g->L != NULL) {
    if (g->co != NULL) addtrace(d, g->co, 0, "in a coroutine:");
    addtrace(d, g->L, 0, NULL);
  } else {
    luaL_addstring(d->b, "stack traceback:\n\t(not started)\n");
  }
  luaL_addchar(d->b, '\n');
}

/* Pushes the dump, seen from `caller` (the thread that asked, NULL on the
 * hub). */
static void pushdump(lua_State *L, lua_State *caller) {
  luaL_Buffer b;
  dumping d;
  char head[160];
  d.L = L;
  d.b = &b;
  d.caller = caller;
  d.now = gl_clock_now();
  luaL_buffinit(L, &b);
  snprintf(head, sizeof head, "greenlua: %zu greenthreads at %.3f s%s\n\n",
           gl_hub_live(), secs(d.now),
           gl_hub_virtual() ? " (virtual clock)" : "");
  luaL_addstring(&b, head);
  gl_hub_foreach(dumpone, &d);
  luaL_pushresult(&b);
}

/* green.dump() -> a string */
static int green_dump(lua_State *L) {
  pushdump(L, gl_hub_current() != NULL ? L : NULL);
  return 1;
}

/* {====== SIGQUIT ====== */

static uv_signal_t quit;
static lua_State *quitL;  /* a thread of our own, to build the text on */

static int quitdump(lua_State *L) {
  pushdump(L, NULL);
  return 1;
}

/* On the hub (libuv calls it from the loop), never inside a greenthread:
 * the dump runs in protected mode on a thread of its own, with the
 * collector paused so that no finalizer runs on the hub meanwhile. */
static void onquit(uv_signal_t *h, int signum) {
  lua_State *L = quitL;
  int gc = lua_gc(L, LUA_GCISRUNNING);
  GL_UNUSED(h);
  GL_UNUSED(signum);
  lua_gc(L, LUA_GCSTOP);
  lua_pushcfunction(L, quitdump);
  if (lua_pcall(L, 0, 1, 0) == LUA_OK) {
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    fflush(stdout);
    fwrite(s, 1, len, stderr);
    fflush(stderr);
  }
  lua_settop(L, 0);
  if (gc) lua_gc(L, LUA_GCRESTART);
}

/* Watches SIGQUIT on the hub's loop, without keeping the loop alive: a
 * program whose greenthreads all block is still reported as deadlocked. */
static void watchquit(lua_State *L) {
  uv_loop_t *loop = gl_hub_loop() != NULL ? gl_hub_loop() : uv_default_loop();
  quitL = lua_newthread(L);
  luaL_ref(L, LUA_REGISTRYINDEX);
  if (uv_signal_init(loop, &quit) != 0) return;
  if (uv_signal_start(&quit, onquit, SIGQUIT) != 0) {
    uv_close((uv_handle_t *)&quit, NULL);
    return;
  }
  uv_unref((uv_handle_t *)&quit);
}
/* }====== */

int luaopen_green_dump(lua_State *L);
int luaopen_green_dump(lua_State *L) {
  lua_pushcfunction(L, green_dump);
  lua_setfield(L, -2, "dump");
  watchquit(L);
  return 0;
}
