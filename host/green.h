/* A greenthread: a hub task plus the Lua thread it runs on, and the
 * runtime that ties Lua to the hub (the main greenthread, the embedded Lua
 * modules, interrupts carrying Lua error values, the deadlock report).
 * With main.c, the only file of host/ that touches the Lua API. */
#ifndef GL_GREEN_H
#define GL_GREEN_H

#include <lua.h>

#include "hub.h"
#include "waitq.h"

/* An interrupt of the Lua side: a hub cause (hub.h, where the rules of
 * delivery are), whose Lua value green.c keeps until it is raised or
 * forgotten.  kind: GL_INTR_KILL or GL_INTR_TIMEOUT; ref: for a Timeout,
 * the registry anchor that keeps it alive while started, or LUA_NOREF. */
typedef gl_cause gl_intr;

enum { GL_INTR_KILL = GL_CAUSE_KILL, GL_INTR_TIMEOUT = GL_CAUSE_TIMEOUT };

typedef struct gl_green {
  gl_task task;
  lua_State *L;        /* its Lua thread while it runs, else NULL */
  int ref;             /* registry ref to its userdata while it lives */
  int nargs;           /* arguments waiting for the start */
  int nres;            /* how many values it ended with (1: the error) */
  uint64_t ns;         /* spawn_later's delay until it starts; then the
                          timeout of its wait (gl_green_wait) */
  gl_waitq joiners;    /* join() waiters */
  gl_intr kill;        /* the cause g:kill() interrupts with */
  gl_waiter w;         /* of gl_green_wait: it outlives the frames */
  void *timeouts;      /* started green.Timeouts (bindings/core/timeout.c) */
  unsigned char ended, failed, ismain;
  unsigned char escaped;  /* coroutine.running() handed its thread out */
  unsigned char haslinks; /* g:link() added a function to its links */
} gl_green;

#define GL_GREEN_TYPE "green.Greenthread"

/* The greenthread metatable (set by bindings/core/greenthread.c). */
extern const void *gl_green_mt;

/* Opens the runtime in the main state L: the hub on libuv's default loop,
 * the main greenthread (the running context), `green` in package.preload
 * and as a global.  Call once, from main, before running any script. */
void gl_runtime_open(lua_State *L);

/* Waits (in the main greenthread) until every other greenthread ended.
 * A deadlock reported while waiting ends the process. */
void gl_runtime_wait(lua_State *L);

/* Sets the usable stack size of greenthreads from a text such as "256k",
 * "1m" or "65536".  Returns 0, or -1 for an unusable size. */
int gl_runtime_stacksize(const char *text);

/* The running greenthread (never NULL once the runtime is open). */
gl_green *gl_green_current(void);

/* Spawns a greenthread running the function at stack index -(nargs+1)
 * with the nargs values above it; pops them and pushes the greenthread. */
gl_green *gl_green_spawn(lua_State *L, int nargs, uint64_t delay_ns);

/* What few greenthreads have, kept in a table of their userdata made on
 * first use: a name set from Lua, link()ed functions, the traceback of
 * an error. */
enum { GL_GREEN_NAME = 1, GL_GREEN_LINKS, GL_GREEN_TRACE };

/* Pushes the value `key` of the greenthread userdata at idx (nil if
 * unset); returns its type. */
int gl_green_getextra(lua_State *L, int idx, int key);

/* Sets the value `key` of the greenthread userdata at idx to the value on
 * top of the stack, which it pops. */
void gl_green_setextra(lua_State *L, int idx, int key);

/* Pushes the userdata of g (which must not have ended). */
void gl_green_push(lua_State *L, gl_green *g);

/* Pushes what g ended with (its values, or its error) from the userdata
 * at `idx`; returns how many. */
int gl_green_pushresults(lua_State *L, gl_green *g, int idx);

/* {====== Waits that give the stack up ======
 * A greenthread parked in a blocking call keeps its C frames, and once it
 * shares a stack with others, they are copied out when another needs the
 * stack.  A call written as a wait plus a continuation lets them go
 * instead: if the stack is wanted while the greenthread waits on its own
 * Lua thread, where Lua allows a yield, the frames unwind with lua_yieldk
 * and the greenthread costs no stack at all until it is woken; then Lua
 * runs the continuation.  Elsewhere (inside a metamethod, a sort
 * comparator, a plain coroutine) the same call keeps its frames. */

/* What follows a wait: gets the Lua stack of the calling function as it
 * was, the wait's status (GL_OK, GL_ETIMEDOUT, GL_EINTR, GL_ECLOSED) and
 * the waiter (its data, n and n2 as the caller and the waker left them),
 * and returns what that function returns. */
typedef int (*gl_green_k)(lua_State *L, int rc, gl_waiter *w);

/* The running greenthread's own waiter, cleared and labelled with what it
 * waits on (gl_waiter_init): call it before each gl_green_wait, and fill
 * data, n or n2 if the waker needs them. */
gl_waiter *gl_green_waiter(int kind, const void *obj);

/* Parks the running greenthread, on its own waiter, in `q` (only on its
 * timeout when q is NULL) until woken, then returns k(L, status, waiter).
 * Use it as the return expression of a lua_CFunction:
 * `return gl_green_wait(L, q, timeout, k);`. */
int gl_green_wait(lua_State *L, gl_waitq *q, uint64_t timeout_ns,
                  gl_green_k k);

/* For a continuation that must wait once more (a receiver woken for its
 * turn that finds too few bytes): after gl_green_waiter, links the waiter
 * in `q` (if not NULL) and returns GL_GREEN_AGAIN, which k returns; the
 * greenthread parks again, with `timeout_ns`, and k runs again once it is
 * woken.  Returning instead of calling gl_green_wait from k keeps the C
 * stack flat however often that happens. */
int gl_green_again(gl_waitq *q, uint64_t timeout_ns);
#define GL_GREEN_AGAIN (-1)
/* }====== */

/* Raises in L the interrupt pending for the current greenthread (the
 * caller saw GL_EINTR).  Never returns. */
int gl_green_raise(lua_State *L);

/* Records the value at `idx` as what `cause` raises, then interrupts g
 * with it; does nothing if g ended or the cause is pending already (a
 * second kill before the first was raised keeps the first's value). */
void gl_green_interrupt(lua_State *L, gl_green *g, gl_intr *cause, int idx);

/* Records the value at `idx` as what `cause` raises, without interrupting
 * anything yet (a Timeout records it when started, fires later). */
void gl_green_setcause(lua_State *L, gl_intr *cause, int idx);

/* Called as a greenthread that started Timeouts (g->timeouts) ends,
 * under a protected call on its own Lua thread: the Timeout binding
 * cancels them.  The common end, with none, skips it (green.c, finish). */
extern void (*gl_green_end_hook)(lua_State *L, gl_green *g);

/* Forgets what `cause` would raise (a cancelled Timeout). */
void gl_green_forget(lua_State *L, gl_intr *cause);

/* Opens the green module (bindings/green.c). */
int luaopen_green(lua_State *L);

/* Pushes the GreenletExit value. */
void gl_green_pushexit(lua_State *L);

#endif
