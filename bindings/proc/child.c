/* Child processes: started with posix_spawn, reaped by a SIGCHLD watcher
 * on the hub's loop, waited for, signalled, released.  What Lua sees of
 * them is in process.c (green.subprocess) and popen.c (io.popen,
 * os.execute). */
#define _GNU_SOURCE  /* pipe2, posix_spawn_file_actions_addchdir_np */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc.h"

extern char **environ;

static glP_child *live;        /* children not reaped yet */
static uv_signal_t *sigchld;   /* the watcher, from the first spawn on */
static int nwaiting;           /* greenthreads waiting for any child */

const char *glP_strerror(int err, char *buf, size_t size) {
  const char *m = strerror(-err);  /* libuv's errors are -errno here */
  size_t n = strlen(m);
  if (n >= size) n = size - 1;
  memcpy(buf, m, n);
  buf[n] = '\0';
  if (n > 0 && buf[n - 1] == '.') buf[--n] = '\0';
  if (buf[0] >= 'A' && buf[0] <= 'Z') buf[0] = (char)(buf[0] - 'A' + 'a');
  return buf;
}

/* {====== Reaping ====== */

/* Records that c ended with wait status st, takes it off the live list
 * and wakes its waiters.  Frees it if its owner let go already. */
static void reaped(glP_child *c, int st) {
  c->exited = 1;
  if (WIFSIGNALED(st)) c->termsig = WTERMSIG(st);
  else c->status = WEXITSTATUS(st);
  if (c->prev) c->prev->next = c->next; else live = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  gl_waitq_wake_all(&c->exitq, GL_OK);
  if (c->released && c->nwait == 0) free(c);
}

/* Reaps c if it has ended; returns whether it has. */
static int tryreap(glP_child *c) {
  int st;
  pid_t r;
  do r = waitpid(c->pid, &st, WNOHANG); while (r < 0 && errno == EINTR);
  if (r == c->pid) {
    reaped(c, st);
    return 1;
  }
  if (r < 0) {  /* ECHILD: someone else reaped it; its status is lost */
    reaped(c, 0);
    return 1;
  }
  return 0;
}

/* SIGCHLD: some child changed state.  Each of ours is asked about by its
 * own pid (as libuv does), so that other code's children are left to
 * their owners' waitpid. */
static void onsigchld(uv_signal_t *h, int signum) {
  glP_child *c, *next;
  GL_UNUSED(h);
  GL_UNUSED(signum);
  for (c = live; c != NULL; c = next) {
    next = c->next;
    tryreap(c);
  }
}

/* The watcher keeps the loop alive while someone waits for a child. */
static void refwatcher(void) {
  if (sigchld == NULL) return;
  if (nwaiting > 0) uv_ref((uv_handle_t *)sigchld);
  else uv_unref((uv_handle_t *)sigchld);
}

static int startwatcher(void) {
  int e;
  if (sigchld != NULL) return 0;
  if ((sigchld = malloc(sizeof *sigchld)) == NULL) return UV_ENOMEM;
  uv_signal_init(glP_loop(), sigchld);
  if ((e = uv_signal_start(sigchld, onsigchld, SIGCHLD)) < 0) {
    uv_close((uv_handle_t *)sigchld, (uv_close_cb)free);
    sigchld = NULL;
    return e;
  }
  refwatcher();
  return 0;
}
/* }====== */

/* {====== Spawning ====== */

/* A pipe whose ends are above 2, so that dup2 onto 0..2 never meets one
 * of them, both close-on-exec. */
static int makepipe(int p[2]) {
  int i;
  if (pipe2(p, O_CLOEXEC) != 0) return -errno;
  for (i = 0; i < 2; i++)
    if (p[i] <= 2) {
      int fd = fcntl(p[i], F_DUPFD_CLOEXEC, 3);
      if (fd < 0) {
        int e = -errno;
        close(p[0]);
        close(p[1]);
        return e;
      }
      close(p[i]);
      p[i] = fd;
    }
  return 0;
}

static void closeall(int fds[3][2]) {
  int i;
  for (i = 0; i < 3; i++) {
    if (fds[i][0] >= 0) close(fds[i][0]);
    if (fds[i][1] >= 0) close(fds[i][1]);
  }
}

/* A spawn handed to libuv's threadpool: posix_spawn returns only once the
 * child has exec'd (or failed to), which takes a millisecond or so, and
 * the hub keeps running meanwhile.  It owns copies of argv and env (the
 * caller may be gone before it runs).  Whoever comes last frees it: the
 * caller once it resumes, if the spawn is done; else the after-work
 * callback (the caller was interrupted: a child started all the same is
 * killed and reaped, since nobody will ever see it). */
