/* permessage-deflate (RFC 7692) with zlib.  The handshakes of
 * websocket.lua agree on no context takeover in both directions, so each
 * message is compressed and inflated on its own: one deflate stream per
 * window size and one inflate stream serve every connection, reset
 * before each message, and a connection keeps no compression state. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "websocket.h"

#define KEEP (256 * 1024)  /* a larger result buffer is freed afterwards */

/* Messages up to SMALL bytes are compressed by a stream with a smaller
 * hash table (memLevel 6, 16 KiB): deflateReset clears the table, and the
 * default one (memLevel 8) is 64 KiB, which costs more than compressing a
 * chat message.  (Less would cut a message into several blocks, each
 * with trees to build.) */
#define SMALL 4096

/* The compression level: 1, the fastest, as gorilla/websocket's default
 * (level 6 spends several times as long on repetitive data, for a few
 * per cent). */
#define LEVEL 1

static z_stream zd[16][2];     /* deflate streams by window bits (9..15),
                                  for small messages and the others */
static unsigned char zdon[16][2];
static z_stream zi;
static int zion;
static unsigned char *buf;  /* the last result */
static size_t cap;

static int grow(size_t need) {
  size_t n = cap > 0 ? cap : 4096;
  unsigned char *p;
  if (need <= cap) return 0;
  while (n < need) {
    if (n > SIZE_MAX / 2) return -1;
    n *= 2;
  }
  if ((p = realloc(buf, n)) == NULL) return -1;
  buf = p;
  cap = n;
  return 0;
}

void glW_deflatetrim(void) {
  if (cap > KEEP) {
    free(buf);
    buf = NULL;
    cap = 0;
  }
}

/* Compressing: deflate all of it and flush with Z_SYNC_FLUSH, whose
 * output ends with an empty stored block, 00 00 ff ff, which the sender
 * removes (RFC 7692, 7.2.1). */
const char *glW_deflate(const char *p, size_t n, int wbits, size_t *out) {
  z_stream *z;
  size_t have = 0;
  int rc, big = n > SMALL;
  if (wbits < 9 || wbits > 15) wbits = 15;
  z = &zd[wbits][big];
  if (!zdon[wbits][big]) {
    memset(z, 0, sizeof *z);
    if (deflateInit2(z, LEVEL, Z_DEFLATED, -wbits,
                     big ? 8 : 6, Z_DEFAULT_STRATEGY) != Z_OK)
      return NULL;
    zdon[wbits][big] = 1;
  } else {
    deflateReset(z);
  }
  if (grow(deflateBound(z, n) + 16) != 0) return NULL;
  z->next_in = (Bytef *)p;
  for (;;) {  /* in steps that fit zlib's counts */
    size_t left = n - (size_t)((const char *)z->next_in - p);
    size_t chunk = left > (1u << 30) ? (1u << 30) : left, room;
    int flush = chunk == left ? Z_SYNC_FLUSH : Z_NO_FLUSH;
    if (cap - have < 64 && grow(cap + 1) != 0) return NULL;
    room = cap - have;
    z->avail_in = (uInt)chunk;
    z->next_out = buf + have;
    z->avail_out = room > (1u << 30) ? (1u << 30) : (uInt)room;
    rc = deflate(z, flush);
    have = (size_t)(z->next_out - buf);
    if (rc != Z_OK && rc != Z_BUF_ERROR) return NULL;
    if (flush == Z_SYNC_FLUSH && z->avail_in == 0 && z->avail_out > 0) break;
  }
  GL_ASSERT(have >= 4 && memcmp(buf + have - 4, "\0\0\377\377", 4) == 0);
  *out = have - 4;
  return (const char *)buf;
}

/* Feeds n bytes at `in` to the inflate stream, adding what comes out to
 * the result (*have bytes so far, at most limit): returns 0 once all is
 * in and out, 1 at the end of a final block (the rest is ignored), or an
 * error. */
static int inflatesome(const unsigned char *in, size_t n, size_t limit,
                       size_t *have) {
  for (;;) {
    size_t chunk = n > (1u << 30) ? (1u << 30) : n, room;
    int rc;
    if (*have == cap && grow(cap + 1) != 0) return GLW_ZNOMEM;
    room = (cap < limit ? cap : limit) - *have;
    if (room == 0) return GLW_TOOBIG;
    if (room > (1u << 30)) room = 1u << 30;
    zi.next_in = (Bytef *)in;
    zi.avail_in = (uInt)chunk;
    zi.next_out = buf + *have;
    zi.avail_out = (uInt)room;
    rc = inflate(&zi, Z_SYNC_FLUSH);
    in += chunk - zi.avail_in;
    n -= chunk - zi.avail_in;
    *have = (size_t)(zi.next_out - buf);
    if (rc == Z_STREAM_END) return 1;
    if (rc == Z_MEM_ERROR) return GLW_ZNOMEM;
    if (rc != Z_OK && rc != Z_BUF_ERROR) return GLW_BADDATA;
    if (zi.avail_out > 0) {
      if (n == 0) return 0;
      if (rc == Z_BUF_ERROR) return GLW_BADDATA;  /* no way on */
    }
  }
}

/* Inflating: the payload, then the 00 00 ff ff the sender removed; more
 * than `max` bytes out is too big. */
int glW_inflate(const char *p, size_t n, uint64_t max, const char **res,
                size_t *out) {
  static const unsigned char tail[4] = {0, 0, 0xff, 0xff};
  size_t have = 0, limit = max >= SIZE_MAX / 2 ? SIZE_MAX / 2 : max + 1;
  int rc;
  if (!zion) {
    memset(&zi, 0, sizeof zi);
    if (inflateInit2(&zi, -15) != Z_OK) return GLW_ZNOMEM;
    zion = 1;
  } else {
    inflateReset(&zi);
  }
  rc = inflatesome((const unsigned char *)p, n, limit, &have);
  if (rc == 0) rc = inflatesome(tail, sizeof tail, limit, &have);
  if (rc == 1) rc = 0;
  if (rc == 0 && have > max) rc = GLW_TOOBIG;
  if (rc != 0) return rc;
  *res = (const char *)buf;
  *out = have;
  return 0;
}
