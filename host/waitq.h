/* The FIFO wait queue every blocking object parks on: waiters wake in the
 * order they started waiting; a waiter woken by a timeout or an interrupt
 * leaves the queue, so no object ever wakes a task that is gone. */
#ifndef GL_WAITQ_H
#define GL_WAITQ_H

#include "hub.h"

struct gl_waitq {
  gl_waiter *head, *tail;
  size_t n;
};

#define GL_WAITQ_INIT {NULL, NULL, 0}

static inline void gl_waitq_init(gl_waitq *q) {
  q->head = q->tail = NULL;
  q->n = 0;
}

/* Links `w` at the tail of `q` (gl_waitq_wait does so, then parks). */
void gl_waitq_link(gl_waitq *q, gl_waiter *w);

/* Links `w` at the head of `q`: a waiter that was served and must wait
 * once more keeps its place before those that came after it. */
void gl_waitq_link_first(gl_waitq *q, gl_waiter *w);

/* Links `w` at the tail of `q` and parks the current task on it (see
 * gl_hub_park).  Returns the waker's status, GL_ETIMEDOUT or GL_EINTR; in
 * every case `w` has left `q` on return. */
int gl_waitq_wait(gl_waitq *q, gl_waiter *w, uint64_t timeout_ns);

/* Wakes the first waiter with `status` and returns it, or NULL if none. */
gl_waiter *gl_waitq_wake_one(gl_waitq *q, int status);

/* Wakes every waiter with `status`, in order; returns how many. */
size_t gl_waitq_wake_all(gl_waitq *q, int status);

/* Finds the first waiter in `q` whose data is `tag`, or NULL.  A libuv
 * callback finds the waiter it must wake this way, by a heap address in
 * w.data, because a pointer to a parked waiter goes stale when its stack
 * is displaced (coro.h); only the queue's links are kept right. */
gl_waiter *gl_waitq_find(gl_waitq *q, const void *tag);

/* Unlinks `w` from its queue without waking it (the hub does this on any
 * wake-up). */
void gl_waitq_remove(gl_waiter *w);

#endif