typedef struct spawnreq {
  uv_work_t work;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  char **argv, **env;    /* in `strings`, copied */
  int fds[3][2];         /* per pipe: the parent's end, the child's end */
  int e;                 /* posix_spawn's result */
  pid_t pid;
  gl_waitq q;            /* the caller parks here (w.data: this) */
  int waiting, done;
  char *strings;
} spawnreq;

static void freereq(spawnreq *r) {
  posix_spawn_file_actions_destroy(&r->fa);
  posix_spawnattr_destroy(&r->attr);
  free(r->strings);
  free(r);
}

/* Copies a NULL-terminated array of strings into *at (advanced). */
static char **copystrings(char **v, char **at) {
  size_t i, n = 0;
  char **out;
  while (v[n] != NULL) n++;
  out = (char **)(void *)*at;
  *at += (n + 1) * sizeof *out;
  for (i = 0; i < n; i++) {
    size_t len = strlen(v[i]) + 1;
    memcpy(*at, v[i], len);
    out[i] = *at;
    *at += len;
  }
  out[n] = NULL;
  return out;
}

static size_t stringsize(char **v) {
  size_t n = sizeof *v;
  for (; v != NULL && *v != NULL; v++) n += sizeof *v + strlen(*v) + 1;
  return n;
}

/* Runs the spawn (in the threadpool, or on the hub), then closes the
 * child's ends of the pipes: the child has its copies. */
static void dospawn(spawnreq *r) {
  int i;
  r->e = posix_spawnp(&r->pid, r->argv[0], &r->fa, &r->attr, r->argv,
                      r->env != NULL ? r->env : environ);
  for (i = 0; i < 3; i++)
    if (r->fds[i][1] >= 0) {
      close(r->fds[i][1]);
      r->fds[i][1] = -1;
    }
}

static void onwork(uv_work_t *w) { dospawn((spawnreq *)w); }

static glP_child *addchild(pid_t pid);

static void afterwork(uv_work_t *w, int status) {
  spawnreq *r = (spawnreq *)w;
  gl_waiter *wt;
  if (status == UV_ECANCELED) r->e = ECANCELED;  /* never ran */
  if (!r->waiting) {  /* abandoned */
    if (r->e == 0) {
      glP_child *c = addchild(r->pid);
      kill(r->pid, SIGKILL);
      if (c != NULL) {
        c->released = 1;
        tryreap(c);  /* its SIGCHLD may have been handled already */
      }
    }
    closeall(r->fds);
    freereq(r);
    return;
  }
  r->done = 1;
  if ((wt = gl_waitq_find(&r->q, r)) != NULL) gl_hub_wake(wt, GL_OK);
}

/* Puts a new child on the live list; NULL if out of memory (then its
 * pid is waited for at once, blocking: better than a zombie). */
static glP_child *addchild(pid_t pid) {
  glP_child *c = calloc(1, sizeof *c);
  if (c == NULL) {
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    return NULL;
  }
  gl_waitq_init(&c->exitq);
  c->pid = pid;
  c->next = live;
  if (live) live->prev = c;
  live = c;
  return c;
}

/* Sets up r's file actions and attributes for `stdio` and `cwd`. */
static void prepare(spawnreq *r, const char *cwd, glP_stdio stdio[3]) {
  sigset_t all, none;
  int i;
  posix_spawn_file_actions_init(&r->fa);
  if (cwd != NULL) posix_spawn_file_actions_addchdir_np(&r->fa, cwd);
  for (i = 0; i < 3; i++) {
    switch (stdio[i].how) {
      case GLP_PIPE:
        posix_spawn_file_actions_adddup2(&r->fa, r->fds[i][1], i);
        break;
      case GLP_NULL:
        posix_spawn_file_actions_addopen(&r->fa, i, "/dev/null",
                                         i == 0 ? O_RDONLY : O_RDWR, 0);
        break;
      case GLP_FD:
        posix_spawn_file_actions_adddup2(&r->fa, stdio[i].fd, i);
        break;
      case GLP_STDOUT:
        GL_ASSERT(i == 2);
        posix_spawn_file_actions_adddup2(&r->fa, 1, 2);
        break;
      default:
        break;
    }
  }
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_init(&r->attr);
  posix_spawnattr_setsigdefault(&r->attr, &all);
  posix_spawnattr_setsigmask(&r->attr, &none);
  posix_spawnattr_setflags(&r->attr, POSIX_SPAWN_SETSIGDEF |
                                     POSIX_SPAWN_SETSIGMASK);
}

/* Runs r: in the threadpool, parked meanwhile, from a greenthread; on
 * the hub itself otherwise.  Returns the park's status: GL_OK once the
 * spawn is done (r->e, r->pid), else (interrupted: r is abandoned to
 * afterwork) GL_EINTR. */
