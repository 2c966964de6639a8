/* The FIFO wait queue: an intrusive doubly linked list of waiters that
 * live on their tasks' stacks. */
#include "waitq.h"

void gl_waitq_remove(gl_waiter *w) {
  gl_waitq *q = w->q;
  if (q == NULL) return;
  if (w->prev) w->prev->next = w->next; else q->head = w->next;
  if (w->next) w->next->prev = w->prev; else q->tail = w->prev;
  w->prev = w->next = NULL;
  w->q = NULL;
  q->n--;
}

void gl_waitq_link(gl_waitq *q, gl_waiter *w) {
  w->q = q;
  w->next = NULL;
  w->prev = q->tail;
  if (q->tail) q->tail->next = w; else q->head = w;
  q->tail = w;
  q->n++;
}

void gl_waitq_link_first(gl_waitq *q, gl_waiter *w) {
  w->q = q;
  w->prev = NULL;
  w->next = q->head;
  if (q->head) q->head->prev = w; else q->tail = w;
  q->head = w;
  q->n++;
}

int gl_waitq_wait(gl_waitq *q, gl_waiter *w, uint64_t timeout_ns) {
  int rc;
  gl_waitq_link(q, w);
  rc = gl_hub_park(w, timeout_ns);
  gl_waitq_remove(w);  /* GL_EINTR before parking leaves it linked */
  return rc;
}

gl_waiter *gl_waitq_find(gl_waitq *q, const void *tag) {
  gl_waiter *w;
  for (w = q->head; w != NULL; w = w->next)
    if (w->data == tag) return w;
  return NULL;
}

gl_waiter *gl_waitq_wake_one(gl_waitq *q, int status) {
  gl_waiter *w = q->head;
  if (w != NULL) gl_hub_wake(w, status);
  return w;
}

size_t gl_waitq_wake_all(gl_waitq *q, int status) {
  size_t n = 0;
  while (q->head != NULL) {
    gl_hub_wake(q->head, status);
    n++;
  }
  return n;
}
