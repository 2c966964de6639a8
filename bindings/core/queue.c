/* The queue family: green.Queue (FIFO), LifoQueue, PriorityQueue,
 * JoinableQueue (a FIFO with task_done and join) and Channel (no buffer:
 * a put waits for a get).  One C object with a kind; items live in the
 * userdata's uservalue tables, never on a parked greenthread's stack.
 *
 * How no item is lost or delivered twice when waiters time out or are
 * killed: a waiter is only ever woken with GL_OK together with a promise
 * the waker has already recorded in the queue, and a waiter woken with
 * GL_OK always redeems it (the hub returns the waker's status even if a
 * kill arrives afterwards).
 *   - A put that finds getters waiting stores the item and marks it
 *     reserved for the first getter (`reserved`), then wakes it.  Reserved
 *     items are not available to anyone else; the woken getter takes one.
 *   - A get that frees a place in a bounded queue reserves that place for
 *     the first blocked putter (`roomres`) and wakes it; the woken putter
 *     inserts its own item, so a putter that timed out or was killed never
 *     left anything behind.
 *   - A Channel's blocked putter leaves its item in a slot table keyed by
 *     w.n; a getter takes it from there and wakes the putter with GL_OK.
 *     A putter that leaves otherwise clears its slot itself.
 * A waiter that times out or is killed had no promise, since a wake-up
 * happens once; it just leaves the wait queue (the wait does that).
 *
 * A PriorityQueue calls Lua (`less`, or __lt) and that code may block or
 * fail.  So every heap change is planned first, by comparisons that only
 * read the heap, under lua_pcall; then applied with no Lua call at all.
 * If the heap changed while a comparison blocked (`version`), the plan is
 * made again; if a comparison fails, nothing changed, a promise held by
 * the caller is passed on, and the error goes on to the caller.
 *
 * The object.  A queue is a table of its class (the metatable, whose
 * __index holds the methods) that carries put, get, put_nowait and
 * get_nowait as fields of its own: C closures bound to the queue's
 * userdata (upvalue 1), which holds the state and the items.  A call
 * `q:put(x)` then finds its method in q itself, by one lookup, where a
 * method of a userdata costs a lookup of __index in the metatable and one
 * in the methods table: a good part of a put.  The other methods find the
 * userdata in q[0] (checkqueue), where ipairs and # do not see it and an
 * integer key costs the least to look up.  Inside, every function
 * has the userdata at stack index 1 (the methods put it there in place of
 * the table, and the waits' continuations find it there). */
#include <string.h>

#include "lauxgl.h"

enum { K_FIFO, K_LIFO, K_PRIO, K_CHANNEL };

/* Uservalues of a queue's userdata.  A bounded FIFO or LIFO queue keeps
 * its items inline, in the uservalues after UV_N (a ring of `cap`): a put
 * or a get then reads and writes one slot of the userdata itself, where a
 * table costs a lookup of the table and one of the item. */
enum { UV_ITEMS = 1, UV_SLOTS, UV_LESS, UV_N = UV_LESS };

/* Inline items: up to this bound, with this much room for items put for
 * getters that were woken and have not taken them yet (they still count
 * in `count`).  Past it the items move to a table. */
#define INLINE_MAX 1024
#define INLINE_SPARE 8

typedef struct gl_queue {
  uint64_t magic;          /* QUEUE_MAGIC: see checkqueue */
  const void *self;        /* the queue's table (lua_topointer) */
  gl_waitq getters;        /* get(): wait for an item */
  gl_waitq putters;        /* put(): wait for a place (or, Channel, a get) */
  gl_waitq peekers;        /* peek(): wait for an item, take nothing */
  gl_waitq joiners;        /* JoinableQueue's join() */
  lua_Integer count;       /* items stored in UV_ITEMS */
  lua_Integer reserved;    /* of those, promised to woken getters */
  lua_Integer roomres;     /* places promised to woken putters */
  lua_Integer maxsize;     /* 0: unbounded */
  lua_Integer unfinished;  /* JoinableQueue: puts not yet task_done */
  lua_Integer head, cap;   /* FIFO ring: first item at head; in a table
                              (at head + 1), cap is a power of two */
  lua_Integer nextslot;    /* Channel: the next putter's slot */
  unsigned version;        /* bumped at every change of the items */
  unsigned char kind, joinable, closed, less;  /* less: a Lua `less` */
  unsigned char inl;       /* items inline, in uservalues UV_N + 1... */
} gl_queue;

/* {====== Classes ====== */

static const char *const typenames[] = {
  "green.Queue", "green.LifoQueue", "green.PriorityQueue",
  "green.JoinableQueue", "green.Channel"
};
#define NCLASSES (sizeof typenames / sizeof typenames[0])

/* The userdata in q[0] is checked by its size and a magic number (any
 * table may have anything there): reading the magic is safe for any full
 * userdata of our size, and Lua code cannot forge one. */
#define QUEUE_MAGIC UINT64_C(0x676c2e5175657565)  /* "gl.Queue" */

