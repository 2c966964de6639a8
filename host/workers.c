/* The master of greenlua --workers N (workers.h): forks the workers
 * before any hub or loop exists, restarts the ones that die, stops them
 * all on SIGTERM/SIGINT and replaces them one by one on SIGHUP.
 *
 * It is a small poll(2) loop over a self-pipe (its signal handlers only
 * write the signal's number there) and one pipe per worker, on which the
 * worker writes a byte once it serves.  Every child it forks it reaps. */
#define _GNU_SOURCE  /* pipe2, sigabbrev_np */

#include "workers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "gl.h"

#define NS 1000000000ULL
#define QUICK_NS (1 * NS)        /* a death this soon after the start... */
#define MAX_QUICK 5              /* ...this many times in a row: give up */
#define FIRST_DELAY_NS (NS / 10) /* the first restart after a quick death */
#define READY_WAIT_NS (5 * NS)   /* reload: silence taken as ready */
#define MAX_WORKERS 1024

int gl_worker_id;
double gl_worker_grace;
static int readyfd = -1;         /* a worker's end of its ready pipe */

/* A worker process as the master sees it. */
typedef struct proc {
  pid_t pid;        /* 0: none */
  int rfd;          /* the master's end of its ready pipe, or -1 */
  uint64_t started;
  int ready;
} proc;

/* A worker's number: its process, the one replacing it during a reload,
 * and its restart schedule. */
typedef struct slot {
  proc cur, next;
  int quick;          /* quick deaths in a row */
  uint64_t restart;   /* when to start it again, or 0 */
  int done;           /* exited 0: finished, not started again */
} slot;

static struct {
  const char *progname;
  int n;
  slot *slots;        /* 1..n */
  pid_t *old;         /* replaced workers told to stop, not yet reaped */
  int nold;
  int sigpipe[2];
  int stopping;
  uint64_t deadline;  /* stopping: SIGKILL for those left then */
  int reloading;      /* the slot being replaced, or 0 */
  int reload_again;   /* SIGHUP during a reload: one more round */
  int gaveup;
  uint64_t grace_ns;
  pid_t master;
  struct pollfd *fds;  /* the master loop's poll set */
  int *who;            /* the slot of each fds[i], negative for `next` */
} M;

static uint64_t now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static void say(const char *fmt, ...) GL_PRINTF(1, 2);
static void say(const char *fmt, ...) {
  va_list ap;
  fflush(stdout);
  fprintf(stderr, "%s: ", M.progname);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
}

/* How a process ended, for the log. */
static const char *howended(int st, char *buf, size_t size) {
  if (WIFSIGNALED(st)) {
    const char *abbrev = sigabbrev_np(WTERMSIG(st));
    if (abbrev != NULL) snprintf(buf, size, "was killed by SIG%s", abbrev);
    else snprintf(buf, size, "was killed by signal %d", WTERMSIG(st));
  } else {
    snprintf(buf, size, "exited with status %d", WEXITSTATUS(st));
  }
  return buf;
}

/* {====== Signals ====== */

