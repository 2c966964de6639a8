/* socket.select(recvt, sendt, [timeout]) on the hub: LuaSocket's results
 * (readable and writable tables, each with t[i] = obj and t[obj] = i,
 * and "timeout" when nothing was ready), for any objects with getfd (and
 * dirty) methods, ours or not.  Only the calling greenthread waits.
 *
 * Readiness is the kernel's (poll(2) on the fds) plus data our streams
 * hold in their buffers already (dirty).  To wait, the fds go into an
 * epoll instance of their own, whose fd the hub polls: the fds of our
 * streams are watched by libuv's own epoll too, which would not take a
 * second watcher for them, while a second epoll instance may watch any
 * fd.  After a wake-up every fd is checked again, so a wake-up for data
 * that libuv has meanwhile moved into a stream's buffer, or that another
 * greenthread took, is seen right. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif

#include "luasocket.h"

/* One object of recvt or sendt. */
typedef struct entry {
  int fd;
  short want, ready;  /* POLLIN, POLLOUT */
  int sendt;          /* from sendt (else recvt) */
  int index;          /* in its table */
} entry;

/* The fd of the object on top of the stack (-1 if it has none), and
 * whether it is dirty (for recvt): LuaSocket calls obj:getfd() and
 * obj:dirty(); our stream objects are read directly. */
static int objfd(lua_State *L, int *dirty) {
  int fd = -1;
  if (glC_role(L, -1) >= 0) {
    glS_stream *s = lua_touserdata(L, -1);
    if (dirty) *dirty = glS_buffered(s) > 0;
    return glS_sockfd(s);
  }
  lua_getfield(L, -1, "getfd");
  if (lua_isfunction(L, -1)) {
    lua_pushvalue(L, -2);
    lua_call(L, 1, 1);
    if (lua_isnumber(L, -1)) fd = (int)lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  if (dirty && fd >= 0) {
    lua_getfield(L, -1, "dirty");
    if (lua_isfunction(L, -1)) {
      lua_pushvalue(L, -2);
      lua_call(L, 1, 1);
      *dirty = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
  }
  return fd;
}

/* Appends obj to the result table at `out`: t[#t+1] = obj, t[obj] = #t. */
static void addresult(lua_State *L, int out, int obj) {
  lua_Integer n = (lua_Integer)luaL_len(L, out) + 1;
  lua_pushvalue(L, obj);
  lua_rawseti(L, out, n);
  lua_pushvalue(L, obj);
  lua_pushnumber(L, (lua_Number)n);
  lua_rawset(L, out);
}

/* The entries, in a userdata at stack index ENTRIES (collected by Lua
 * whatever error a getfd method raises). */
#define ENTRIES 6

static entry *grow(lua_State *L, entry *e, int n, int *cap) {
  entry *m;
  int ncap = *cap * 2 + 16;
  m = lua_newuserdatauv(L, sizeof *m * (size_t)ncap, 0);
  if (n > 0) memcpy(m, e, sizeof *m * (size_t)n);
  lua_replace(L, ENTRIES);
  *cap = ncap;
  return m;
}

/* Reads the objects of the table at `tab` (nil: none) into the entries,
 * from index *n on; a dirty one of recvt goes straight to the table at
 * `out`.  Returns how many were dirty. */
static int collect(lua_State *L, int tab, int sendt, int out, entry **e,
                   int *n, int *cap) {
  int i, fd, dirty = 0, ndirty = 0;
  if (lua_isnil(L, tab)) return 0;
  luaL_checktype(L, tab, LUA_TTABLE);
  for (i = 1;; i++) {
    if (lua_geti(L, tab, i) == LUA_TNIL) {
      lua_pop(L, 1);
      break;
    }
    dirty = 0;
    fd = objfd(L, sendt ? NULL : &dirty);
    if (fd >= 0 && dirty) {
      addresult(L, out, lua_gettop(L));
      ndirty++;
    } else if (fd >= 0) {
      if (*n == *cap) *e = grow(L, *e, *n, cap);
      (*e)[*n].fd = fd;
      (*e)[*n].want = sendt ? POLLOUT : POLLIN;
      (*e)[*n].ready = 0;
      (*e)[*n].sendt = sendt;
      (*e)[*n].index = i;
      (*n)++;
    }
    lua_pop(L, 1);
  }
  return ndirty;
}

/* Polls every fd without waiting; returns how many are ready. */
static int check(entry *e, int n) {
  struct pollfd one;
  int i, ready = 0;
  for (i = 0; i < n; i++) {
    one.fd = e[i].fd;
    one.events = e[i].want;
    one.revents = 0;
    e[i].ready = 0;
    if (poll(&one, 1, 0) > 0 &&
        (one.revents & (e[i].want | POLLERR | POLLHUP | POLLNVAL))) {
      e[i].ready = 1;
      ready++;
    }
  }
  return ready;
}

/* Waits until one of the fds may be ready, or `timeout` ns; returns the
 * park's status (GL_OK, GL_ETIMEDOUT, GL_EINTR). */
static int waitany(entry *e, int n, uint64_t timeout) {
#ifdef __linux__
  struct epoll_event ev;
  int ep = epoll_create1(EPOLL_CLOEXEC), i, rc;
  if (ep < 0) return gl_hub_sleep(timeout < 10000000 ? timeout : 10000000);
  for (i = 0; i < n; i++) {
    memset(&ev, 0, sizeof ev);
    ev.events = (e[i].want == POLLIN ? EPOLLIN : EPOLLOUT) | EPOLLRDHUP;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, e[i].fd, &ev) != 0 && errno == EEXIST) {
      ev.events |= EPOLLIN | EPOLLOUT;  /* the fd is in both tables */
      epoll_ctl(ep, EPOLL_CTL_MOD, e[i].fd, &ev);
    }
  }
  rc = gl_hub_wait_fd(ep, UV_READABLE, timeout);
  close(ep);
  return rc < 0 ? GL_OK : rc;
#else
  GL_UNUSED(e);
  GL_UNUSED(n);
  /* elsewhere: look again every 10 ms */
  return gl_hub_sleep(timeout < 10000000 ? timeout : 10000000);
#endif
}