/* The queue whose table is at index i, whose userdata then replaces the
 * table there. */
static gl_queue *checkqueue(lua_State *L, int i) {
  gl_queue *q;
  if (lua_type(L, i) == LUA_TTABLE && lua_rawgeti(L, i, 0) ==
      LUA_TUSERDATA && (q = lua_touserdata(L, -1)) != NULL &&
      lua_rawlen(L, -1) == sizeof *q && q->magic == QUEUE_MAGIC) {
    lua_replace(L, i);
    return q;
  }
  luaL_typeerror(L, i, "green.Queue");
  return NULL;
}

/* The queue of a bound method (the userdata is upvalue 1): the table at
 * 1 must be the queue's own. */
#define UPQ lua_upvalueindex(1)
static gl_queue *boundqueue(lua_State *L) {
  gl_queue *q = lua_touserdata(L, UPQ);
  if (GL_UNLIKELY(lua_topointer(L, 1) != q->self))
    luaL_typeerror(L, 1, "green.Queue");
  return q;
}

/* Puts the bound queue's userdata at 1, in place of its table. */
static void toudata(lua_State *L) {
  lua_pushvalue(L, UPQ);
  lua_replace(L, 1);
}

/* The queue of a continuation: its userdata is at 1. */
static gl_queue *queueat1(lua_State *L) { return lua_touserdata(L, 1); }

/* Keeps the PriorityQueue paths out of put and get, whose FIFO path then
 * needs fewer registers. */
#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

/* glL_opttimeout with the common case (none) inline: put and get are the
 * hot path. */
#define opttimeout(L, i) \
  (lua_type(L, (i)) <= LUA_TNIL ? UINT64_MAX : glL_opttimeout(L, (i)))

static lua_Integer avail(const gl_queue *q) {
  return q->count - q->reserved;
}
/* }====== */

/* {====== Promises ====== */

/* Gives available items to waiting getters, one each, and lets peekers
 * look.  Call after anything that may have made items available. */
static void offer(gl_queue *q) {
  while (q->getters.head != NULL && avail(q) > 0) {
    q->reserved++;
    q->version++;
    gl_waitq_wake_one(&q->getters, GL_OK);
  }
  if (q->peekers.head != NULL && avail(q) > 0)
    gl_waitq_wake_all(&q->peekers, GL_OK);
}

/* Gives free places of a bounded queue to blocked putters, one each. */
static void makeroom(gl_queue *q) {
  if (q->maxsize == 0 || q->kind == K_CHANNEL) return;
  while (q->putters.head != NULL && avail(q) + q->roomres < q->maxsize) {
    q->roomres++;
    gl_waitq_wake_one(&q->putters, GL_OK);
  }
}

/* Whether a put that holds no promise may store its item now: a getter
 * waits for it, or there is a free place nobody was promised. */
static int canput(const gl_queue *q) {
  if (q->getters.head != NULL) return 1;
  if (q->kind == K_CHANNEL) return 0;
  return q->maxsize == 0 || avail(q) + q->roomres < q->maxsize;
}
/* }====== */

/* {====== Storage: ring and stack inline or in the UV_ITEMS table, heap
 * in the table ====== */

/* The uservalue of inline slot i. */
#define SLOT(i) ((int)(UV_N + 1 + (i)))

/* The ring slot (inline) or table index (table) of the i-th item from the
 * one a FIFO get takes next. */
static lua_Integer ringpos(const gl_queue *q, lua_Integer i) {
  if (q->inl) {
    i += q->head;
    return i >= q->cap ? i - q->cap : i;
  }
  return ((q->head + i) & (q->cap - 1)) + 1;
}

/* Moves inline items that filled every slot to a table (items put for
 * woken getters can outnumber the spare slots). */
static void spill(lua_State *L, gl_queue *q) {
  lua_Integer i, cap = 16;
  while (cap < 2 * q->count) cap *= 2;
  luaL_checkstack(L, 3, NULL);
  lua_createtable(L, (int)cap, 0);
  for (i = 0; i < q->count; i++) {
    int slot = SLOT(q->kind == K_LIFO ? i : ringpos(q, i));
    lua_getiuservalue(L, 1, slot);
    lua_rawseti(L, -2, i + 1);
    lua_pushnil(L);
    lua_setiuservalue(L, 1, slot);
  }
  lua_setiuservalue(L, 1, UV_ITEMS);
  q->inl = 0;
  q->head = 0;
  q->cap = cap;
}

/* Doubles the FIFO ring of the table on top of the stack, unrolling it to
 * start at 1; the new table replaces it there and as the uservalue. */
static void ringgrow(lua_State *L, gl_queue *q) {
  lua_Integer i, cap = q->cap * 2;
  lua_createtable(L, (int)cap, 0);
  for (i = 0; i < q->count; i++) {
    lua_rawgeti(L, -2, ringpos(q, i));
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, 1, UV_ITEMS);
  lua_replace(L, -2);
  q->head = 0;
  q->cap = cap;
}

/* Stores the value at index v (absolute) after the items of a FIFO or
 * LIFO queue whose userdata is at ui (1 unless said).  Leaves the stack as
 * it was. */