static const int watched[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
#define NWATCHED (sizeof watched / sizeof watched[0])

static void onsignal(int sig) {
  int e = errno;
  unsigned char b = (unsigned char)sig;
  if (write(M.sigpipe[1], &b, 1) < 0) {}  /* full: the wake-up is there */
  errno = e;
}

static void catchsignals(void) {
  struct sigaction sa;
  size_t i;
  if (pipe2(M.sigpipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    perror("greenlua: pipe");
    exit(EXIT_FAILURE);
  }
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = onsignal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (i = 0; i < NWATCHED; i++) sigaction(watched[i], &sa, NULL);
}

/* In a new worker: the signals as they were before the master, and none
 * of the master's descriptors. */
static void becomeworker(int num, int wfd) {
  struct sigaction sa;
  sigset_t none;
  size_t i;
  int k;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  for (i = 0; i < NWATCHED; i++) sigaction(watched[i], &sa, NULL);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  close(M.sigpipe[0]);
  close(M.sigpipe[1]);
  for (k = 1; k <= M.n; k++) {
    if (M.slots[k].cur.rfd >= 0) close(M.slots[k].cur.rfd);
    if (M.slots[k].next.rfd >= 0) close(M.slots[k].next.rfd);
  }
  free(M.slots);
  free(M.old);
  free(M.fds);
  free(M.who);
#ifdef __linux__
  /* A worker whose master is gone stops as if told to. */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != M.master) exit(EXIT_SUCCESS);
#endif
  gl_worker_id = num;
  gl_worker_grace = (double)M.grace_ns / NS;
  readyfd = wfd;
}
/* }====== */

/* {====== Starting and stopping workers ====== */

/* Forks worker `num` into *p.  Returns 1 in the worker, 0 in the master
 * (p->pid is 0 if the fork failed, which is reported). */
static int startworker(int num, proc *p) {
  int fds[2];
  pid_t pid;
  memset(p, 0, sizeof *p);
  p->rfd = -1;
  if (pipe2(fds, O_CLOEXEC) != 0) {
    say("worker %d: cannot make its pipe: %s", num, strerror(errno));
    return 0;
  }
  fflush(NULL);  /* nothing buffered is written twice */
  pid = fork();
  if (pid == 0) {
    close(fds[0]);
    becomeworker(num, fds[1]);
    return 1;
  }
  close(fds[1]);
  if (pid < 0) {
    say("worker %d: cannot start it: %s", num, strerror(errno));
    close(fds[0]);
    return 0;
  }
  p->pid = pid;
  p->rfd = fds[0];
  p->started = now();
  return 0;
}

static void forget(proc *p) {
  if (p->rfd >= 0) close(p->rfd);
  memset(p, 0, sizeof *p);
  p->rfd = -1;
}

static void retire(proc *p) {
  pid_t *old = realloc(M.old, (size_t)(M.nold + 1) * sizeof *old);
  if (old != NULL) {
    M.old = old;
    M.old[M.nold++] = p->pid;
  }
  kill(p->pid, SIGTERM);
  forget(p);
}

/* Sends sig to every worker process there is. */
static void signalall(int sig) {
  int k;
  for (k = 1; k <= M.n; k++) {
    if (M.slots[k].cur.pid > 0) kill(M.slots[k].cur.pid, sig);
    if (M.slots[k].next.pid > 0) kill(M.slots[k].next.pid, sig);
  }
  for (k = 0; k < M.nold; k++) kill(M.old[k], sig);
}

static int alive(void) {
  int k, n = M.nold;
  for (k = 1; k <= M.n; k++)
    n += (M.slots[k].cur.pid > 0) + (M.slots[k].next.pid > 0);
  return n;
}

static void stopall(void) {
  if (M.stopping) {  /* a second request: no more waiting */
    signalall(SIGKILL);
    return;
  }
  M.stopping = 1;
  /* A worker waits grace_ns for its handlers, then up to a second for
   * those it kills (StreamServer:stop). */
  M.deadline = now() + M.grace_ns + 2 * NS;
  signalall(SIGTERM);
}

/* Ends the master once the workers are gone: SIGKILL to those left after
 * the deadline, and every one reaped. */
GL_NORETURN static void finish(int status) {
  int k;
  for (k = 1; k <= M.n; k++) {
    proc *ps[2] = {&M.slots[k].cur, &M.slots[k].next};
    int j;
    for (j = 0; j < 2; j++)
      if (ps[j]->pid > 0) {
        say("worker %d (pid %d) did not stop in time; killing it", k,
            (int)ps[j]->pid);
        kill(ps[j]->pid, SIGKILL);
        while (waitpid(ps[j]->pid, NULL, 0) < 0 && errno == EINTR) {}
      }
  }
  for (k = 0; k < M.nold; k++) {
    kill(M.old[k], SIGKILL);
    while (waitpid(M.old[k], NULL, 0) < 0 && errno == EINTR) {}
  }
  exit(status);
}
/* }====== */

/* {====== Deaths, restarts and reloads ====== */

static void beginreload(int from);

/* Worker k's process p ended with wait status st. */
static void died(int k, proc *p, int st) {
  slot *s = &M.slots[k];
  char how[64];
  uint64_t t = now(), delay;
  int quick = t - p->started < QUICK_NS;
  pid_t pid = p->pid;
  howended(st, how, sizeof how);
  if (p == &s->next) {  /* a replacement that did not make it */
    forget(p);
    if (M.stopping) return;
    say("worker %d: the new process (pid %d) %s before it served; the old "
        "one goes on", k, (int)pid, how);
    if (M.reloading == k) beginreload(k + 1);
    return;
  }
  forget(p);
  if (s->next.pid > 0) {  /* its replacement takes over at once */
    s->cur = s->next;
    memset(&s->next, 0, sizeof s->next);
    s->next.rfd = -1;
    if (M.reloading == k && !M.stopping) beginreload(k + 1);
    return;
  }
  if (M.stopping) return;
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
    s->done = 1;
    return;
  }
  s->quick = quick ? s->quick + 1 : 0;
  if (s->quick >= MAX_QUICK) {
    say("worker %d (pid %d) %s; it died within a second of starting %d "
        "times in a row: giving up", k, (int)pid, how, s->quick);
    M.gaveup = 1;
    stopall();
    return;
  }
  delay = s->quick == 0 ? 0 : FIRST_DELAY_NS << (s->quick - 1);
  if (delay == 0)
    say("worker %d (pid %d) %s; restarting it", k, (int)pid, how);
  else
    say("worker %d (pid %d) %s; restarting it in %.1f s", k, (int)pid, how,
        (double)delay / NS);
  s->restart = t + delay;
  if (s->restart == 0) s->restart = 1;
}

