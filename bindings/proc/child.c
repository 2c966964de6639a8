/* Child processes on libuv's uv_spawn: start, wait for the exit, signal,
 * release.  What Lua sees of them is in process.c (green.subprocess) and
 * popen.c (io.popen, os.execute). */
#define _GNU_SOURCE  /* pipe2 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proc.h"

const char *glP_strerror(int err, char *buf, size_t size) {
  const char *m = uv_strerror(err);
  size_t n = strlen(m);
  if (n >= size) n = size - 1;
  memcpy(buf, m, n);
  buf[n] = '\0';
  if (n > 0 && buf[n - 1] == '.') buf[--n] = '\0';
  if (buf[0] >= 'A' && buf[0] <= 'Z') buf[0] = (char)(buf[0] - 'A' + 'a');
  return buf;
}

static void freechild(glP_child *c) {
  GL_ASSERT(c->nwait == 0 && c->exitq.head == NULL);
  free(c);
}

static void onclose(uv_handle_t *h) {
  glP_child *c = h->data;
  c->closed = 1;
  if (c->released) freechild(c);
}

/* The exit callback, on the hub, after libuv reaped the child: records
 * how it ended, wakes the waiters and closes the handle. */
static void onexit(uv_process_t *h, int64_t status, int termsig) {
  glP_child *c = h->data;
  c->exited = 1;
  c->status = status;
  c->termsig = termsig;
  gl_waitq_wake_all(&c->exitq, GL_OK);
  uv_close((uv_handle_t *)h, onclose);
}

/* Closes what setup opened of stdio[0..n). */
static void closepipes(int fds[3][2], int n) {
  int i;
  for (i = 0; i < n; i++) {
    if (fds[i][0] >= 0) close(fds[i][0]);
    if (fds[i][1] >= 0) close(fds[i][1]);
  }
}

glP_child *glP_spawn(char **argv, char **env, const char *cwd,
                     glP_stdio stdio[3], int *err) {
  uv_process_options_t o;
  uv_stdio_container_t io[3];
  int fds[3][2];  /* per pipe: the parent's end, the child's end */
  glP_child *c;
  int i, e;
  for (i = 0; i < 3; i++) fds[i][0] = fds[i][1] = -1;
  memset(&o, 0, sizeof o);
  memset(io, 0, sizeof io);
  for (i = 0; i < 3; i++) {
    switch (stdio[i].how) {
      case GLP_PIPE: {
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0) {
          *err = -errno;
          closepipes(fds, i);
          return NULL;
        }
        fds[i][0] = i == 0 ? p[1] : p[0];  /* we write stdin, read 1 and 2 */
        fds[i][1] = i == 0 ? p[0] : p[1];
        fcntl(fds[i][0], F_SETFL, fcntl(fds[i][0], F_GETFL) | O_NONBLOCK);
        io[i].flags = UV_INHERIT_FD;
        io[i].data.fd = fds[i][1];
        break;
      }
      case GLP_NULL:
        io[i].flags = UV_IGNORE;  /* libuv opens /dev/null for 0..2 */
        break;
      case GLP_FD:
        io[i].flags = UV_INHERIT_FD;
        io[i].data.fd = stdio[i].fd;
        break;
      case GLP_STDOUT:
        GL_ASSERT(i == 2);
        io[i] = io[1];
        break;
      default:
        io[i].flags = UV_INHERIT_FD;
        io[i].data.fd = i;
        break;
    }
  }
  if ((c = calloc(1, sizeof *c)) == NULL) {
    *err = UV_ENOMEM;
    closepipes(fds, 3);
    return NULL;
  }
  gl_waitq_init(&c->exitq);
  o.exit_cb = onexit;
  o.file = argv[0];
  o.args = argv;
  o.env = env;
  o.cwd = cwd;
  o.stdio = io;
  o.stdio_count = 3;
  e = uv_spawn(glP_loop(), &c->h, &o);
  c->h.data = c;
  for (i = 0; i < 3; i++)
    if (fds[i][1] >= 0) close(fds[i][1]);  /* the child has its copy */
  if (e < 0) {
    /* libuv reaped the child that could not exec; the handle, initialised
     * all the same, must be closed before it is freed. */
    for (i = 0; i < 3; i++)
      if (fds[i][0] >= 0) close(fds[i][0]);
    c->released = 1;
    uv_close((uv_handle_t *)&c->h, onclose);
    *err = e;
    return NULL;
  }
  for (i = 0; i < 3; i++)
    if (stdio[i].how == GLP_PIPE) stdio[i].fd = fds[i][0];
  c->pid = c->h.pid;
  uv_unref((uv_handle_t *)&c->h);  /* until someone waits (see proc.h) */
  return c;
}

void glP_child_waiting(glP_child *c, int on) {
  if (on) {
    if (c->nwait++ == 0 && !c->exited) uv_ref((uv_handle_t *)&c->h);
  } else {
    GL_ASSERT(c->nwait > 0);
    if (--c->nwait == 0 && !c->exited) uv_unref((uv_handle_t *)&c->h);
  }
}

int glP_child_wait(glP_child *c, uint64_t timeout) {
  gl_waiter w;
  int rc;
  if (c->exited) return GL_OK;
  if (timeout == 0) return GL_ETIMEDOUT;
  memset(&w, 0, sizeof w);
  glP_child_waiting(c, 1);
  rc = gl_waitq_wait(&c->exitq, &w, timeout);
  glP_child_waiting(c, 0);
  if (rc == GL_OK && !c->exited) rc = GL_ETIMEDOUT;  /* cannot happen */
  return rc;
}

int glP_child_kill(glP_child *c, int signum) {
  if (c->exited) return UV_ESRCH;
  return uv_process_kill(&c->h, signum);
}

void glP_child_release(glP_child *c) {
  GL_ASSERT(!c->released);
  c->released = 1;
  if (c->closed) freechild(c);
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
