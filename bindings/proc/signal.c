/* green.signal(signame, fn) -> h: fn(signame) runs in a new greenthread
 * each time the signal arrives, on libuv's signal handles; and
 * green.getpid().
 *
 * One uv_signal_t per signal number, started while the signal has a
 * handler.  The handlers of a signal all run, in the order they were
 * added.  A signal may also have a default (green._signal_default, used
 * by a --workers worker for its graceful stop), which runs only while the
 * signal has no handler of the program's, and does not keep the loop
 * alive: a handler can wake a blocked greenthread, a default is no
 * reason to wait.  When the last handler goes (h:cancel()), the signal
 * gets back the disposition it had before the first: the default action
 * for SIGTERM, SIG_IGN for SIGPIPE (the socket layer ignores it). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "proc.h"

#define HANDLER_TYPE "green.SignalHandler"

typedef struct sigslot {
  uv_signal_t *h;          /* started while the signal is watched */
  int n;                   /* the program's handlers */
  int hasdefault;
  struct sigaction before; /* the disposition found when it was started */
} sigslot;

static sigslot slots[NSIG];

/* The Lua thread the dispatch runs on, on the hub: never a greenthread's
 * (see STYLE §4), and in a protected call (an allocation may raise). */
static lua_State *sigL;

/* Registry keys: the handlers of each signal, in a table indexed by the
 * signal number holding an array of handler objects; and the defaults,
 * by signal number. */
static const char HANDLERS = 'h';
static const char DEFAULTS = 'd';

typedef struct sighandler {
  int signum;
  int active;
} sighandler;

static void pushtable(lua_State *L, const void *key) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, key);
}

/* Runs on sigL when signum arrived: spawns each handler, or the default
 * if there is none. */
static int dispatch(lua_State *L) {
  int signum = (int)lua_tointeger(L, 1);
  lua_Integer i, n;
  pushtable(L, &HANDLERS);
  lua_rawgeti(L, -1, signum);
  n = lua_istable(L, -1) ? luaL_len(L, -1) : 0;
  if (n == 0) {
    pushtable(L, &DEFAULTS);
    if (lua_rawgeti(L, -1, signum) == LUA_TFUNCTION) {
      glP_pushsigname(L, signum);
      gl_green_spawn(L, 1, 0);
    }
    return 0;
  }
  for (i = 1; i <= n; i++) {  /* a copy: handlers may cancel meanwhile */
    lua_rawgeti(L, 3, i);
    lua_getiuservalue(L, -1, 1);
    lua_remove(L, -2);
    glP_pushsigname(L, signum);
    gl_green_spawn(L, 1, 0);
    lua_pop(L, 1);
  }
  return 0;
}

static void onsignal(uv_signal_t *h, int signum) {
  GL_UNUSED(h);
  lua_settop(sigL, 0);
  lua_pushcfunction(sigL, dispatch);
  lua_pushinteger(sigL, signum);
  if (lua_pcall(sigL, 1, 0, 0) != LUA_OK) {
    fflush(stdout);
    fprintf(stderr, "greenlua: cannot run the handlers of %s: %s\n",
            glP_signame(signum), lua_tostring(sigL, -1));
    fflush(stderr);
  }
  lua_settop(sigL, 0);
}

static void freehandle(uv_handle_t *h) { free(h); }

/* Starts watching signum, or updates whether it keeps the loop alive.
 * Returns 0 or a libuv error. */
static int watch(int signum) {
  sigslot *s = &slots[signum];
  int e;
  if (s->h == NULL) {
    if ((s->h = malloc(sizeof *s->h)) == NULL) return UV_ENOMEM;
    sigaction(signum, NULL, &s->before);
    uv_signal_init(glP_loop(), s->h);
    if ((e = uv_signal_start(s->h, onsignal, signum)) < 0) {
      uv_close((uv_handle_t *)s->h, freehandle);
      s->h = NULL;
      return e;
    }
  }
  if (s->n > 0) uv_ref((uv_handle_t *)s->h);
  else uv_unref((uv_handle_t *)s->h);
  return 0;
}

/* Stops watching signum if nothing wants it any more, and gives it back
 * its disposition from before.  libuv sets SIG_DFL when its last handle
 * of the signal stops (it keeps its own handler while it has others, as
 * for SIGCHLD): only then is the old one put back, with the signal held
 * meanwhile so that none arrives to the default action. */
static void unwatch(int signum) {
  sigslot *s = &slots[signum];
  struct sigaction cur;
  sigset_t set, old;
  if (s->h == NULL) return;
  if (s->n > 0 || s->hasdefault) {
    watch(signum);
    return;
  }
  sigemptyset(&set);
  sigaddset(&set, signum);
  sigprocmask(SIG_BLOCK, &set, &old);
  uv_signal_stop(s->h);
  uv_close((uv_handle_t *)s->h, freehandle);
  s->h = NULL;
  if (sigaction(signum, NULL, &cur) == 0 && cur.sa_handler == SIG_DFL &&
      !(cur.sa_flags & SA_SIGINFO))
    sigaction(signum, &s->before, NULL);
  sigprocmask(SIG_SETMASK, &old, NULL);
}

