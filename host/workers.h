/* greenlua --workers N: a master process that forks N workers, each of
 * which goes on to run the script with a hub of its own, and watches
 * over them (workers.c).  No Lua, no libuv: the master forks before
 * either is started, so every worker begins with a fresh loop. */
#ifndef GL_WORKERS_H
#define GL_WORKERS_H

/* In a worker: its number (1..N) and the grace period, in seconds, that
 * it has to finish what is in flight once told to stop.  0 outside
 * workers. */
extern int gl_worker_id;
extern double gl_worker_grace;

/* Becomes the master of n workers (1 or more), with `grace` seconds for
 * them to stop.  Returns only in a worker, with its number; the master
 * ends the process itself:
 *
 * - A worker that dies (a signal, an exit status other than 0) is logged
 *   on stderr with its number and how it ended, and started again with
 *   the same number at once.  One that dies less than a second after it
 *   started is started again after a delay that doubles each time (0.1 s,
 *   0.2 s, ...); after 5 such deaths in a row the master gives up: it
 *   stops the others and exits 1.  A worker that exits 0 has finished and
 *   is not started again; when every one has, the master exits 0.
 * - SIGTERM or SIGINT: every worker gets SIGTERM and `grace` seconds to
 *   end (then SIGKILL); the master exits 0 once they are gone.  A second
 *   one kills them at once.
 * - SIGHUP: the workers are replaced one by one: a new worker with the
 *   same number starts, and once it serves (gl_worker_ready) or 5 s have
 *   passed, the old one gets SIGTERM.  A new one that dies first is
 *   reported and the old one kept. */
int gl_workers_run(int n, double grace, const char *progname);

/* In a worker: tells the master that it serves now (its servers listen);
 * later calls do nothing. */
void gl_worker_ready(void);

#endif
