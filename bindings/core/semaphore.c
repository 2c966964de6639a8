/* green.Semaphore, green.BoundedSemaphore and green.Lock (a bounded
 * semaphore of 1, as in gevent): one counter and a FIFO of waiters.  A
 * release with waiters hands the count straight to the first of them, so
 * nobody arriving later can take it first.  hold() returns a
 * to-be-closed guard that releases. */
#include <string.h>

#include "lauxgl.h"

#define SEMAPHORE_TYPE "green.Semaphore"
#define BOUNDED_TYPE "green.BoundedSemaphore"
#define LOCK_TYPE "green.Lock"
#define GUARD_TYPE "green.SemaphoreGuard"

typedef struct gl_semaphore {
  gl_waitq waiters;      /* non-empty only while count == 0 */
  lua_Integer count;
  lua_Integer bound;     /* release past it raises; -1: unbounded */
} gl_semaphore;

typedef struct gl_guard {
  gl_semaphore *s;       /* NULL once released; uservalue 1 anchors it */
} gl_guard;

/* The three classes share the struct and the methods. */
static gl_semaphore *checksem(lua_State *L, int i) {
  void *p = luaL_testudata(L, i, SEMAPHORE_TYPE);
  if (p == NULL) p = luaL_testudata(L, i, LOCK_TYPE);
  if (p == NULL) p = luaL_testudata(L, i, BOUNDED_TYPE);
  if (p == NULL) luaL_typeerror(L, i, SEMAPHORE_TYPE);
  return p;
}

static int newsem(lua_State *L, lua_Integer n, lua_Integer bound,
                  const char *tname) {
  gl_semaphore *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  gl_waitq_init(&s->waiters);
  s->count = n;
  s->bound = bound;
  luaL_setmetatable(L, tname);
  return 1;
}

/* Reads the optional initial count of a constructor.  A constructor is a
 * __call metamethod, which luaL_argerror can name only when Lua code
 * called it (not, say, pcall(green.Semaphore, x)): the messages name it
 * here. */
static lua_Integer checkinitial(lua_State *L, const char *fname) {
  int isint;
  lua_Integer n;
  if (lua_isnoneornil(L, 1)) return 1;
  n = lua_tointegerx(L, 1, &isint);
  if (!isint)
    return luaL_error(L, "bad argument #1 to '%s' (integer expected, got %s)",
                      fname, luaL_typename(L, 1));
  if (n < 0)
    return luaL_error(L, "bad argument #1 to '%s' (must not be negative)",
                      fname);
  return n;
}

/* green.Semaphore([n=1]) -> s */
static int semaphore_new(lua_State *L) {
  return newsem(L, checkinitial(L, "Semaphore"), -1, SEMAPHORE_TYPE);
}

/* green.BoundedSemaphore([n=1]) -> s: releasing past n raises. */
static int bounded_new(lua_State *L) {
  lua_Integer n = checkinitial(L, "BoundedSemaphore");
  return newsem(L, n, n, BOUNDED_TYPE);
}

/* green.Lock() -> a BoundedSemaphore(1) */
static int lock_new(lua_State *L) {
  return newsem(L, 1, 1, LOCK_TYPE);
}

/* Takes one count if there is one; returns whether it did. */
static int take(gl_semaphore *s) {
  if (s->count <= 0) return 0;
  GL_ASSERT(s->waiters.head == NULL);
  s->count--;
  return 1;
}

/* Takes one count, waiting up to `timeout`.  Returns GL_OK or
 * GL_ETIMEDOUT; raises a pending kill or Timeout.  A waiter woken with
 * GL_OK was handed the count by release(), so it owns it even if a kill
 * arrives before it resumes (the kill is then raised at its next
 * blocking call). */
static int acquire(lua_State *L, gl_semaphore *s, uint64_t timeout) {
  gl_waiter w;
  int rc;
  if (take(s)) return GL_OK;
  if (timeout == 0) return GL_ETIMEDOUT;
  gl_waiter_init(&w, GL_WAIT_SEMAPHORE, s);
  rc = gl_waitq_wait(&s->waiters, &w, timeout);
  glL_raisepending(L, rc);
  return rc;
}

/* Gives one count back: to the first waiter if there is one, else to the
 * counter.  Raises for a bounded semaphore already at its bound. */
static void release(lua_State *L, gl_semaphore *s) {
  if (s->waiters.head != NULL) {
    GL_ASSERT(s->count == 0);
    gl_waitq_wake_one(&s->waiters, GL_OK);
    return;
  }
  if (s->bound >= 0 && s->count >= s->bound)
    luaL_error(L, "semaphore released too many times");
  s->count++;
}