static int run(spawnreq *r) {
  gl_waiter w;
  int rc;
  if (gl_hub_current() == NULL ||
      uv_queue_work(glP_loop(), &r->work, onwork, afterwork) != 0) {
    dospawn(r);
    r->done = 1;
    return GL_OK;
  }
  gl_waiter_init(&w, GL_WAIT_CHILD, NULL);
  w.data = r;
  r->waiting = 1;
  do rc = gl_waitq_wait(&r->q, &w, UINT64_MAX);
  while (rc == GL_OK && !r->done);
  r->waiting = 0;
  if (!r->done) {
    uv_cancel((uv_req_t *)&r->work);  /* afterwork frees it */
    return GL_EINTR;
  }
  return GL_OK;
}

glP_child *glP_spawn(char **argv, char **env, const char *cwd,
                     glP_stdio stdio[3], int *err) {
  spawnreq *r;
  glP_child *c;
  char *at;
  int i, e;
  if ((e = startwatcher()) < 0) {
    *err = e;
    return NULL;
  }
  if ((r = calloc(1, sizeof *r)) == NULL ||
      (r->strings = malloc(stringsize(argv) + stringsize(env))) == NULL) {
    free(r);
    *err = UV_ENOMEM;
    return NULL;
  }
  gl_waitq_init(&r->q);
  for (i = 0; i < 3; i++) r->fds[i][0] = r->fds[i][1] = -1;
  for (i = 0; i < 3; i++)
    if (stdio[i].how == GLP_PIPE) {
      int p[2];
      if ((e = makepipe(p)) < 0) {
        closeall(r->fds);
        free(r->strings);
        free(r);
        *err = e;
        return NULL;
      }
      r->fds[i][0] = i == 0 ? p[1] : p[0];  /* we write 0, read 1 and 2 */
      r->fds[i][1] = i == 0 ? p[0] : p[1];
      fcntl(r->fds[i][0], F_SETFL, fcntl(r->fds[i][0], F_GETFL) | O_NONBLOCK);
    }
  at = r->strings;
  r->argv = copystrings(argv, &at);
  r->env = env != NULL ? copystrings(env, &at) : NULL;
  prepare(r, cwd, stdio);
  if (run(r) != GL_OK) {
    *err = UV_EINTR;
    return NULL;
  }
  /* glibc reports a failed exec in e, having reaped the child. */
  if (r->e != 0 || (c = addchild(r->pid)) == NULL) {
    *err = r->e != 0 ? -r->e : UV_ENOMEM;
    closeall(r->fds);
    freereq(r);
    return NULL;
  }
  for (i = 0; i < 3; i++)
    if (stdio[i].how == GLP_PIPE) stdio[i].fd = r->fds[i][0];
  freereq(r);
  /* Spawned in the threadpool, the child may have ended, and its SIGCHLD
   * been handled, before it was on the live list. */
  tryreap(c);
  return c;
}
/* }====== */

void glP_child_waiting(glP_child *c, int on) {
  if (on) {
    c->nwait++;
    if (nwaiting++ == 0) refwatcher();
  } else {
    GL_ASSERT(c->nwait > 0 && nwaiting > 0);
    c->nwait--;
    if (--nwaiting == 0) refwatcher();
    if (c->nwait == 0 && c->released && c->exited) free(c);
  }
}

int glP_child_wait(glP_child *c, uint64_t timeout) {
  gl_waiter w;
  int rc, st;
  if (c->exited || tryreap(c)) return GL_OK;
  if (timeout == 0) return GL_ETIMEDOUT;
  if (gl_hub_current() == NULL) {  /* on the hub: no parking */
    pid_t r;
    do r = waitpid(c->pid, &st, 0); while (r < 0 && errno == EINTR);
    reaped(c, r == c->pid ? st : 0);
    return GL_OK;
  }
  gl_waiter_init(&w, GL_WAIT_CHILD, c);
  glP_child_waiting(c, 1);
  rc = gl_waitq_wait(&c->exitq, &w, timeout);
  glP_child_waiting(c, 0);
  if (rc == GL_OK && !c->exited) rc = GL_ETIMEDOUT;  /* cannot happen */
  return rc;
}

int glP_child_kill(glP_child *c, int signum) {
  if (c->exited) return UV_ESRCH;
  return kill(c->pid, signum) == 0 ? 0 : -errno;
}

void glP_child_release(glP_child *c) {
  GL_ASSERT(!c->released);
  c->released = 1;
  if (c->exited && c->nwait == 0) free(c);
}

int glP_pushexit(lua_State *L, const glP_child *c) {
  if (c->termsig != 0) {
    lua_pushnil(L);
    glP_pushsigname(L, c->termsig);
  } else {
    lua_pushinteger(L, (lua_Integer)c->status);
    lua_pushnil(L);
  }
  return 2;
}
