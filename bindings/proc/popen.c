/* io.popen and os.execute that block only the calling greenthread.
 *
 * os.execute(cmd) runs `/bin/sh -c cmd` with uv_spawn and parks until it
 * exits; it returns what Lua's does.  Unlike system(3), it leaves the
 * program's signal handling alone while it waits (system ignores SIGINT
 * and SIGQUIT meanwhile).
 *
 * io.popen(cmd, mode) returns a real Lua file (io.type says "file"), so
 * that every method and read format is Lua's own: its FILE is made with
 * fopencookie over our end of a pipe, and the cookie's read and write
 * park the greenthread on the descriptor when the pipe is empty or full
 * (a greenthread has a C stack of its own: parking inside stdio is fine).
 * close waits for the child and returns Lua's values.
 *
 * An interrupt (a kill, a green.Timeout) wakes a parked cookie call, which
 * can only fail with EINTR: raising there would jump out of stdio.  So the
 * io functions that reach a pipe (read, write, flush, lines, close, in
 * their method and io.* forms) are wrapped: after the original returns
 * from a popen file, a pending interrupt is raised.  The wrappers call the
 * originals as C functions in their own call, so that error messages are
 * Lua's own; files that are not ours pass straight through.
 *
 * A file collected without close (__gc) is closed without waiting for its
 * child (it is reaped all the same): a finalizer must not park.  Off the
 * greenthreads (a finalizer running on the hub), the pipe is polled with
 * poll(2) and the child waited for with waitpid, blocking, as Lua's own
 * would.  Either way the child starts with every signal's default
 * disposition and an empty mask (child.c). */
#define _GNU_SOURCE  /* fopencookie, pipe2 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <lualib.h>

#include "proc.h"

#define SHELL "/bin/sh"

/* A popen file: liolib's luaL_Stream first, so that its functions take it
 * for theirs. */
typedef struct popenfile {
  luaL_Stream s;
  int fd;            /* our end of the pipe; -1 once closed */
  glP_child *c;      /* the child */
  int noparking;     /* being collected: block instead of parking */
  int busy;          /* a greenthread waits on fd (one poll per fd) */
  gl_waitq turn;     /* others wanting to wait on it */
} popenfile;

static int popen_close(lua_State *L);

/* The popen file at `idx`, or NULL if it is not one. */
static popenfile *topopen(lua_State *L, int idx) {
  luaL_Stream *p = luaL_testudata(L, idx, LUA_FILEHANDLE);
  return p != NULL && p->closef == popen_close ? (popenfile *)p : NULL;
}

/* {====== Starting the shell ====== */

/* Starts `/bin/sh -c cmd` with descriptor `pipe` (0 or 1, or -1 for none)
 * on a pipe whose other end goes to *fd.  Returns the child, or NULL with
 * errno set; raises a kill or Timeout that came meanwhile. */
static glP_child *startshell(lua_State *L, const char *cmd, int pipe,
                             int *fd) {
  char *argv[] = {(char *)SHELL, (char *)"-c", (char *)cmd, NULL};
  glP_stdio io[3] = {{GLP_INHERIT, -1}, {GLP_INHERIT, -1},
                     {GLP_INHERIT, -1}};
  glP_child *c;
  int e;
  if (pipe >= 0) io[pipe].how = GLP_PIPE;
  if ((c = glP_spawn(argv, NULL, NULL, io, &e)) == NULL) {
    if (e == UV_EINTR) gl_green_raise(L);
    errno = -e;
    return NULL;
  }
  if (pipe >= 0) *fd = io[pipe].fd;
  return c;
}

/* Lua's results of a child that ended: true | nil, "exit" | "signal",
 * code (luaL_execresult's). */
static int pushresult(lua_State *L, int code, int sig) {
  if (sig != 0) {
    luaL_pushfail(L);
    lua_pushliteral(L, "signal");
    lua_pushinteger(L, sig);
  } else {
    if (code == 0) lua_pushboolean(L, 1);
    else luaL_pushfail(L);
    lua_pushliteral(L, "exit");
    lua_pushinteger(L, code);
  }
  return 3;
}