/* Reaps every child that ended. */
static void reap(void) {
  pid_t pid;
  int st, k;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    for (k = 0; k < M.nold; k++)
      if (M.old[k] == pid) {
        M.old[k] = M.old[--M.nold];
        break;
      }
    for (k = 1; k <= M.n; k++) {
      if (M.slots[k].cur.pid == pid) died(k, &M.slots[k].cur, st);
      else if (M.slots[k].next.pid == pid) died(k, &M.slots[k].next, st);
      else continue;
      break;
    }
  }
}

/* Replaces the workers from slot `from` on, one at a time: starts the
 * next one's replacement (returns 1 in it), or ends the reload. */
static int reloadstep(int from) {
  int k;
  for (k = from; k <= M.n; k++) {
    slot *s = &M.slots[k];
    if (s->done || s->next.pid > 0) continue;
    if (s->cur.pid == 0) {  /* waiting for its restart: now */
      if (s->restart != 0) s->restart = 1;
      continue;
    }
    M.reloading = k;
    return startworker(k, &s->next);
  }
  M.reloading = 0;
  if (M.reload_again) {
    M.reload_again = 0;
    return reloadstep(1);
  }
  return 0;
}

static int pendingreload;  /* beginreload from died(): done by the loop */

static void beginreload(int from) {
  M.reloading = 0;
  pendingreload = from;
}

/* The replacement of slot k serves (or stayed silent long enough): the
 * old worker is told to stop, and the reload moves on. */
static void promote(int k) {
  slot *s = &M.slots[k];
  if (s->cur.pid > 0) retire(&s->cur);
  s->cur = s->next;
  s->cur.ready = 1;
  memset(&s->next, 0, sizeof s->next);
  s->next.rfd = -1;
  s->quick = 0;
  beginreload(k + 1);
}

/* Reads what a worker wrote on its ready pipe: a byte once it serves;
 * end of file once it has ended (its death comes with SIGCHLD). */
static void readready(int k, proc *p) {
  char b;
  ssize_t r = read(p->rfd, &b, 1);
  if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (r == 1) {
    p->ready = 1;
    if (p == &M.slots[k].next) promote(k);
    return;
  }
  close(p->rfd);  /* ended, or an error: no more to read */
  p->rfd = -1;
}
/* }====== */

