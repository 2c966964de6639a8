/* green.subprocess.spawn(argv, [opts]) -> p: a child process on libuv's
 * uv_spawn (child.c), with its stdin, stdout and stderr as green streams
 * (green.Pipe, bindings/net) when asked for pipes.  p.pid, p.stdin,
 * p.stdout, p.stderr, p:wait([timeout]), p:kill([signame]).  run() is
 * composed in subprocess.lua. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/stream.h"
#include "proc.h"

#define PROCESS_TYPE "green.subprocess.Process"

/* The userdata: the child, and its pipes' streams as user values 1..3. */
typedef struct gl_process {
  glP_child *c;        /* NULL once released (collected) */
  int pid;
  int pending[3];      /* our pipe ends not yet made streams (a memory
                          error while making them leaves them here) */
} gl_process;

static gl_process *checkprocess(lua_State *L, int i) {
  return luaL_checkudata(L, i, PROCESS_TYPE);
}

/* {====== Arguments ====== */

/* Pushes the strings of the array at `idx` and returns a NULL-terminated
 * array of them (a userdata, pushed last): they stay on the stack while
 * the child starts.  An element that is not a string or a number raises
 * an error for argument `arg`. */
static char **pushargv(lua_State *L, int idx, int arg) {
  lua_Integer i, n = luaL_len(L, idx);
  char **v;
  luaL_argcheck(L, n >= 1, arg, "empty argument list");
  luaL_checkstack(L, (int)n + 2, "too many arguments");
  for (i = 1; i <= n; i++) {
    int t = lua_rawgeti(L, idx, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      luaL_argerror(L, arg, lua_pushfstring(L, "element %I is a %s, not a "
                                           "string", i, luaL_typename(L, -1)));
    lua_tostring(L, -1);
  }
  v = lua_newuserdatauv(L, ((size_t)n + 1) * sizeof *v, 0);
  for (i = 0; i < n; i++)
    v[i] = (char *)lua_tostring(L, -(int)(n - i) - 1);
  v[n] = NULL;
  return v;
}

/* Pushes the entries of opts.env (the table at `idx`): NAME = value
 * pairs, and "NAME=value" strings in its array part; returns them as an
 * environment (pushed last, as pushargv). */
static char **pushenv(lua_State *L, int idx) {
  int n = 0, i;
  char **v;
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    luaL_checkstack(L, 3, "environment too large");
    if (lua_type(L, -2) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -2);
      if (!lua_isstring(L, -1) || strchr(k, '=') != NULL || *k == '\0')
        luaL_argerror(L, 2, lua_pushfstring(L, "option 'env': entry '%s' is "
                      "not a name and a string", k));
      lua_pushfstring(L, "%s=%s", k, lua_tostring(L, -1));
    } else if (lua_isinteger(L, -2) && lua_type(L, -1) == LUA_TSTRING &&
               strchr(lua_tostring(L, -1), '=') != NULL) {
      lua_pushvalue(L, -1);
    } else {
      luaL_argerror(L, 2, "option 'env': NAME = value pairs or "
                    "\"NAME=value\" strings expected");
    }
    lua_insert(L, -3);  /* keep it below the key */
    lua_pop(L, 1);
    n++;
  }
  v = lua_newuserdatauv(L, ((size_t)n + 1) * sizeof *v, 0);
  for (i = 0; i < n; i++) v[i] = (char *)lua_tostring(L, -n - 1 + i);
  v[n] = NULL;
  return v;
}

static const char *const stdnames[] = {"stdin", "stdout", "stderr"};

/* Reads opts.stdin/stdout/stderr: "inherit" (default), "pipe", "null",
 * and for stderr "stdout" (the same as the child's stdout). */