static void storeat(lua_State *L, gl_queue *q, int ui, int v) {
  lua_Integer i;
  if (ui != 1 && (!q->inl || q->count == q->cap)) {
    lua_pushvalue(L, ui);  /* the rest works at 1 */
    lua_replace(L, 1);
    ui = 1;
  }
  if (q->inl && q->count == q->cap) spill(L, q);
  if (q->inl) {
    lua_pushvalue(L, v);
    lua_setiuservalue(L, ui, SLOT(q->kind == K_LIFO ? q->count
                                                    : ringpos(q, q->count)));
    return;
  }
  lua_getiuservalue(L, 1, UV_ITEMS);
  if (q->kind == K_LIFO) {
    i = q->count + 1;
  } else {
    if (q->count == q->cap) ringgrow(L, q);
    i = ringpos(q, q->count);
  }
  lua_pushvalue(L, v);
  lua_rawseti(L, -2, i);
  lua_pop(L, 1);
}
#define store(L, q, v) storeat(L, q, 1, v)

/* Pushes the next item of a FIFO or LIFO queue (its userdata at ui) and
 * removes it from the queue's storage (the caller counts it out). */
static void takeat(lua_State *L, gl_queue *q, int ui) {
  lua_Integer i;
  if (q->inl) {
    int slot = SLOT(q->kind == K_LIFO ? q->count - 1 : q->head);
    lua_getiuservalue(L, ui, slot);
    lua_pushnil(L);
    lua_setiuservalue(L, ui, slot);
    if (q->kind != K_LIFO && ++q->head == q->cap) q->head = 0;
    return;
  }
  i = q->kind == K_LIFO ? q->count : q->head + 1;
  lua_getiuservalue(L, ui, UV_ITEMS);
  lua_rawgeti(L, -1, i);
  lua_pushnil(L);
  lua_rawseti(L, -3, i);
  lua_remove(L, -2);
  if (q->kind != K_LIFO) q->head = (q->head + 1) & (q->cap - 1);
}
#define take(L, q) takeat(L, q, 1)

/* Pushes the item a get would take now, without taking it. */
static void look(lua_State *L, gl_queue *q) {
  if (q->inl) {
    lua_getiuservalue(L, 1, SLOT(q->kind == K_LIFO ? q->count - 1 : q->head));
    return;
  }
  lua_getiuservalue(L, 1, UV_ITEMS);
  switch (q->kind) {
    case K_LIFO: lua_rawgeti(L, -1, q->count); break;
    case K_PRIO: lua_rawgeti(L, -1, 1); break;
    default: lua_rawgeti(L, -1, q->head + 1); break;
  }
  lua_remove(L, -2);
}

/* Raw comparison of numbers or strings: never fails, never calls Lua. */
static int rawless(lua_State *L, int a, int b, int *res) {
  int ta = lua_type(L, a), tb = lua_type(L, b);
  if (ta != tb || (ta != LUA_TNUMBER && ta != LUA_TSTRING)) return 0;
  *res = lua_compare(L, a, b, LUA_OPLT);
  return 1;
}

static int protectedless(lua_State *L) {
  lua_pushboolean(L, lua_compare(L, 1, 2, LUA_OPLT));
  return 1;
}

/* What less() and the plans return when the heap changed while a
 * comparison blocked: the plan is void, make it again. */
#define CHANGED (-1)

/* Compares the two values on top of the stack (pops them): a < b with
 * the queue's `less` (uservalue; at stack index `fn` when q->less), or
 * the `<` operator.  Returns LUA_OK and sets *res; CHANGED if the items
 * changed meanwhile (the comparison may block); or an error status with
 * the error value pushed. */
static int less(lua_State *L, gl_queue *q, int fn, int *res) {
  unsigned version = q->version;
  int st;
  if (!q->less && rawless(L, -2, -1, res)) {
    lua_pop(L, 2);
    return LUA_OK;
  }
  luaL_checkstack(L, 3, NULL);
  if (q->less) lua_pushvalue(L, fn);
  else lua_pushcfunction(L, protectedless);
  lua_insert(L, -3);
  st = lua_pcall(L, 2, 1, 0);
  if (st != LUA_OK) return st;
  *res = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return q->version == version ? LUA_OK : CHANGED;
}

/* Plans the insertion of the value at v in the heap at t: the place
 * *pos it would move up to.  Only reads the heap.  Returns as less(). */
static int planup(lua_State *L, gl_queue *q, int t, int fn, int v,
                  lua_Integer *pos) {
  lua_Integer i = q->count + 1;
  int st, lt;
  while (i > 1) {
    lua_pushvalue(L, v);
    lua_rawgeti(L, t, i / 2);
    if ((st = less(L, q, fn, &lt)) != LUA_OK) return st;
    if (!lt) break;
    i /= 2;
  }
  *pos = i;
  return LUA_OK;
}

/* Applies planup's plan: shifts the parents of the new leaf down the path
 * to *pos, stores the value at v there. */