/* Waits for c (parked, or blocking off the greenthreads), releases it
 * and pushes Lua's results; raises a pending interrupt instead. */
static int finishchild(lua_State *L, glP_child *c) {
  int rc = glP_child_wait(c, UINT64_MAX);
  if (rc != GL_OK) {
    glP_child_release(c);  /* still reaped once it exits */
    gl_green_raise(L);
  }
  rc = pushresult(L, (int)c->status, c->termsig);
  glP_child_release(c);
  return rc;
}
/* }====== */

/* {====== The cookie: our end of the pipe under stdio ====== */

/* Waits until fd is readable or writable.  A greenthread parks (one at a
 * time per file: libuv allows one poll handle per descriptor); elsewhere
 * poll(2) blocks.  Returns 0, or -1 with errno EINTR for an interrupt. */
static int waitfd(popenfile *pf, int events) {
  struct pollfd p;
  if (!pf->noparking && gl_hub_current() != NULL) {
    gl_waiter w;
    int rc = GL_OK;
    while (pf->busy && rc == GL_OK) {
      gl_waiter_init(&w, GL_WAIT_FD, NULL);
      w.n = pf->fd;
      rc = gl_waitq_wait(&pf->turn, &w, UINT64_MAX);
    }
    if (rc == GL_OK) {
      pf->busy = 1;
      rc = gl_hub_wait_fd(pf->fd, events, UINT64_MAX);
      pf->busy = 0;
      gl_waitq_wake_one(&pf->turn, GL_OK);
    }
    if (rc == GL_EINTR) {
      errno = EINTR;
      return -1;
    }
    if (rc != -1) return 0;  /* -1: cannot be polled by libuv */
  }
  p.fd = pf->fd;
  p.events = events == UV_READABLE ? POLLIN : POLLOUT;
  while (poll(&p, 1, -1) < 0 && errno == EINTR) {}
  return 0;
}

static ssize_t cookie_read(void *cookie, char *buf, size_t size) {
  popenfile *pf = cookie;
  for (;;) {
    ssize_t r = read(pf->fd, buf, size);
    if (r >= 0) return r;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    if (waitfd(pf, UV_READABLE) != 0) return -1;
  }
}

/* Writes all of buf: stdio takes a short count for an error. */
static ssize_t cookie_write(void *cookie, const char *buf, size_t size) {
  popenfile *pf = cookie;
  size_t done = 0;
  while (done < size) {
    ssize_t r = write(pf->fd, buf + done, size - done);
    if (r >= 0) {
      done += (size_t)r;
      continue;
    }
    if (errno == EINTR) continue;
    if ((errno != EAGAIN && errno != EWOULDBLOCK) ||
        waitfd(pf, UV_WRITABLE) != 0)
      return done > 0 ? (ssize_t)done : -1;
  }
  return (ssize_t)done;
}

static int cookie_seek(void *cookie, off64_t *pos, int whence) {
  GL_UNUSED(cookie);
  GL_UNUSED(pos);
  GL_UNUSED(whence);
  errno = ESPIPE;  /* a pipe, as popen(3)'s: "Illegal seek" */
  return -1;
}

static int cookie_close(void *cookie) {
  popenfile *pf = cookie;
  int r = close(pf->fd);
  pf->fd = -1;
  return r;
}

static const cookie_io_functions_t cookie_funcs = {
  cookie_read, cookie_write, cookie_seek, cookie_close
};
/* }====== */

/* {====== io.popen ====== */

/* The file io.close, f:close or __close is closing now: only then does
 * close wait for the child (a collected file does not). */
static popenfile *closing;

/* closef of a popen file, called by liolib with the file at 1: closes
 * the pipe (flushing what is buffered) and, unless it is being collected,
 * waits for the child.  Returns Lua's values. */
