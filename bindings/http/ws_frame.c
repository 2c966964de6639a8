/* WebSocket framing with Debian's wslay (its frame API, RFC 6455, 5.2):
 * frames read from a stream's read buffer in place, and frames written
 * into a shared output buffer.  What frames mean (messages, control
 * frames, the closing) is websocket.c's. */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <wslay/wslay.h>

#include "websocket.h"

/* {====== Reading ======
 * wslay reads a frame through a callback into a buffer inside its
 * context.  A reader feeds it the bytes of the stream's buffer without
 * taking them (r->fed counts those wslay holds), and takes a frame's bytes
 * from the stream's buffer as wslay hands back its payload: the header
 * with the first piece (its size follows from the payload length and the
 * mask bit, since wslay accepts only the shortest length encoding), then
 * each piece.  So when no frame is under way and r->fed is 0, wslay holds
 * nothing and its context is as good as new: it goes back to a pool that
 * every connection shares, and an idle connection holds no context and
 * (the stream frees an empty buffer) no read buffer. */

#define POOL_MAX 64

static wslay_frame_context_ptr pool[POOL_MAX];
static int npool;

/* The reader being served and its stream: wslay's callbacks run inside
 * glW_read, which never parks, on the one hub thread. */
static glW_reader *curr;
static glS_stream *curs;

static ssize_t onrecv(uint8_t *buf, size_t len, int flags, void *ud) {
  size_t have = glS_buffered(curs) - curr->fed;
  GL_UNUSED(flags);
  GL_UNUSED(ud);
  if (len > have) len = have;
  if (len == 0) return 0;  /* wslay: "want read" */
  memcpy(buf, glS_bufdata(curs) + curr->fed, len);
  curr->fed += len;
  return (ssize_t)len;
}

static ssize_t nosend(const uint8_t *data, size_t len, int flags, void *ud) {
  GL_UNUSED(data);
  GL_UNUSED(len);
  GL_UNUSED(flags);
  GL_UNUSED(ud);
  return -1;
}

static int nomask(uint8_t *buf, size_t len, void *ud) {
  GL_UNUSED(buf);
  GL_UNUSED(len);
  GL_UNUSED(ud);
  return -1;
}

static const struct wslay_frame_callbacks readcb = {nosend, onrecv, nomask};

static wslay_frame_context_ptr takectx(void) {
  wslay_frame_context_ptr fc;
  if (npool > 0) return pool[--npool];
  return wslay_frame_context_init(&fc, &readcb, NULL) == 0 ? fc : NULL;
}

/* The size of a frame's header (RFC 6455, 5.2). */
static size_t headsize(uint64_t len, int mask) {
  size_t n = len > 0xffff ? 10 : len > 125 ? 4 : 2;
  return mask ? n + 4 : n;
}

int glW_read(glW_reader *r, glS_stream *s, glW_piece *pc) {
  struct wslay_frame_iocb io;
  ssize_t n;
  size_t take;
  if (r->fed == 0 && glS_buffered(s) == 0) return GLW_MORE;  /* nothing */
  if (r->fc == NULL && (r->fc = takectx()) == NULL) return GLW_NOMEM;
  curr = r;
  curs = s;
  n = wslay_frame_recv(r->fc, &io);
  curr = NULL;
  curs = NULL;
  if (n == WSLAY_ERR_WANT_READ) return GLW_MORE;
  if (n < 0) return GLW_PROTO;
  take = (size_t)n;
  pc->first = !r->inframe;
  if (pc->first) {
    r->inframe = 1;
    r->opcode = io.opcode;
    r->rsv = io.rsv;
    r->fin = io.fin;
    r->mask = io.mask;
    r->len = io.payload_length;
    r->got = 0;
    take += headsize(r->len, r->mask);
  }
  GL_ASSERT(take <= r->fed && take <= glS_buffered(s));
  glS_consume(s, take);
  r->fed -= take;
  r->got += (uint64_t)n;
  pc->data = io.data;
  pc->n = (size_t)n;
  pc->last = r->got == r->len;
  if (pc->last) r->inframe = 0;
  return GLW_PIECE;
}