static void commitup(lua_State *L, gl_queue *q, int t, int v,
                     lua_Integer pos) {
  lua_Integer i = q->count + 1;
  for (; i > pos; i /= 2) {
    lua_rawgeti(L, t, i / 2);
    lua_rawseti(L, t, i);
  }
  lua_pushvalue(L, v);
  lua_rawseti(L, t, pos);
}

/* Plans taking the root of the heap at t: the place *hole the last item
 * moves down to.  Only reads the heap.  Returns as less(). */
static int plandown(lua_State *L, gl_queue *q, int t, int fn,
                    lua_Integer *hole) {
  lua_Integer n = q->count - 1, i = 1, c;
  int st, lt, last;
  lua_rawgeti(L, t, q->count);
  last = lua_gettop(L);
  for (;;) {
    c = 2 * i;
    if (c > n) break;
    if (c + 1 <= n) {
      lua_rawgeti(L, t, c + 1);
      lua_rawgeti(L, t, c);
      if ((st = less(L, q, fn, &lt)) != LUA_OK) return st;
      if (lt) c++;
    }
    lua_rawgeti(L, t, c);
    lua_pushvalue(L, last);
    if ((st = less(L, q, fn, &lt)) != LUA_OK) return st;
    if (!lt) break;
    i = c;
  }
  lua_pop(L, 1);
  *hole = i;
  return LUA_OK;
}

/* Applies plandown's plan: pushes the root and removes it, moving the
 * items on the path from the root to *hole up one level, and the last
 * item into *hole.  The path is the chain of hole's ancestors. */
static void commitdown(lua_State *L, gl_queue *q, int t, lua_Integer hole) {
  lua_Integer path[64], depth = 0, i;
  lua_rawgeti(L, t, 1);                      /* the result */
  for (i = hole; i > 1; i /= 2) path[depth++] = i;
  i = 1;
  while (depth > 0) {                        /* from the root down */
    lua_Integer c = path[--depth];
    lua_rawgeti(L, t, c);
    lua_rawseti(L, t, i);
    i = c;
  }
  if (hole != q->count) {
    lua_rawgeti(L, t, q->count);
    lua_rawseti(L, t, hole);
  }
  lua_pushnil(L);
  lua_rawseti(L, t, q->count);
}
/* }====== */

/* {====== Put and get ====== */

/* A putter woken with a place that cannot use it passes it on. */
static void droproom(gl_queue *q) {
  q->roomres--;
  makeroom(q);
}

/* A getter woken with an item that cannot take it passes it on. */
static void dropitem(gl_queue *q) {
  q->reserved--;
  q->version++;
  offer(q);
}

/* Inserts the item at index 2 into the heap of a PriorityQueue: plans,
 * then commits.  Returns 1 if inserted, 0 if the heap changed while a
 * comparison blocked (the caller checks the state again and retries).
 * Raises a failed comparison, after passing a promise on. */
static NOINLINE int heapput(lua_State *L, gl_queue *q, int promised) {
  int top = lua_gettop(L), t = top + 1, fn = 0, st;
  lua_Integer pos;
  lua_getiuservalue(L, 1, UV_ITEMS);
  if (q->less) {
    lua_getiuservalue(L, 1, UV_LESS);
    fn = top + 2;
  }
  st = planup(L, q, t, fn, 2, &pos);
  if (GL_UNLIKELY(st != LUA_OK && st != CHANGED)) {
    if (promised) droproom(q);
    return lua_error(L);
  }
  if (st == LUA_OK) commitup(L, q, t, 2, pos);
  lua_settop(L, top);
  return st == LUA_OK;
}

/* Takes the root of the heap of a PriorityQueue, as heapput: pushes it
 * and returns 1, or returns 0 if the heap changed while planning. */
static NOINLINE int heapget(lua_State *L, gl_queue *q, int promised) {
  int top = lua_gettop(L), t = top + 1, fn = 0, st;
  lua_Integer hole;
  lua_getiuservalue(L, 1, UV_ITEMS);
  if (q->less) {
    lua_getiuservalue(L, 1, UV_LESS);
    fn = top + 2;
  }
  st = plandown(L, q, t, fn, &hole);
  if (GL_UNLIKELY(st != LUA_OK && st != CHANGED)) {
    if (promised) dropitem(q);
    return lua_error(L);
  }
  if (st == CHANGED) {
    lua_settop(L, top);
    return 0;
  }
  commitdown(L, q, t, hole);
  return 1;
}

/* Stores the item at index 2 if the queue has room for it; `promised`:
 * the caller was woken with a place (it always has room).  Returns 1 if
 * stored, 0 if not.  Raises for a closed queue and for a failed
 * comparison; a promise is passed on first. */
static int putnow(lua_State *L, gl_queue *q, int promised) {
  for (;;) {
    if (GL_UNLIKELY(q->closed)) {
      if (promised) droproom(q);
      return luaL_error(L, "put into a closed queue");
    }
    if (!promised && !canput(q)) return 0;
    if (q->kind == K_PRIO) {
      if (!heapput(L, q, promised)) continue;  /* changed while comparing */
    } else {
      store(L, q, 2);
    }
    if (promised) q->roomres--;
    q->count++;
    q->version++;
    if (q->joinable) q->unfinished++;
    offer(q);
    return 1;
  }
}

