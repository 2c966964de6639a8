/* What the C parts of green.websocket share (glW_*, "W" for WebSocket, as
 * glH_ for HTTP): framing with Debian's wslay (ws_frame.c), compression
 * with zlib (ws_deflate.c) and the handshake's keys (ws_handshake.c).
 * The object itself, its messages and its closing are websocket.c's; the
 * handshakes websocket.lua's. */
#ifndef GL_WEBSOCKET_H
#define GL_WEBSOCKET_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "net/stream.h"

#define GLW_TYPE "green.websocket"

/* The opcodes of RFC 6455, 5.2. */
enum {
  GLW_CONT = 0x0, GLW_TEXT = 0x1, GLW_BINARY = 0x2,
  GLW_CLOSE = 0x8, GLW_PING = 0x9, GLW_PONG = 0xa
};
#define GLW_RSV1 4  /* the reserved bits as wslay gives them: RSV1 << 2 */

/* {====== Reading frames (ws_frame.c) ======
 * A reader takes frames from a stream's read buffer, one piece of payload
 * at a time: wslay parses each frame and unmasks its payload.  It holds a
 * wslay context only while a frame is under way; between frames the
 * context goes back to a pool, so an idle connection holds none. */

typedef struct glW_reader {
  struct wslay_frame_context *fc;  /* while a frame is read, or NULL */
  size_t fed;          /* bytes of the buffer wslay holds, not yet taken */
  uint64_t len, got;   /* the frame's payload length, and what came */
  unsigned char inframe;           /* a frame is under way */
  unsigned char opcode, rsv, fin, mask;  /* of the last frame begun */
} glW_reader;

/* A piece of a frame's payload: n bytes at data (in wslay's buffer, good
 * until the next read); `first` and `last` piece of the frame. */
typedef struct glW_piece {
  const unsigned char *data;
  size_t n;
  int first, last;
} glW_piece;

enum {
  GLW_PIECE,  /* a piece came (the reader's fields describe its frame) */
  GLW_MORE,   /* more bytes are needed */
  GLW_PROTO,  /* the bytes break the framing (wslay says so) */
  GLW_NOMEM
};

/* Reads the next piece of payload from s's buffer, taking its bytes (and
 * the header before a first piece) from the buffer. */
int glW_read(glW_reader *r, glS_stream *s, glW_piece *pc);

/* Before a reader waits: gives its context back if no frame is under way
 * and wslay holds no byte.  glW_readerfree lets it go for good. */
void glW_readeridle(glW_reader *r);
void glW_readerfree(glW_reader *r);
/* }====== */

/* {====== Writing frames (ws_frame.c) ====== */

/* Appends to the output buffer the frame (fin) of n bytes at p with
 * `opcode` and the reserved bits `rsv`, masked with a new random key if
 * `mask` (a client's frames).  Returns 0, or -1 when out of memory.  The
 * buffer is shared: send what it holds (glW_out) before anything else
 * may frame (before parking). */
int glW_frame(int opcode, int rsv, int mask, const char *p, size_t n);

/* The output buffer's bytes, and emptying it. */
const char *glW_out(size_t *n);
void glW_outreset(void);
/* }====== */

/* {====== permessage-deflate (ws_deflate.c) ======
 * RFC 7692 without context takeover in either direction (the handshakes
 * ask for it), so that compressing or inflating a message needs no state
 * between messages: one zlib stream of each kind serves every
 * connection. */

/* Compresses n bytes at p as one message's payload, with a window of
 * `wbits` (9 to 15).  Returns the payload in a buffer of this file (good
 * until the next call) with its length in *out, or NULL when out of
 * memory. */
const char *glW_deflate(const char *p, size_t n, int wbits, size_t *out);

/* Inflates a message's payload of n bytes at p into at most `max` bytes.
 * Returns 0 and the bytes in a buffer of this file (good until the next
 * call) in *res and *out, or GLW_TOOBIG past max, GLW_BADDATA for data
 * zlib rejects, GLW_ZNOMEM when out of memory. */
enum { GLW_TOOBIG = 1, GLW_BADDATA, GLW_ZNOMEM };
int glW_inflate(const char *p, size_t n, uint64_t max, const char **res,
                size_t *out);

/* Gives back the buffers a large message left behind. */
void glW_deflatetrim(void);
/* }====== */

#endif
