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

glP_child *glP_spawn(char **argv, char **env, const char *cwd,
                     glP_stdio stdio[3], int *err) {
  int fds[3][2];  /* per pipe: the parent's end, the child's end */
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t all, none;
  glP_child *c;
  pid_t pid;
  int i, e;
  for (i = 0; i < 3; i++) fds[i][0] = fds[i][1] = -1;
  if ((e = startwatcher()) < 0) {
    *err = e;
    return NULL;
  }
  for (i = 0; i < 3; i++)
    if (stdio[i].how == GLP_PIPE) {
      int p[2];
      if ((e = makepipe(p)) < 0) {
        closeall(fds);
        *err = e;
        return NULL;
      }
      fds[i][0] = i == 0 ? p[1] : p[0];  /* we write stdin, read 1 and 2 */
      fds[i][1] = i == 0 ? p[0] : p[1];
      fcntl(fds[i][0], F_SETFL, fcntl(fds[i][0], F_GETFL) | O_NONBLOCK);
    }
  if ((c = calloc(1, sizeof *c)) == NULL) {
    closeall(fds);
    *err = UV_ENOMEM;
    return NULL;
  }
  gl_waitq_init(&c->exitq);
  posix_spawn_file_actions_init(&fa);
  if (cwd != NULL) posix_spawn_file_actions_addchdir_np(&fa, cwd);
  for (i = 0; i < 3; i++) {
    switch (stdio[i].how) {
      case GLP_PIPE:
        posix_spawn_file_actions_adddup2(&fa, fds[i][1], i);
        break;
      case GLP_NULL:
        posix_spawn_file_actions_addopen(&fa, i, "/dev/null",
                                         i == 0 ? O_RDONLY : O_RDWR, 0);
        break;
      case GLP_FD:
        posix_spawn_file_actions_adddup2(&fa, stdio[i].fd, i);
        break;
      case GLP_STDOUT:
        GL_ASSERT(i == 2);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        break;
      default:
        break;
    }
  }
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_init(&attr);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF |
                                  POSIX_SPAWN_SETSIGMASK);
  /* glibc reports a failed exec here, having reaped the child. */
  e = posix_spawnp(&pid, argv[0], &fa, &attr, argv,
                   env != NULL ? env : environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  for (i = 0; i < 3; i++)
    if (fds[i][1] >= 0) {  /* the child has its copy */
      close(fds[i][1]);
      fds[i][1] = -1;
    }
  if (e != 0) {
    closeall(fds);
    free(c);
    *err = -e;
    return NULL;
  }
  for (i = 0; i < 3; i++)
    if (stdio[i].how == GLP_PIPE) stdio[i].fd = fds[i][0];
  c->pid = pid;
  c->next = live;
  if (live) live->prev = c;
  live = c;
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