/* Pushes an item and returns 1 if one can be taken now, else returns 0;
 * `promised`: the caller was woken with an item reserved for it.  Raises
 * for a failed comparison (a promise is passed on first).  Whatever lies
 * under the item is left there: the caller returns it as its one
 * result. */
static int getnow(lua_State *L, gl_queue *q, int promised) {
  for (;;) {
    if (!promised && avail(q) == 0) {
      gl_waiter *w = q->putters.head;
      if (q->kind != K_CHANNEL || w == NULL) return 0;
      /* A Channel's blocked putter: take its item from its slot. */
      lua_getiuservalue(L, 1, UV_SLOTS);
      lua_rawgeti(L, -1, w->n);
      lua_pushnil(L);
      lua_rawseti(L, -3, w->n);
      gl_hub_wake(w, GL_OK);
      return 1;
    }
    if (q->kind == K_PRIO) {
      if (!heapget(L, q, promised)) continue;  /* changed while comparing */
    } else {
      take(L, q);
    }
    if (promised) q->reserved--;
    q->count--;
    q->version++;
    makeroom(q);
    return 1;
  }
}

/* What a put ends with after its wait, its item at 2. */
static int putted(lua_State *L, int rc, gl_waiter *w) {
  GL_UNUSED(w);
  glL_raisepending(L, rc);
  if (rc == GL_ETIMEDOUT) return glL_fail(L, "timeout");
  if (rc == GL_ECLOSED) return luaL_error(L, "put into a closed queue");
  putnow(L, queueat1(L), 1);  /* woken with a place: cannot fail */
  lua_pushboolean(L, 1);
  return 1;
}

/* What a Channel's put ends with, its slot table on top. */
static int channelputted(lua_State *L, int rc, gl_waiter *w) {
  if (rc != GL_OK) {  /* no getter took it: take it back */
    lua_pushnil(L);
    lua_rawseti(L, -2, w->n);
  }
  glL_raisepending(L, rc);
  if (rc == GL_ETIMEDOUT) return glL_fail(L, "timeout");
  if (rc == GL_ECLOSED) return luaL_error(L, "put into a closed queue");
  lua_pushboolean(L, 1);
  return 1;
}

/* A Channel's put when no getter waits: parks with the item in a slot
 * until a getter takes it.  Returns as doput. */
static int channelput(lua_State *L, gl_queue *q, uint64_t timeout) {
  gl_waiter *w = gl_green_waiter(GL_WAIT_QUEUE_PUT, q);
  w->n = (intptr_t)++q->nextslot;
  lua_getiuservalue(L, 1, UV_SLOTS);
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, w->n);
  if (q->peekers.head != NULL) gl_waitq_wake_all(&q->peekers, GL_OK);
  return gl_green_wait(L, &q->putters, timeout, channelputted);
}

/* Puts the item at index 2, waiting up to `timeout` for room (a zero
 * timeout does not park).  Returns true, or nil and `fullmsg` / "timeout".
 * A putter blocked when the queue is closed raises, as a later put.  The
 * wait may unwind (green.h). */