static void checkstdio(lua_State *L, int opts, glP_stdio io[3]) {
  static const char *const hows[] = {"inherit", "null", "pipe", "stdout",
                                     NULL};
  int i;
  for (i = 0; i < 3; i++) {
    int how = GLP_INHERIT;
    if (opts && lua_getfield(L, opts, stdnames[i]) != LUA_TNIL) {
      const char *s = lua_tostring(L, -1);
      for (how = 0; hows[how] != NULL; how++)
        if (s != NULL && lua_type(L, -1) == LUA_TSTRING &&
            strcmp(s, hows[how]) == 0)
          break;
      if (hows[how] == NULL || (how == 3 && i != 2))
        luaL_argerror(L, opts, lua_pushfstring(L, "option '%s': \"pipe\", "
                      "\"inherit\"%s or \"null\" expected", stdnames[i],
                      i == 2 ? ", \"stdout\"" : ""));
    }
    if (opts) lua_pop(L, 1);
    io[i].how = how == 3 ? GLP_STDOUT : how;
    io[i].fd = -1;
  }
}

/* Checks that opts (at `opts`) has only known names. */
static void checkoptnames(lua_State *L, int opts) {
  static const char *const known[] = {"stdin", "stdout", "stderr", "env",
                                      "cwd", NULL};
  lua_pushnil(L);
  while (lua_next(L, opts)) {
    int i;
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
                                                    : NULL;
    for (i = 0; known[i] != NULL; i++)
      if (k != NULL && strcmp(k, known[i]) == 0) break;
    if (known[i] == NULL)
      luaL_argerror(L, opts, lua_pushfstring(L, "unknown option '%s'",
                    k != NULL ? k : luaL_typename(L, -2)));
    lua_pop(L, 1);
  }
}
/* }====== */

/* green.subprocess.spawn(argv, [opts]) -> p | nil, err.  A program that
 * cannot be started (not found, not executable, a bad cwd) gives
 * nil, "<what>: <reason>", with no child left behind. */
static int subprocess_spawn(lua_State *L) {
  glP_stdio io[3];
  char **argv, **env = NULL;
  const char *cwd = NULL;
  int opts = 0, e, i;
  gl_process *p;
  char buf[128];
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    opts = 2;
    checkoptnames(L, opts);
  }
  lua_settop(L, 2);
  checkstdio(L, opts, io);
  if (opts && lua_getfield(L, opts, "cwd") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_argerror(L, opts, lua_pushfstring(L, "option 'cwd': string "
                    "expected, got %s", luaL_typename(L, -1)));
    cwd = lua_tostring(L, -1);  /* stays at 3 */
  }
  if (opts && lua_getfield(L, opts, "env") != LUA_TNIL) {
    if (!lua_istable(L, -1))
      luaL_argerror(L, opts, lua_pushfstring(L, "option 'env': table "
                    "expected, got %s", luaL_typename(L, -1)));
    env = pushenv(L, -1);
  }
  argv = pushargv(L, 1, 1);
  p = lua_newuserdatauv(L, sizeof *p, 3);
  memset(p, 0, sizeof *p);
  for (i = 0; i < 3; i++) p->pending[i] = -1;
  luaL_setmetatable(L, PROCESS_TYPE);
  if (cwd != NULL) {  /* libuv says ENOENT for a bad cwd and program alike */
    struct stat st;
    e = stat(cwd, &st) != 0 ? -errno : S_ISDIR(st.st_mode) ? 0 : UV_ENOTDIR;
    if (e != 0) {
      lua_pushnil(L);
      lua_pushfstring(L, "cwd %s: %s", cwd, glP_strerror(e, buf, sizeof buf));
      return 2;
    }
  }
  p->c = glP_spawn(argv, env, cwd, io, &e);
  if (p->c == NULL && e == UV_EINTR) gl_green_raise(L);  /* killed */
  if (p->c == NULL) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", argv[0], glP_strerror(e, buf, sizeof buf));
    return 2;
  }
  p->pid = p->c->pid;
  for (i = 0; i < 3; i++)
    if (io[i].how == GLP_PIPE) p->pending[i] = io[i].fd;
  for (i = 0; i < 3; i++) {
    if (p->pending[i] < 0) continue;
    if (glS_openfd(L, GLS_PIPE, p->pending[i], &e) == NULL) {
      p->pending[i] = -1;  /* closed by glS_openfd */
      continue;            /* that stream stays nil */
    }
    p->pending[i] = -1;
    lua_setiuservalue(L, -2, i + 1);
  }
  return 1;
}