/* socket.select(recvt, sendt, [timeout]) -> readable, writable, [err] */
static int socket_select(lua_State *L) {
  lua_Number t = luaL_optnumber(L, 3, -1);
  uint64_t deadline = glL_deadline(t < 0 ? UINT64_MAX : gl_hub_ns(t));
  entry *e = NULL;
  int n = 0, cap = 0, ndirty, ready, i, rc;
  lua_settop(L, 3);
  lua_newtable(L);  /* 4: readable */
  lua_newtable(L);  /* 5: writable */
  lua_pushnil(L);   /* ENTRIES */
  ndirty = collect(L, 1, 0, 4, &e, &n, &cap);
  collect(L, 2, 1, 5, &e, &n, &cap);
  for (;;) {
    ready = check(e, n);
    if (ready > 0 || ndirty > 0 || glL_remaining(deadline) == 0) break;
    rc = waitany(e, n, glL_remaining(deadline));
    if (rc == GL_EINTR) gl_green_raise(L);
  }
  for (i = 0; i < n; i++) {
    if (!e[i].ready) continue;
    lua_geti(L, e[i].sendt ? 2 : 1, e[i].index);
    addresult(L, e[i].sendt ? 5 : 4, lua_gettop(L));
    lua_pop(L, 1);
  }
  lua_settop(L, 5);
  if (ready > 0 || ndirty > 0) return 2;
  lua_settop(L, 5);
  lua_pushliteral(L, "timeout");
  return 3;
}

void glC_open_select(lua_State *L) {
  lua_pushcfunction(L, socket_select);
  lua_setfield(L, -2, "select");
}