static int doput(lua_State *L, gl_queue *q, uint64_t timeout,
                 const char *fullmsg) {
  if (GL_UNLIKELY(lua_isnoneornil(L, 2)))
    return luaL_argerror(L, 2, "value expected");
  if (!putnow(L, q, 0)) {
    if (timeout == 0) return glL_fail(L, fullmsg);
    if (q->kind == K_CHANNEL) return channelput(L, q, timeout);
    gl_green_waiter(GL_WAIT_QUEUE_PUT, q);
    return gl_green_wait(L, &q->putters, timeout, putted);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* What a get ends with after its wait (or without one, for a closed
 * queue): the item, or nil and "closed" or "timeout". */
static int gotfrom(lua_State *L, gl_queue *q, int rc) {
  glL_raisepending(L, rc);
  if (rc == GL_OK) {  /* an item was reserved for us: take it */
    getnow(L, q, 1);
    return 1;
  }
  if (rc == GL_ETIMEDOUT) return glL_fail(L, "timeout");
  if (getnow(L, q, 0)) return 1;  /* GL_ECLOSED: drain what is left */
  return glL_fail(L, "closed");
}

static int got(lua_State *L, int rc, gl_waiter *w) {
  GL_UNUSED(w);
  return gotfrom(L, queueat1(L), rc);
}

/* Gets an item, waiting up to `timeout` (a zero timeout does not park),
 * and ends with k, which gets GL_ECLOSED for a closed queue.  The wait
 * may unwind (green.h). */
static int doget(lua_State *L, gl_queue *q, uint64_t timeout,
                 const char *emptymsg, gl_green_k k) {
  if (getnow(L, q, 0)) return 1;
  if (q->closed) return k(L, GL_ECLOSED, NULL);
  if (timeout == 0) return glL_fail(L, emptymsg);
  gl_green_waiter(GL_WAIT_QUEUE_GET, q);
  return gl_green_wait(L, &q->getters, timeout, k);
}

/* Whether a put of a FIFO or LIFO queue can store its item at once:
 * there is room and no getter waits for it (offer() then has nobody to
 * hand it to). */
static int easyput(const gl_queue *q) {
  return q->kind <= K_LIFO && !q->closed && q->getters.head == NULL &&
         (q->maxsize == 0 || avail(q) + q->roomres < q->maxsize);
}

/* Stores the item at 2 of an easyput queue, bound at UPQ. */
static int putfast(lua_State *L, gl_queue *q) {
  storeat(L, q, UPQ, 2);
  q->count++;
  q->version++;
  if (q->joinable) q->unfinished++;
  if (q->peekers.head != NULL) gl_waitq_wake_all(&q->peekers, GL_OK);
  lua_pushboolean(L, 1);
  return 1;
}

/* Takes an item of a FIFO or LIFO queue, bound at UPQ, that has one. */
static int getfast(lua_State *L, gl_queue *q) {
  takeat(L, q, UPQ);
  q->count--;
  q->version++;
  if (q->putters.head != NULL) makeroom(q);
  return 1;
}

/* q:put(item, [timeout]) -> true | nil, "timeout".  The common case
 * first: a FIFO or LIFO queue with room and no getter waiting, called
 * without a timeout.  (Bound to the queue, as get, put_nowait and
 * get_nowait.) */
static int queue_put(lua_State *L) {
  gl_queue *q = boundqueue(L);
  if (GL_LIKELY(lua_gettop(L) == 2 && easyput(q) && !lua_isnil(L, 2)))
    return putfast(L, q);
  toudata(L);
  return doput(L, q, opttimeout(L, 3), "timeout");
}

/* q:put_nowait(item) -> true | nil, "full" */
static int queue_put_nowait(lua_State *L) {
  gl_queue *q = boundqueue(L);
  if (GL_LIKELY(lua_gettop(L) == 2 && easyput(q) && !lua_isnil(L, 2)))
    return putfast(L, q);
  toudata(L);
  return doput(L, q, 0, "full");
}

/* q:get([timeout]) -> item | nil, "timeout" | nil, "closed".  The
 * common case first: a FIFO or LIFO queue with an item, called without a
 * timeout. */
static int queue_get(lua_State *L) {
  gl_queue *q = boundqueue(L);
  if (GL_LIKELY(lua_gettop(L) == 1 && q->kind <= K_LIFO && avail(q) > 0))
    return getfast(L, q);
  toudata(L);
  return doget(L, q, opttimeout(L, 2), "timeout", got);
}

/* q:get_nowait() -> item | nil, "empty" | nil, "closed" */
static int queue_get_nowait(lua_State *L) {
  gl_queue *q = boundqueue(L);
  if (GL_LIKELY(q->kind <= K_LIFO && avail(q) > 0)) return getfast(L, q);
  toudata(L);
  return doget(L, q, 0, "empty", got);
}

/* q:peek([timeout]) -> the item a get would take now, left in place |
 * nil, "timeout" | nil, "closed".  Waits like get. */
static int queue_peek(lua_State *L) {
  gl_queue *q = checkqueue(L, 1);
  uint64_t timeout, deadline = glL_deadline(opttimeout(L, 2));
  gl_waiter w;
  int rc;
  for (;;) {
    if (avail(q) > 0) {
      look(L, q);
      return 1;
    }
    if (q->kind == K_CHANNEL && q->putters.head != NULL) {
      lua_getiuservalue(L, 1, UV_SLOTS);
      lua_rawgeti(L, -1, q->putters.head->n);
      return 1;
    }
    if (q->closed) return glL_fail(L, "closed");
    if ((timeout = glL_remaining(deadline)) == 0)
      return glL_fail(L, "timeout");
    gl_waiter_init(&w, GL_WAIT_QUEUE_PEEK, q);
    rc = gl_waitq_wait(&q->peekers, &w, timeout);
    glL_raisepending(L, rc);
    if (rc == GL_ETIMEDOUT) return glL_fail(L, "timeout");
  }
}

/* q:close(): later puts raise; blocked putters raise too; gets drain what
 * is left, then return nil, "closed" (blocked getters included). */
static int queue_close(lua_State *L) {
  gl_queue *q = checkqueue(L, 1);
  if (q->closed) return 0;
  q->closed = 1;
  q->version++;
  gl_waitq_wake_all(&q->getters, GL_ECLOSED);
  gl_waitq_wake_all(&q->putters, GL_ECLOSED);
  gl_waitq_wake_all(&q->peekers, GL_ECLOSED);
  return 0;
}

/* The iterator of q:iter(): the next item, or nil once closed and
 * drained. */
static int gotnext(lua_State *L, int rc, gl_waiter *w) {
  GL_UNUSED(w);
  return gotfrom(L, queueat1(L), rc) == 1 ? 1 : 0;  /* 0: the end */
}

static int queue_next(lua_State *L) {
  return doget(L, checkqueue(L, 1), UINT64_MAX, "timeout", gotnext);
}

/* q:iter() -> iterator, q: `for item in q:iter() do ... end` */
static int queue_iter(lua_State *L) {
  lua_settop(L, 1);
  lua_pushvalue(L, 1);  /* the table, which checkqueue replaces */
  checkqueue(L, 1);
  lua_pushcfunction(L, queue_next);
  lua_insert(L, 2);
  return 2;
}

/* q:qsize() and #q -> items a get could take now (not those promised to
 * woken getters).  A Channel holds none. */
static int queue_qsize(lua_State *L) {
  lua_pushinteger(L, avail(checkqueue(L, 1)));
  return 1;
}

/* q:empty() -> true if get_nowait would fail now */
static int queue_empty(lua_State *L) {
  gl_queue *q = checkqueue(L, 1);
  lua_pushboolean(L, avail(q) == 0 &&
                     (q->kind != K_CHANNEL || q->putters.head == NULL));
  return 1;
}

/* q:full() -> true if put_nowait would fail now (a Channel: no getter
 * waits) */
static int queue_full(lua_State *L) {
  lua_pushboolean(L, !canput(checkqueue(L, 1)));
  return 1;
}

/* q:closed() -> boolean */
static int queue_closed(lua_State *L) {
  lua_pushboolean(L, checkqueue(L, 1)->closed);
  return 1;
}

/* q:maxsize() -> the bound, or nil when unbounded (a Channel: 0) */
static int queue_maxsize(lua_State *L) {
  gl_queue *q = checkqueue(L, 1);
  if (q->kind == K_CHANNEL) lua_pushinteger(L, 0);
  else if (q->maxsize == 0) lua_pushnil(L);
  else lua_pushinteger(L, q->maxsize);
  return 1;
}

static gl_queue *checkjoinable(lua_State *L) {
  gl_queue *q = checkqueue(L, 1);
  if (!q->joinable) luaL_typeerror(L, 1, "green.JoinableQueue");
  return q;
}

/* q:task_done(): one item put earlier is processed.  Raises if called
 * more times than items were put. */
static int queue_task_done(lua_State *L) {
  gl_queue *q = checkjoinable(L);
  if (q->unfinished <= 0)
    return luaL_error(L, "task_done() called too many times");
  if (--q->unfinished == 0) gl_waitq_wake_all(&q->joiners, GL_OK);
  return 0;
}

/* q:join([timeout]) -> true | nil, "timeout": waits until every item put
 * was task_done. */
static int queue_join(lua_State *L) {
  gl_queue *q = checkjoinable(L);
  uint64_t timeout = opttimeout(L, 2);
  gl_waiter w;
  int rc;
  if (q->unfinished > 0) {
    if (timeout == 0) return glL_fail(L, "timeout");
    gl_waiter_init(&w, GL_WAIT_QUEUE_JOIN, q);
    rc = gl_waitq_wait(&q->joiners, &w, timeout);
    glL_raisepending(L, rc);
    if (rc == GL_ETIMEDOUT) return glL_fail(L, "timeout");
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* q:unfinished() -> puts not yet task_done */
static int queue_unfinished(lua_State *L) {
  lua_pushinteger(L, checkjoinable(L)->unfinished);
  return 1;
}

static int queue_tostring(lua_State *L) {
  gl_queue *q;
  lua_settop(L, 1);
  luaL_getmetafield(L, 1, "__name");
  q = checkqueue(L, 1);
  lua_pushfstring(L, "%s (%I items%s): %p", lua_tostring(L, 2), avail(q),
                  q->closed ? ", closed" : "", (void *)q);
  return 1;
}
/* }====== */

/* {====== Constructors ====== */

/* A constructor is a __call metamethod, which luaL_argerror can name
 * only when Lua code called it (not, say, pcall(green.Queue, x)): the
 * messages name it here. */
static int ctorerror(lua_State *L, int arg, const char *fname,
                     const char *msg) {
  return luaL_error(L, "bad argument #%d to '%s' (%s)", arg, fname, msg);
}

static lua_Integer checkmaxsize(lua_State *L, const char *fname) {
  int isint;
  lua_Integer n;
  if (lua_isnoneornil(L, 1)) return 0;
  n = lua_tointegerx(L, 1, &isint);
  if (!isint) {
    lua_pushfstring(L, "integer expected, got %s",
                    lua_type(L, 1) == LUA_TNUMBER ? "non-integer number"
                                                  : luaL_typename(L, 1));
    return ctorerror(L, 1, fname, lua_tostring(L, -1));
  }
  if (n < 0) return ctorerror(L, 1, fname, "maxsize must not be negative");
  return n;
}

static gl_queue *newqueue(lua_State *L, int kind, int cls,
                          lua_Integer maxsize) {
  int inl = (kind == K_FIFO || kind == K_LIFO) && maxsize > 0 &&
            maxsize <= INLINE_MAX;
  gl_queue *q = lua_newuserdatauv(L, sizeof *q, UV_N + (inl ? (int)maxsize
                                                     + INLINE_SPARE : 0));
  lua_Integer cap = 16;
  memset(q, 0, sizeof *q);
  q->magic = QUEUE_MAGIC;
  gl_waitq_init(&q->getters);
  gl_waitq_init(&q->putters);
  gl_waitq_init(&q->peekers);
  gl_waitq_init(&q->joiners);
  q->kind = (unsigned char)kind;
  q->maxsize = maxsize;
  q->joinable = cls == 3;
  if (kind == K_CHANNEL) cap = 4;
  else if (maxsize > 0)  /* room for maxsize, up to 1024 at first */
    while (cap < maxsize && cap < 1024) cap *= 2;
  q->cap = cap;
  if (inl) {
    q->inl = 1;
    q->cap = maxsize + INLINE_SPARE;
  } else {
    lua_createtable(L, kind == K_FIFO || kind == K_CHANNEL ? (int)cap : 0,
                    0);
    lua_setiuservalue(L, -2, UV_ITEMS);
  }
  if (kind == K_CHANNEL) {
    lua_newtable(L);
    lua_setiuservalue(L, -2, UV_SLOTS);
  }
  return q;
}

/* Replaces the userdata of q, on top of the stack, with the queue's table
 * of class `cls`. */
static void newtable(lua_State *L, gl_queue *q, int cls) {
  static const luaL_Reg bound[] = {
    {"put", queue_put}, {"get", queue_get},
    {"put_nowait", queue_put_nowait}, {"get_nowait", queue_get_nowait},
    {NULL, NULL}
  };
  const luaL_Reg *r;
  lua_createtable(L, 0, 5);
  q->self = lua_topointer(L, -1);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, 0);
  for (r = bound; r->name != NULL; r++) {
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, r->func, 1);
    lua_setfield(L, -2, r->name);
  }
  luaL_setmetatable(L, typenames[cls]);
  lua_replace(L, -2);
}

/* green.Queue([maxsize]) -> q; nil or 0: unbounded */
static int queue_new(lua_State *L) {
  newtable(L, newqueue(L, K_FIFO, 0, checkmaxsize(L, "Queue")), 0);
  return 1;
}

/* green.LifoQueue([maxsize]) -> q */
static int lifoqueue_new(lua_State *L) {
  newtable(L, newqueue(L, K_LIFO, 1, checkmaxsize(L, "LifoQueue")), 1);
  return 1;
}

/* green.PriorityQueue([maxsize], [less]) -> q: smallest first, by
 * less(a, b) or `<`. */
static int priorityqueue_new(lua_State *L) {
  lua_Integer maxsize = checkmaxsize(L, "PriorityQueue");
  gl_queue *q;
  if (!lua_isnoneornil(L, 2) && lua_type(L, 2) != LUA_TFUNCTION) {
    lua_pushfstring(L, "function expected, got %s", luaL_typename(L, 2));
    return ctorerror(L, 2, "PriorityQueue", lua_tostring(L, -1));
  }
  q = newqueue(L, K_PRIO, 2, maxsize);
  if (lua_type(L, 2) == LUA_TFUNCTION) {
    q->less = 1;
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, UV_LESS);
  }
  newtable(L, q, 2);
  return 1;
}

/* green.JoinableQueue([maxsize]) -> q */
static int joinablequeue_new(lua_State *L) {
  newtable(L, newqueue(L, K_FIFO, 3, checkmaxsize(L, "JoinableQueue")), 3);
  return 1;
}

/* green.Channel() -> q */
static int channel_new(lua_State *L) {
  newtable(L, newqueue(L, K_CHANNEL, 4, 0), 4);
  return 1;
}
/* }====== */

static const luaL_Reg queue_methods[] = {
  {"peek", queue_peek},
  {"qsize", queue_qsize},
  {"empty", queue_empty},
  {"full", queue_full},
  {"close", queue_close},
  {"closed", queue_closed},
  {"iter", queue_iter},
  {"maxsize", queue_maxsize},
  {NULL, NULL}
};

static const luaL_Reg joinable_methods[] = {
  {"task_done", queue_task_done},
  {"join", queue_join},
  {"unfinished", queue_unfinished},
  {NULL, NULL}
};

static const luaL_Reg queue_meta[] = {
  {"__len", queue_qsize},
  {"__tostring", queue_tostring},
  {NULL, NULL}
};

int luaopen_green_queue(lua_State *L);
int luaopen_green_queue(lua_State *L) {
  static const lua_CFunction ctors[NCLASSES] = {
    queue_new, lifoqueue_new, priorityqueue_new, joinablequeue_new,
    channel_new
  };
  size_t k;
  for (k = 0; k < NCLASSES; k++) {
    luaL_newmetatable(L, typenames[k]);
    luaL_setfuncs(L, queue_meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, queue_methods, 0);
    if (k == 3) luaL_setfuncs(L, joinable_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    glL_setconstructor(L, typenames[k] + strlen("green."), ctors[k], NULL);
  }
  return 0;
}