/* What follows p:wait's park (which may unwind, green.h). */
static int waited(lua_State *L, int rc, gl_waiter *w) {
  gl_process *p = checkprocess(L, 1);
  GL_UNUSED(w);
  glP_child_waiting(p->c, 0);
  glL_raisepending(L, rc);
  if (!p->c->exited) return glL_fail(L, "timeout");
  return glP_pushexit(L, p->c);
}

/* p:wait([timeout]) -> code, nil | nil, signame | nil, "timeout" */
static int process_wait(lua_State *L) {
  gl_process *p = checkprocess(L, 1);
  uint64_t timeout = glL_opttimeout(L, 2);
  lua_settop(L, 2);
  if (p->c->exited) return glP_pushexit(L, p->c);
  if (timeout == 0) return glL_fail(L, "timeout");
  glP_child_waiting(p->c, 1);
  gl_green_waiter(GL_WAIT_CHILD, p->c);
  return gl_green_wait(L, &p->c->exitq, timeout, waited);
}

/* p:kill([signame="SIGTERM"]) -> true | nil, err ("no such process" once
 * it has exited and been reaped). */
static int process_kill(lua_State *L) {
  gl_process *p = checkprocess(L, 1);
  int signum = glP_checksignal(L, 2, "SIGTERM"), e;
  char buf[128];
  if ((e = glP_child_kill(p->c, signum)) < 0)
    return glL_fail(L, glP_strerror(e, buf, sizeof buf));
  lua_pushboolean(L, 1);
  return 1;
}

/* p.pid, p.stdin, p.stdout, p.stderr, and the methods. */
static int process_index(lua_State *L) {
  gl_process *p = checkprocess(L, 1);
  const char *k = lua_tostring(L, 2);
  int i;
  if (k != NULL && lua_type(L, 2) == LUA_TSTRING) {
    if (strcmp(k, "pid") == 0) {
      lua_pushinteger(L, p->pid);
      return 1;
    }
    for (i = 0; i < 3; i++)
      if (strcmp(k, stdnames[i]) == 0) {
        lua_getiuservalue(L, 1, i + 1);
        return 1;
      }
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static int process_gc(lua_State *L) {
  gl_process *p = checkprocess(L, 1);
  int i;
  for (i = 0; i < 3; i++)
    if (p->pending[i] >= 0) close(p->pending[i]);
  if (p->c != NULL) glP_child_release(p->c);
  p->c = NULL;
  return 0;
}

static int process_tostring(lua_State *L) {
  gl_process *p = checkprocess(L, 1);
  if (p->c == NULL || !p->c->exited)
    lua_pushfstring(L, PROCESS_TYPE " (pid %d, running): %p", p->pid,
                    (void *)p);
  else if (p->c->termsig != 0)
    lua_pushfstring(L, PROCESS_TYPE " (pid %d, killed by %s): %p", p->pid,
                    glP_signame(p->c->termsig), (void *)p);
  else
    lua_pushfstring(L, PROCESS_TYPE " (pid %d, exited %d): %p", p->pid,
                    (int)p->c->status, (void *)p);
  return 1;
}

static const luaL_Reg process_methods[] = {
  {"wait", process_wait},
  {"kill", process_kill},
  {NULL, NULL}
};

static const luaL_Reg process_meta[] = {
  {"__gc", process_gc},
  {"__tostring", process_tostring},
  {NULL, NULL}
};

static const luaL_Reg subprocess_funcs[] = {
  {"spawn", subprocess_spawn},
  {NULL, NULL}
};

int luaopen_green_process(lua_State *L);
int luaopen_green_process(lua_State *L) {
  glL_newclass(L, PROCESS_TYPE, NULL, process_meta);
  luaL_newlib(L, process_methods);
  lua_pushcclosure(L, process_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  if (lua_getfield(L, -1, "subprocess") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "subprocess");
  }
  luaL_setfuncs(L, subprocess_funcs, 0);
  lua_pop(L, 1);
  return 0;
}