/* The master's loop.  Returns only in a new worker, with its number. */
static int master(void) {
  struct pollfd *fds = M.fds;
  int *who = M.who;
  for (;;) {
    uint64_t t = now(), wake = UINT64_MAX;
    int nfds = 0, k, timeout;
    unsigned char sigs[64];
    ssize_t r;
    /* Workers due to (re)start; the reload's next step. */
    for (k = 1; k <= M.n && !M.stopping; k++) {
      slot *s = &M.slots[k];
      if (s->restart != 0 && s->restart <= t) {
        s->restart = 0;
        if (startworker(k, &s->cur)) return k;
        if (s->cur.pid == 0) s->restart = t + NS;  /* fork failed */
      }
      if (s->restart != 0 && s->restart < wake) wake = s->restart;
      if (s->next.pid > 0 && !s->next.ready) {
        uint64_t due = s->next.started + READY_WAIT_NS;
        if (due <= t) promote(k);
        else if (due < wake) wake = due;
      }
    }
    if (pendingreload && !M.stopping) {
      int from = pendingreload;
      pendingreload = 0;
      if (reloadstep(from)) return M.reloading;
      continue;
    }
    if (M.stopping) {
      if (alive() == 0) exit(M.gaveup ? EXIT_FAILURE : EXIT_SUCCESS);
      if (M.deadline <= t) finish(M.gaveup ? EXIT_FAILURE : EXIT_SUCCESS);
      wake = M.deadline;
    } else if (alive() == 0) {
      int waiting = 0;
      for (k = 1; k <= M.n; k++) waiting += !M.slots[k].done;
      if (!waiting) exit(EXIT_SUCCESS);  /* every worker finished */
    }
    /* Wait for a signal, a ready byte, or the next deadline. */
    fds[nfds].fd = M.sigpipe[0];
    fds[nfds++].events = POLLIN;
    for (k = 1; k <= M.n; k++) {
      if (M.slots[k].cur.rfd >= 0) {
        who[nfds] = k;
        fds[nfds].fd = M.slots[k].cur.rfd;
        fds[nfds++].events = POLLIN;
      }
      if (M.slots[k].next.rfd >= 0) {
        who[nfds] = -k;
        fds[nfds].fd = M.slots[k].next.rfd;
        fds[nfds++].events = POLLIN;
      }
    }
    timeout = wake == UINT64_MAX ? -1
            : wake <= t ? 0 : (int)((wake - t + 999999) / 1000000);
    if (poll(fds, (nfds_t)nfds, timeout) < 0 && errno != EINTR) {
      say("poll: %s", strerror(errno));
      exit(EXIT_FAILURE);
    }
    for (k = 1; k < nfds; k++)
      if (fds[k].revents != 0) {
        int s = who[k] > 0 ? who[k] : -who[k];
        readready(s, who[k] > 0 ? &M.slots[s].cur : &M.slots[s].next);
      }
    while ((r = read(M.sigpipe[0], sigs, sizeof sigs)) > 0) {
      ssize_t i;
      for (i = 0; i < r; i++) {
        if (sigs[i] == SIGTERM || sigs[i] == SIGINT) {
          stopall();
        } else if (sigs[i] == SIGHUP && !M.stopping) {
          if (M.reloading || pendingreload) M.reload_again = 1;
          else beginreload(1);
        }
      }
    }
    reap();  /* SIGCHLD, or a death noticed anyway */
  }
}

int gl_workers_run(int n, double grace, const char *progname) {
  int k;
  GL_ASSERT(n >= 1 && n <= MAX_WORKERS);
  memset(&M, 0, sizeof M);
  M.progname = progname;
  M.n = n;
  M.grace_ns = grace > 0 ? (uint64_t)(grace * NS) : 0;
  M.master = getpid();
  M.slots = calloc((size_t)n + 1, sizeof *M.slots);
  M.fds = calloc((size_t)(2 * n + 1), sizeof *M.fds);
  M.who = calloc((size_t)(2 * n + 1), sizeof *M.who);
  if (M.slots == NULL || M.fds == NULL || M.who == NULL) {
    say("out of memory");
    exit(EXIT_FAILURE);
  }
  for (k = 1; k <= n; k++) M.slots[k].cur.rfd = M.slots[k].next.rfd = -1;
  catchsignals();
  for (k = 1; k <= n; k++) {
    if (startworker(k, &M.slots[k].cur)) return k;
    if (M.slots[k].cur.pid == 0) M.slots[k].restart = now() + NS;
  }
  return master();
}

void gl_worker_ready(void) {
  if (readyfd < 0) return;
  if (write(readyfd, "r", 1) < 0) {}  /* the master is gone: no matter */
  close(readyfd);
  readyfd = -1;
}