/* s:acquire([timeout]) -> true | nil, "timeout".  Its wait may unwind
 * (green.h); acquire()'s rule for a kill holds the same. */
static int semaphore_acquire(lua_State *L) {
  gl_semaphore *s = checksem(L, 1);
  uint64_t timeout = glL_opttimeout(L, 2);
  if (take(s)) return glL_waited(L, GL_OK, NULL);
  if (timeout == 0) return glL_waited(L, GL_ETIMEDOUT, NULL);
  gl_green_waiter(GL_WAIT_SEMAPHORE, s);
  return gl_green_wait(L, &s->waiters, timeout, glL_waited);
}

/* s:release() */
static int semaphore_release(lua_State *L) {
  release(L, checksem(L, 1));
  return 0;
}

/* s:locked() -> true if an acquire would wait */
static int semaphore_locked(lua_State *L) {
  lua_pushboolean(L, checksem(L, 1)->count <= 0);
  return 1;
}

/* s:count() -> the counter */
static int semaphore_count(lua_State *L) {
  lua_pushinteger(L, checksem(L, 1)->count);
  return 1;
}

/* s:hold([timeout]) -> a to-be-closed guard | nil, "timeout".  The guard
 * releases s once, when closed (the end of the scope, normal or by an
 * error) or by guard:release(). */
static int semaphore_hold(lua_State *L) {
  gl_semaphore *s = checksem(L, 1);
  uint64_t timeout = glL_opttimeout(L, 2);
  gl_guard *g;
  lua_settop(L, 1);
  /* Allocate first: once acquired, nothing may fail before the guard
   * exists, or the count would leak. */
  g = lua_newuserdatauv(L, sizeof *g, 1);
  g->s = NULL;
  luaL_setmetatable(L, GUARD_TYPE);
  if (acquire(L, s, timeout) == GL_ETIMEDOUT) return glL_fail(L, "timeout");
  g->s = s;
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, 2, 1);
  return 1;
}

static int semaphore_tostring(lua_State *L) {
  gl_semaphore *s = checksem(L, 1);
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__name");
  lua_pushfstring(L, "%s (count %I, %I waiting): %p", lua_tostring(L, -1),
                  s->count, (lua_Integer)s->waiters.n, (void *)s);
  return 1;
}

/* guard:release() and guard's __close: releases the semaphore once. */
static int guard_release(lua_State *L) {
  gl_guard *g = luaL_checkudata(L, 1, GUARD_TYPE);
  gl_semaphore *s = g->s;
  if (s != NULL) {
    g->s = NULL;
    release(L, s);
  }
  return 0;
}

static int guard_tostring(lua_State *L) {
  gl_guard *g = luaL_checkudata(L, 1, GUARD_TYPE);
  lua_pushfstring(L, "green.SemaphoreGuard (%s): %p",
                  g->s != NULL ? "held" : "released", (void *)g);
  return 1;
}

static const luaL_Reg semaphore_methods[] = {
  {"acquire", semaphore_acquire},
  {"release", semaphore_release},
  {"locked", semaphore_locked},
  {"count", semaphore_count},
  {"hold", semaphore_hold},
  {NULL, NULL}
};

static const luaL_Reg semaphore_meta[] = {
  {"__tostring", semaphore_tostring},
  {NULL, NULL}
};

static const luaL_Reg guard_methods[] = {
  {"release", guard_release},
  {NULL, NULL}
};

static const luaL_Reg guard_meta[] = {
  {"__close", guard_release},
  {"__tostring", guard_tostring},
  {NULL, NULL}
};

int luaopen_green_semaphore(lua_State *L);
int luaopen_green_semaphore(lua_State *L) {
  glL_newclass(L, SEMAPHORE_TYPE, semaphore_methods, semaphore_meta);
  glL_newclass(L, BOUNDED_TYPE, semaphore_methods, semaphore_meta);
  glL_newclass(L, LOCK_TYPE, semaphore_methods, semaphore_meta);
  glL_newclass(L, GUARD_TYPE, guard_methods, guard_meta);
  lua_pop(L, 4);
  glL_setconstructor(L, "Semaphore", semaphore_new, NULL);
  glL_setconstructor(L, "BoundedSemaphore", bounded_new, NULL);
  glL_setconstructor(L, "Lock", lock_new, NULL);
  return 0;
}