static int popen_close(lua_State *L) {
  popenfile *pf = (popenfile *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
  int explicit = closing == pf;
  glP_child *c = pf->c;
  closing = NULL;
  pf->noparking = !explicit;
  fclose(pf->s.f);  /* what a failed flush loses, pclose loses too */
  pf->c = NULL;
  if (!explicit) {
    glP_child_release(c);
    return 0;
  }
  return finishchild(L, c);
}

/* io.popen(prog, [mode="r"]) -> file | nil, msg, errno */
static int io_popen(lua_State *L) {
  const char *prog = luaL_checkstring(L, 1);
  const char *mode = luaL_optstring(L, 2, "r");
  int reading = mode[0] == 'r';
  popenfile *pf = lua_newuserdatauv(L, sizeof *pf, 0);
  memset(pf, 0, sizeof *pf);
  pf->fd = -1;
  gl_waitq_init(&pf->turn);
  luaL_setmetatable(L, LUA_FILEHANDLE);  /* closef NULL: a closed file */
  luaL_argcheck(L, (mode[0] == 'r' || mode[0] == 'w') && mode[1] == '\0', 2,
                "invalid mode");
  fflush(NULL);  /* as Lua's l_popen: output written so far goes first */
  if ((pf->c = startshell(L, prog, reading ? 1 : 0, &pf->fd)) == NULL)
    return luaL_fileresult(L, 0, prog);
  pf->s.f = fopencookie(pf, mode, cookie_funcs);
  if (pf->s.f == NULL) {
    int e = errno;
    close(pf->fd);
    glP_child_release(pf->c);  /* reaped once it exits */
    errno = e;
    return luaL_fileresult(L, 0, prog);
  }
  pf->s.closef = popen_close;
  return 1;
}
/* }====== */

/* {====== os.execute ====== */

static int executed(lua_State *L, int rc, gl_waiter *w) {
  glP_child *c = w->data;
  glP_child_waiting(c, 0);
  if (rc != GL_OK) {
    glP_child_release(c);
    gl_green_raise(L);
  }
  rc = pushresult(L, (int)c->status, c->termsig);
  glP_child_release(c);
  return rc;
}

/* os.execute([cmd]) -> true | nil, "exit" | "signal", code; without cmd,
 * whether a shell is available. */
static int os_execute(lua_State *L) {
  const char *cmd = luaL_optstring(L, 1, NULL);
  glP_child *c;
  gl_waiter *w;
  if (cmd == NULL) {
    lua_pushboolean(L, access(SHELL, X_OK) == 0);
    return 1;
  }
  if ((c = startshell(L, cmd, -1, NULL)) == NULL)
    return luaL_fileresult(L, 0, NULL);
  if (gl_hub_current() == NULL) return finishchild(L, c);
  w = gl_green_waiter(GL_WAIT_CHILD, c);
  w->data = c;
  glP_child_waiting(c, 1);
  if (c->exited) return executed(L, GL_OK, w);
  return gl_green_wait(L, &c->exitq, UINT64_MAX, executed);
}
/* }====== */

/* {====== Raising interrupts after the io functions ====== */

/* Which file a wrapped function works on: the method's own (ARG1); the
 * default input or output (io.read, io.write); io.lines' (the default
 * input without a file name; with one, a file of its own, not a pipe);
 * io.close's (its argument, else the default output). */
enum { ARG1, INPUT, OUTPUT, LINES, CLOSE };

static popenfile *target(lua_State *L, int which) {
  popenfile *pf;
  const char *key = "_IO_output";
  switch (which) {
    case ARG1: return topopen(L, 1);
    case LINES:
      if (!lua_isnoneornil(L, 1)) return NULL;
      /* FALLTHROUGH */
    case INPUT:
      key = "_IO_input";
      break;
    case CLOSE:
      if (!lua_isnone(L, 1)) return topopen(L, 1);
      break;
    default:
      break;
  }
  lua_getfield(L, LUA_REGISTRYINDEX, key);
  pf = topopen(L, -1);
  lua_pop(L, 1);
  return pf;
}

/* Raises the running greenthread's pending interrupt, if any. */
static void raisepending(lua_State *L) {
  gl_task *t = gl_hub_current();
  if (t != NULL && gl_hub_pending(t)) gl_green_raise(L);
}

/* A wrapped read, write or flush: upvalue 1 the original, 2 the target. */
static int wrapped(lua_State *L) {
  lua_CFunction f = lua_tocfunction(L, lua_upvalueindex(1));
  popenfile *pf = target(L, (int)lua_tointeger(L, lua_upvalueindex(2)));
  int n = f(L);
  if (pf != NULL) raisepending(L);
  return n;
}

/* A wrapped close (io.close, f:close, __close): this close waits. */
static int wrapped_close(lua_State *L) {
  lua_CFunction f = lua_tocfunction(L, lua_upvalueindex(1));
  popenfile *pf = target(L, (int)lua_tointeger(L, lua_upvalueindex(2)));
  int n;
  closing = pf;
  n = f(L);
  closing = NULL;
  return n;
}

/* The iterator of lines() over a popen file: the original's, called so
 * that a pending interrupt replaces the error an interrupted read
 * raises. */
static int popen_lines_iter(lua_State *L) {
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  if (lua_pcall(L, n, LUA_MULTRET, 0) != LUA_OK) {
    raisepending(L);
    return lua_error(L);
  }
  return lua_gettop(L);
}

static int wrapped_lines(lua_State *L) {
  lua_CFunction f = lua_tocfunction(L, lua_upvalueindex(1));
  popenfile *pf = target(L, (int)lua_tointeger(L, lua_upvalueindex(2)));
  int n = f(L);
  if (pf != NULL && n >= 1) {  /* the iterator is the first result */
    lua_pushvalue(L, -n);
    lua_pushcclosure(L, popen_lines_iter, 1);
    lua_replace(L, -n - 1);
  }
  return n;
}

/* Replaces t[name] (t at -1), a C function, by `wrapper` around it. */
static void wrap(lua_State *L, const char *name, lua_CFunction wrapper,
                 int which) {
  lua_getfield(L, -1, name);
  if (lua_tocfunction(L, -1) == NULL) {  /* not liolib's: leave it */
    lua_pop(L, 1);
    return;
  }
  lua_pushinteger(L, which);
  lua_pushcclosure(L, wrapper, 2);
  lua_setfield(L, -2, name);
}
/* }====== */

int luaopen_green_popen(lua_State *L);
int luaopen_green_popen(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_IOLIBNAME) == LUA_TTABLE) {
    wrap(L, "read", wrapped, INPUT);
    wrap(L, "write", wrapped, OUTPUT);
    wrap(L, "lines", wrapped_lines, LINES);
    wrap(L, "close", wrapped_close, CLOSE);
    lua_pushcfunction(L, io_popen);
    lua_setfield(L, -2, "popen");
  }
  lua_pop(L, 1);
  if (lua_getfield(L, -1, LUA_OSLIBNAME) == LUA_TTABLE) {
    lua_pushcfunction(L, os_execute);
    lua_setfield(L, -2, "execute");
  }
  lua_pop(L, 2);
  if (luaL_getmetatable(L, LUA_FILEHANDLE) == LUA_TTABLE) {
    wrap(L, "__close", wrapped_close, ARG1);
    if (lua_getfield(L, -1, "__index") == LUA_TTABLE) {
      wrap(L, "read", wrapped, ARG1);
      wrap(L, "write", wrapped, ARG1);
      wrap(L, "flush", wrapped, ARG1);
      wrap(L, "lines", wrapped_lines, ARG1);
      wrap(L, "close", wrapped_close, ARG1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 0;
}
