/* What the process bindings share (glP_*, "P" for processes, as glS_ for
 * sockets): signal names (signame.c) and child processes on libuv's
 * uv_spawn (child.c), which green.subprocess (process.c), io.popen and
 * os.execute (popen.c) are built on.  Signal handlers are signal.c, the
 * worker side of --workers worker.c. */
#ifndef GL_PROC_H
#define GL_PROC_H

#include <stdint.h>
#include <uv.h>

#include "lauxgl.h"

/* The hub's loop: libuv's default loop, which the Lua parts of the green
 * module, loaded while the runtime opens, use before the hub has it. */
static inline uv_loop_t *glP_loop(void) {
  uv_loop_t *loop = gl_hub_loop();
  return loop != NULL ? loop : uv_default_loop();
}

/* {====== Signal names (signame.c) ====== */

/* The number of signal `name` ("SIGTERM" or "TERM"), or 0 if unknown. */
int glP_signum(const char *name);

/* The name of signal `signum` ("SIGTERM"), or NULL if it has none. */
const char *glP_signame(int signum);

/* Pushes the name of signal `signum`, or "SIG<n>" for one without. */
void glP_pushsigname(lua_State *L, int signum);

/* Checks that argument `arg` names a signal (a name, with or without
 * "SIG", or a number); `def` is the default when the argument is absent
 * (NULL: required).  Raises an argument error for an unknown one. */
int glP_checksignal(lua_State *L, int arg, const char *def);
/* }====== */

/* {====== Child processes (child.c) ====== */

/* A child started with posix_spawn.  The SIGCHLD watcher (a libuv signal
 * handle) reaps it with waitpid on its own pid, never another's, so the
 * children of other code (a Lua C module's) are left to their owners.
 * The owner (a green.subprocess object, a popen file, os.execute) lets
 * go of it with glP_child_release, and whichever of the exit and the
 * release comes last frees it.  Waiters park on `exitq`. */
typedef struct glP_child glP_child;
struct glP_child {
  glP_child *prev, *next;  /* the children not reaped yet */
  gl_waitq exitq;      /* greenthreads waiting for the exit */
  int pid;
  int exited;          /* reaped */
  int64_t status;      /* exit status, when no signal ended it */
  int termsig;         /* the signal that ended it, or 0 */
  int nwait;           /* greenthreads waiting */
  int released;        /* the owner let go */
};

/* How a child's descriptor 0, 1 or 2 is set up. */
enum {
  GLP_INHERIT,         /* the parent's own */
  GLP_NULL,            /* /dev/null */
  GLP_PIPE,            /* a new pipe; the parent's end is returned */
  GLP_FD,              /* a descriptor of the parent (stdio.fd) */
  GLP_STDOUT           /* for stderr: the same as the child's stdout */
};

typedef struct glP_stdio {
  int how;             /* GLP_* */
  int fd;              /* GLP_FD: the parent's descriptor to give;
                          GLP_PIPE, on return: the parent's end
                          (non-blocking, close-on-exec) */
} glP_stdio;

/* Starts argv[0] (searched in PATH) with argv, the environment `env`
 * (NULL: the parent's), in directory `cwd` (NULL: the parent's), with
 * descriptors 0..2 as `stdio` says.  The child starts with every signal's
 * default disposition and an empty signal mask, so that what the parent
 * ignores (SIGPIPE) is not ignored in the child.  Returns the child, or
 * NULL with *err set to a libuv error (a program that cannot be run is
 * such an error, and no child is left of it); no pipe end is left open on
 * failure.  posix_spawn, not uv_spawn: glibc's shares the parent's memory
 * until the exec (vfork), where fork copies the page tables and makes
 * both sides fault on every page they touch until then.  It returns once
 * the child has exec'd, a millisecond or so: called from a greenthread,
 * it runs in libuv's threadpool while the greenthread parks, and an
 * interrupt meanwhile makes it fail with UV_EINTR (the caller raises it;
 * a child started all the same is killed and reaped). */
glP_child *glP_spawn(char **argv, char **env, const char *cwd,
                     glP_stdio stdio[3], int *err);

/* Parks the running greenthread until the child exited or `timeout` ns
 * passed.  Returns GL_OK (exited), GL_ETIMEDOUT or GL_EINTR.  Off the
 * greenthreads (on the hub), blocks in waitpid instead. */
int glP_child_wait(glP_child *c, uint64_t timeout);

/* Around a wait made otherwise (gl_green_wait on c->exitq): a child that
 * someone waits for keeps the loop alive, one nobody waits for does not
 * (it cannot wake anyone). */
void glP_child_waiting(glP_child *c, int on);

/* Sends signal `signum` to the child.  Returns 0 or a libuv error
 * (UV_ESRCH once it has been reaped: its pid may belong to another
 * process by then, so it is never signalled again). */
int glP_child_kill(glP_child *c, int signum);

/* The owner lets go of c: it is freed now if it has exited, else once it
 * is reaped (no zombie is left). */
void glP_child_release(glP_child *c);

/* Pushes what a wait returns: the exit status and nil, or nil and the
 * name of the signal that ended it. */
int glP_pushexit(lua_State *L, const glP_child *c);

/* The message of libuv error `err` (a negated errno) in the manner of
 * glS_strerror: strerror's text, lower case, no final period. */
const char *glP_strerror(int err, char *buf, size_t size);
/* }====== */

#endif