void glW_readeridle(glW_reader *r) {
  if (r->fc == NULL || r->inframe || r->fed != 0) return;
  if (npool < POOL_MAX) pool[npool++] = r->fc;
  else wslay_frame_context_free(r->fc);
  r->fc = NULL;
}

void glW_readerfree(glW_reader *r) {
  glW_readeridle(r);
  if (r->fc != NULL) wslay_frame_context_free(r->fc);  /* mid-frame */
  memset(r, 0, sizeof *r);
}
/* }====== */

/* {====== Writing ======
 * Two wslay contexts frame every message sent, one for masked frames
 * (clients') and one for unmasked (servers'): wslay sets a context's
 * "masked" flag when a frame is masked but never clears it, so a context
 * that masked once would mask every later payload.  The send callback
 * appends to the output buffer, which always takes everything, so a
 * context is back at the start of a frame after each call. */

#define OUT_KEEP (256 * 1024)  /* a larger buffer is freed once emptied */

static wslay_frame_context_ptr wfc[2];  /* unmasked, masked */
static char *obuf;
static size_t olen, ocap;

static int reserve(size_t n) {
  size_t cap = ocap > 0 ? ocap : 4096;
  char *p;
  if (ocap - olen >= n) return 0;
  if (n > SIZE_MAX / 2 - olen) return -1;
  while (cap - olen < n) cap *= 2;
  if ((p = realloc(obuf, cap)) == NULL) return -1;
  obuf = p;
  ocap = cap;
  return 0;
}

static ssize_t onsend(const uint8_t *data, size_t len, int flags, void *ud) {
  GL_UNUSED(flags);
  GL_UNUSED(ud);
  if (reserve(len) != 0) return -1;
  memcpy(obuf + olen, data, len);
  olen += len;
  return (ssize_t)len;
}

/* A client's masking key comes from OpenSSL's generator (RFC 6455, 10.3:
 * keys must not be predictable). */
static int genmask(uint8_t *buf, size_t len, void *ud) {
  GL_UNUSED(ud);
  return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

static ssize_t norecv(uint8_t *buf, size_t len, int flags, void *ud) {
  GL_UNUSED(buf);
  GL_UNUSED(len);
  GL_UNUSED(flags);
  GL_UNUSED(ud);
  return -1;
}

static const struct wslay_frame_callbacks writecb = {onsend, norecv, genmask};

int glW_frame(int opcode, int rsv, int mask, const char *p, size_t n) {
  struct wslay_frame_iocb io;
  wslay_frame_context_ptr *fc = &wfc[mask != 0];
  ssize_t r;
  if (*fc == NULL && wslay_frame_context_init(fc, &writecb, NULL) != 0) {
    *fc = NULL;
    return -1;
  }
  if (reserve(n + 14) != 0) return -1;  /* the longest header: 14 bytes */
  memset(&io, 0, sizeof io);
  io.fin = 1;
  io.rsv = (uint8_t)rsv;
  io.opcode = (uint8_t)opcode;
  io.mask = (uint8_t)(mask != 0);
  io.payload_length = n;
  io.data = (const uint8_t *)p;
  io.data_length = n;
  r = wslay_frame_send(*fc, &io);
  if (r < 0 || (size_t)r != n) {  /* a failed key: start a fresh context */
    wslay_frame_context_free(*fc);
    *fc = NULL;
    return -1;
  }
  return 0;
}

const char *glW_out(size_t *n) {
  *n = olen;
  return obuf;
}

void glW_outreset(void) {
  olen = 0;
  if (ocap > OUT_KEEP) {
    free(obuf);
    obuf = NULL;
    ocap = 0;
  }
}
/* }====== */