/* Checks a signal that a program may handle. */
static int checkcatchable(lua_State *L, int arg) {
  int signum = glP_checksignal(L, arg, NULL);
  if (signum == SIGKILL || signum == SIGSTOP)
    luaL_argerror(L, arg, lua_pushfstring(L, "%s cannot be caught",
                                          glP_signame(signum)));
  return signum;
}

/* green.signal(signame, fn) -> h.  fn(signame) runs in a new greenthread
 * each time the signal arrives, until h:cancel(). */
static int green_signal(lua_State *L) {
  int signum = checkcatchable(L, 1), e;
  sighandler *h;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  h = lua_newuserdatauv(L, sizeof *h, 1);
  h->signum = signum;
  h->active = 1;
  luaL_setmetatable(L, HANDLER_TYPE);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 1);
  pushtable(L, &HANDLERS);
  if (lua_rawgeti(L, -1, signum) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, signum);
  }
  lua_pushvalue(L, -3);
  lua_rawseti(L, -2, luaL_len(L, -2) + 1);
  lua_pop(L, 2);
  slots[signum].n++;
  if ((e = watch(signum)) < 0) {
    char buf[128];
    slots[signum].n--;
    h->active = 0;
    pushtable(L, &HANDLERS);
    lua_rawgeti(L, -1, signum);
    lua_pushnil(L);
    lua_rawseti(L, -2, luaL_len(L, -2));
    return luaL_error(L, "cannot watch %s: %s", glP_signame(signum),
                      glP_strerror(e, buf, sizeof buf));
  }
  return 1;
}

/* h:cancel(): fn no longer runs; the last handler of a signal to go
 * gives it back the behaviour it had before.  Cancelling twice does
 * nothing. */
static int handler_cancel(lua_State *L) {
  sighandler *h = luaL_checkudata(L, 1, HANDLER_TYPE);
  lua_Integer i, n;
  if (!h->active) return 0;
  h->active = 0;
  pushtable(L, &HANDLERS);
  lua_rawgeti(L, -1, h->signum);
  n = luaL_len(L, -1);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    if (lua_rawequal(L, -1, 1)) {
      lua_pop(L, 1);
      for (; i < n; i++) {  /* close the gap, keeping the order */
        lua_rawgeti(L, -1, i + 1);
        lua_rawseti(L, -2, i);
      }
      lua_pushnil(L);
      lua_rawseti(L, -2, n);
      break;
    }
    lua_pop(L, 1);
  }
  slots[h->signum].n--;
  unwatch(h->signum);
  return 0;
}

static int handler_tostring(lua_State *L) {
  sighandler *h = luaL_checkudata(L, 1, HANDLER_TYPE);
  lua_pushfstring(L, HANDLER_TYPE " (%s%s): %p", glP_signame(h->signum),
                  h->active ? "" : ", cancelled", (void *)h);
  return 1;
}

/* green._signal_default(signame, fn|nil): sets (or, with nil, removes)
 * what runs, as fn(signame) in a new greenthread, when the signal
 * arrives and the program has no handler of its own for it. */
static int green_signal_default(lua_State *L) {
  int signum = checkcatchable(L, 1), e;
  if (!lua_isnil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  pushtable(L, &DEFAULTS);
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, signum);
  slots[signum].hasdefault = !lua_isnil(L, 2);
  if (slots[signum].hasdefault) {
    if ((e = watch(signum)) < 0) {
      char buf[128];
      return luaL_error(L, "cannot watch %s: %s", glP_signame(signum),
                        glP_strerror(e, buf, sizeof buf));
    }
  } else {
    unwatch(signum);
  }
  return 0;
}

/* green.getpid() -> the process id */
static int green_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_os_getpid());
  return 1;
}

static const luaL_Reg handler_methods[] = {
  {"cancel", handler_cancel},
  {NULL, NULL}
};

static const luaL_Reg handler_meta[] = {
  {"__tostring", handler_tostring},
  {NULL, NULL}
};

static const luaL_Reg signal_funcs[] = {
  {"signal", green_signal},
  {"_signal_default", green_signal_default},
  {"getpid", green_getpid},
  {NULL, NULL}
};

int luaopen_green_signal(lua_State *L);
int luaopen_green_signal(lua_State *L) {
  glL_newclass(L, HANDLER_TYPE, handler_methods, handler_meta);
  lua_pop(L, 1);
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &HANDLERS);
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &DEFAULTS);
  sigL = lua_newthread(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &sigL);
  luaL_setfuncs(L, signal_funcs, 0);
  return 0;
}
