/* The WebSocket object (green.websocket, RFC 6455): messages made of the
 * frames ws_frame.c reads from its stream, reassembled, inflated
 * (ws_deflate.c) and checked; pings answered; the closing handshake; and
 * sending.  A receive waits in turn with the stream's other receivers,
 * in a wait that gives the stack up (green.h), so that an idle connection
 * costs neither C stack nor read buffer.  The opening handshakes are
 * websocket.lua's. */
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "websocket.h"

#define MAX_MESSAGE (16 * 1024 * 1024)  /* opts.max_message's default */
#define CLOSE_WAIT 2000000000ull  /* ns close() waits for the peer's close */
#define LINGER 2000000000ull      /* ns a failed connection drains input */

enum { UV_SOCK = 1, UV_INFO, NUV = 2 };

/* A connection's state: open, our close frame sent (the peer's awaited),
 * closed (both sent, or failed: nothing more is sent). */
enum { OPEN, CLOSING, CLOSED };

/* What a receive is for: a message, or (close) the peer's close frame,
 * data messages being dropped meanwhile. */
enum { MODE_RECEIVE, MODE_CLOSE };

/* The stack of a receive, where its continuation finds what it needs. */
enum { SLOT_WS = 1, SLOT_ARG, SLOT_SOCK, SLOT_DEADLINE, SLOT_MODE };

typedef struct ws {
  glS_stream *s;            /* the stream (uservalue UV_SOCK keeps it) */
  glW_reader r;
  char *mbuf;               /* a data message in pieces, while it comes */
  size_t mlen, mcap;
  uint64_t maxmsg;          /* max_message */
  size_t minzip;            /* messages this long or longer are compressed */
  unsigned char mop;        /* the message's opcode, 0: none under way */
  unsigned char mz;         /* ... compressed (RSV1 on its first frame) */
  unsigned char client;     /* masks what it sends, wants frames unmasked */
  unsigned char wbits;      /* permessage-deflate agreed, with this window
                               for what we send (9..15); 0: not agreed */
  unsigned char state;      /* OPEN, CLOSING, CLOSED */
  unsigned char shut;       /* the stream is to close as the call that
                               closed the connection ends: 1 at once,
                               2 after draining what the peer sends */
  unsigned char ctllen;     /* a control frame's payload, while it comes */
  unsigned char ctl[125];
  unsigned short code;      /* why it closed: the peer's code, ours when
                               we failed it, 1006 when it just ended */
  unsigned char reasonlen;
  char reason[123];
} ws;

static const void *ws_mt;
static int textref = LUA_NOREF, binaryref = LUA_NOREF;  /* "text", "binary" */

static ws *checkws(lua_State *L, int arg) {
  return glL_checkudatap(L, arg, ws_mt, GLW_TYPE);
}

/* Pushes the stream of the websocket at index 1. */
static glS_stream *pushstream(lua_State *L, ws *w) {
  lua_getiuservalue(L, 1, UV_SOCK);
  return w->s;
}

/* {====== Checks ====== */

/* Whether n bytes at p are UTF-8 (RFC 3629): ASCII is checked here, the
 * rest by Lua's utf8.len, which rejects overlong forms, surrogates and
 * code points past U+10FFFF. */
static int utf8ref = LUA_NOREF;

static int isutf8(lua_State *L, const char *p, size_t n) {
  size_t i = 0;
  uint64_t v;
  int ok;
  for (; i + 8 <= n; i += 8) {
    memcpy(&v, p + i, 8);
    if (v & 0x8080808080808080ull) break;
  }
  for (; i < n; i++)
    if ((unsigned char)p[i] & 0x80) break;
  if (i == n) return 1;
  if (utf8ref == LUA_NOREF) {
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 0);
    lua_getfield(L, -1, "len");
    utf8ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, utf8ref);
  lua_pushlstring(L, p, n);
  lua_call(L, 1, 1);
  ok = !lua_isnil(L, -1);
  lua_pop(L, 1);
  return ok;
}

/* Whether a close frame may carry `code` (RFC 6455, 7.4; 1004, 1005,
 * 1006 and 1015 are never sent). */
static int validcode(lua_Integer code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}
/* }====== */

/* {====== Sending ====== */

static void setreason(ws *w, int code, const char *p, size_t n) {
  w->code = (unsigned short)code;
  if (n > sizeof w->reason) n = sizeof w->reason;
  memcpy(w->reason, p, n);
  w->reasonlen = (unsigned char)n;
}

/* How sendframe may go about it. */
enum {
  SF_TURN = 1,   /* the caller holds s's read turn, which an error raised
                    meanwhile (a kill, a Timeout) gives up before it goes
                    on */
  SF_NOWAIT = 2  /* send only what the socket takes at once */
};

/* Sends one frame on s, whose userdata is at index `si`: at once if the
 * socket takes it, else what is left through s:send (its turn among the
 * senders, its send timeout).  Returns NULL, or why it failed.  A frame
 * cut short leaves the connection unusable: it is to be closed (shut,
 * code 1006). */
static const char *sendframe(lua_State *L, ws *w, glS_stream *s, int si,
                             int op, int rsv, const char *p, size_t n,
                             int how) {
  static char err[64];
  const char *out, *e = NULL;
  size_t len;
  lua_Integer last;
  int sent;
  if (s->state != GLS_CONNECTED) return "closed";
  glW_outreset();
  if (glW_frame(op, rsv, w->client, p, n) != 0) return "not enough memory";
  out = glW_out(&len);
  sent = glS_trysend(s, out, len);
  if (sent >= 0 && (size_t)sent == len) {
    glW_outreset();
    return NULL;
  }
  if (sent < 0 || (how & SF_NOWAIT)) {
    glW_outreset();
    if (sent > 0) {
      setreason(w, 1006, "", 0);
      w->state = CLOSED;
      w->shut = 1;
    }
    return sent < 0 ? glS_errtext(s, sent, err, sizeof err) : "timeout";
  }
  lua_getfield(L, si, "send");
  lua_pushvalue(L, si);
  lua_pushlstring(L, out + sent, len - (size_t)sent);
  glW_outreset();
  if (lua_pcall(L, 2, 3, 0) != LUA_OK) {
    if ((how & SF_TURN) && s->state != GLS_CLOSED) {
      s->rbusy = 0;
      glS_afterread(s);
    }
    lua_error(L);
  }
  if (lua_isnil(L, -3)) {
    last = lua_tointeger(L, -1);
    snprintf(err, sizeof err, "%s", lua_tostring(L, -2));
    e = err;
    if (sent > 0 || last > 0) {  /* a part of the frame went out */
      setreason(w, 1006, "", 0);
      w->state = CLOSED;
      w->shut = 1;
    }
  }
  lua_pop(L, 3);
  return e;
}

/* Sends a close frame with `code` (0: none) and reason; the connection is
 * closing from then on. */
static const char *sendclose(lua_State *L, ws *w, glS_stream *s, int si,
                             int code, const char *reason, size_t n,
                             int how) {
  char p[125];
  if (w->state == OPEN) w->state = CLOSING;
  if (code == 0) return sendframe(L, w, s, si, GLW_CLOSE, 0, "", 0, how);
  if (n > sizeof p - 2) n = sizeof p - 2;
  p[0] = (char)(code >> 8);
  p[1] = (char)(code & 0xff);
  memcpy(p + 2, reason, n);
  return sendframe(L, w, s, si, GLW_CLOSE, 0, p, n + 2, how);
}
/* }====== */

/* {====== Receiving ====== */

/* nil, "closed", code, reason: what every call on a closed connection
 * returns.  Returns 4. */
static int closed(lua_State *L, ws *w) {
  lua_pushnil(L);
  lua_pushliteral(L, "closed");
  lua_pushinteger(L, w->code != 0 ? w->code : 1006);
  lua_pushlstring(L, w->reason, w->reasonlen);
  return 4;
}

/* Fails the connection (RFC 6455, 7.1.7): sends a close frame with `code`
 * and `why`, then the stream closes once the peer stopped sending (or
 * after LINGER), so that the peer reads the close frame rather than a
 * reset.  Returns closed()'s results. */
static int fail(lua_State *L, ws *w, glS_stream *s, int code,
                const char *why) {
  size_t n = strlen(why);
  if (w->state == OPEN) sendclose(L, w, s, SLOT_SOCK, code, why, n, SF_TURN);
  setreason(w, code, why, n);
  w->state = CLOSED;
  if (w->shut == 0) w->shut = 2;
  return closed(L, w);
}

/* The stream ended, or failed, without a close frame. */
static int lost(lua_State *L, ws *w, glS_stream *s) {
  char buf[64];
  const char *why = s->rerr ? glS_errtext(s, s->rerr, buf, sizeof buf) : "";
  setreason(w, 1006, why, strlen(why));
  w->state = CLOSED;
  w->shut = 1;
  return closed(L, w);
}

static void freemsg(ws *w) {
  free(w->mbuf);
  w->mbuf = NULL;
  w->mlen = w->mcap = 0;
}

static int append(ws *w, const unsigned char *p, size_t n) {
  if (w->mcap - w->mlen < n) {
    size_t cap = w->mcap > 0 ? w->mcap : 1024;
    char *b;
    while (cap - w->mlen < n) cap *= 2;
    if ((b = realloc(w->mbuf, cap)) == NULL) return -1;
    w->mbuf = b;
    w->mcap = cap;
  }
  memcpy(w->mbuf + w->mlen, p, n);
  w->mlen += n;
  return 0;
}

/* Checks the header of a frame that begins (its first piece came); a bad
 * one fails the connection (its results are pushed: returns 4). */
static int begin(lua_State *L, ws *w, glS_stream *s) {
  glW_reader *r = &w->r;
  if (r->mask == w->client)
    return fail(L, w, s, 1002, w->client ? "masked frame" : "unmasked frame");
  if (r->rsv & ~(w->wbits ? GLW_RSV1 : 0))
    return fail(L, w, s, 1002, "reserved bits set");
  switch (r->opcode) {
    case GLW_TEXT:
    case GLW_BINARY:
      if (w->mop) return fail(L, w, s, 1002, "message in a message");
      w->mop = r->opcode;
      w->mz = (r->rsv & GLW_RSV1) != 0;
      break;
    case GLW_CONT:
      if (!w->mop) return fail(L, w, s, 1002, "continuation of nothing");
      if (r->rsv) return fail(L, w, s, 1002, "reserved bits set");
      break;
    case GLW_CLOSE:
    case GLW_PING:
    case GLW_PONG:
      if (r->rsv) return fail(L, w, s, 1002, "reserved bits set");
      w->ctllen = 0;
      return 0;
    default:
      return fail(L, w, s, 1002, "unknown opcode");
  }
  if (r->len > w->maxmsg || w->mlen > w->maxmsg - r->len)
    return fail(L, w, s, 1009, "message too big");
  return 0;
}

/* A whole data message, n bytes at p: pushes it and its kind (returns
 * 2), or drops it (a close waiting for the peer's: returns 0). */
static int deliver(lua_State *L, ws *w, glS_stream *s, int mode,
                   const char *p, size_t n) {
  int op = w->mop, z = w->mz, rc;
  w->mop = w->mz = 0;
  if (z) {
    rc = glW_inflate(p, n, w->maxmsg, &p, &n);
    if (rc == GLW_TOOBIG) return fail(L, w, s, 1009, "message too big");
    if (rc == GLW_BADDATA) return fail(L, w, s, 1007, "invalid compressed data");
    if (rc != 0) return fail(L, w, s, 1011, "not enough memory");
  }
  if (op == GLW_TEXT && !isutf8(L, p, n)) {
    if (z) glW_deflatetrim();
    return fail(L, w, s, 1007, "invalid utf-8");
  }
  if (mode == MODE_CLOSE) {
    if (z) glW_deflatetrim();
    return 0;
  }
  lua_pushlstring(L, p, n);
  if (z) glW_deflatetrim();
  lua_rawgeti(L, LUA_REGISTRYINDEX, op == GLW_TEXT ? textref : binaryref);
  return 2;
}

/* A whole control frame: answers a ping, ignores a pong, and for a close
 * frame answers with one of its own (unless ours went out already), then
 * the connection is closed (returns closed()'s 4 results). */
static int control(lua_State *L, ws *w, glS_stream *s) {
  const char *why;
  int code;
  size_t n = w->ctllen;
  if (w->r.opcode == GLW_PING) {
    if (w->state == OPEN)
      sendframe(L, w, s, SLOT_SOCK, GLW_PONG, 0, (const char *)w->ctl, n,
                SF_TURN);
    return w->state == CLOSED ? closed(L, w) : 0;
  }
  if (w->r.opcode == GLW_PONG) return 0;
  if (n == 1) return fail(L, w, s, 1002, "invalid close frame");
  code = n >= 2 ? (w->ctl[0] << 8 | w->ctl[1]) : 1005;
  why = (const char *)w->ctl + 2;
  if (n >= 2 && !validcode(code))
    return fail(L, w, s, 1002, "invalid close code");
  if (n > 2 && !isutf8(L, why, n - 2))
    return fail(L, w, s, 1007, "invalid utf-8");
  if (w->state == OPEN)  /* echoes the code (RFC 6455, 5.5.1) */
    sendclose(L, w, s, SLOT_SOCK, code == 1005 ? 0 : code, "", 0, SF_TURN);
  setreason(w, code, why, n >= 2 ? n - 2 : 0);
  w->state = CLOSED;
  w->shut = 1;
  return closed(L, w);
}

/* Reads frames from the buffer (the caller holds the read turn) until a
 * message is whole, or the connection closed: pushes the results and
 * returns their count; or returns 0 when more bytes are needed. */
static int step(lua_State *L, ws *w, glS_stream *s, int mode) {
  glW_piece pc;
  int n;
  for (;;) {
    if (w->state == CLOSED) return closed(L, w);
    switch (glW_read(&w->r, s, &pc)) {
      case GLW_PIECE: break;
      case GLW_MORE: return s->eof || s->rerr ? lost(L, w, s) : 0;
      case GLW_PROTO: return fail(L, w, s, 1002, "invalid frame");
      default: return fail(L, w, s, 1011, "not enough memory");
    }
    if (pc.first && (n = begin(L, w, s)) != 0) return n;
    if (w->r.opcode >= GLW_CLOSE) {  /* at most 125 bytes (wslay checks) */
      memcpy(w->ctl + w->ctllen, pc.data, pc.n);
      w->ctllen = (unsigned char)(w->ctllen + pc.n);
      if (pc.last && (n = control(L, w, s)) != 0) return n;
      continue;
    }
    if (pc.first && pc.last && w->r.fin && w->mlen == 0) {  /* whole */
      if ((n = deliver(L, w, s, mode, (const char *)pc.data, pc.n)) != 0)
        return n;
      continue;
    }
    if (append(w, pc.data, pc.n) != 0)
      return fail(L, w, s, 1011, "not enough memory");
    if (pc.last && w->r.fin) {
      n = deliver(L, w, s, mode, w->mbuf, w->mlen);
      freemsg(w);
      if (n != 0) return n;
    }
  }
}

/* Shuts the sending side (the peer reads our close frame, then the end),
 * then reads and drops what the peer still sends until it closes, fails
 * or LINGER passes (the HTTP server's lingering close, for a connection
 * we failed: closing while bytes come would reset it, and the peer could
 * lose the close frame).  The stream is at SLOT_SOCK. */
static void linger(lua_State *L, glS_stream *s) {
  uint64_t deadline = glL_deadline(LINGER);
  int rc;
  lua_getfield(L, SLOT_SOCK, "shutdown");
  lua_pushvalue(L, SLOT_SOCK);
  lua_pushliteral(L, "send");
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1);
  while (s->state == GLS_CONNECTED && !s->eof && !s->rerr) {
    glS_consume(s, glS_buffered(s));
    rc = glS_fill(s, 1, deadline);
    if (rc != GL_OK) {
      if (rc == GL_EINTR) {
        glS_close(s);
        gl_green_raise(L);
      }
      return;
    }
    glS_consume(s, glS_buffered(s));
    glS_readdone(s);
  }
}

/* Every receive and close ends here, with its n results pushed: gives
 * the read turn up (`held`), closes the stream if the connection closed
 * in this call, lets go of what an idle connection need not hold.  A
 * close returns true whatever happened. */
static int done(lua_State *L, ws *w, glS_stream *s, int mode, int n,
                int held) {
  if (s->state != GLS_CLOSED) {
    if (held) s->rbusy = 0;
    if (w->shut) {
      int shut = w->shut;
      w->shut = 0;
      glW_readerfree(&w->r);  /* its bytes go with the buffer */
      if (shut == 2) linger(L, s);
      glS_close(s);
    } else {
      glS_afterread(s);
    }
  }
  if (s->state == GLS_CLOSED && w->state != CLOSED) {
    if (w->code == 0) setreason(w, 1006, "", 0);
    w->state = CLOSED;
  }
  if (w->state == CLOSED) {
    glW_readerfree(&w->r);
    freemsg(w);
  } else {
    glW_readeridle(&w->r);
  }
  if (mode == MODE_CLOSE) {
    lua_pop(L, n);
    if (s->state != GLS_CLOSED) glS_close(s);
    if (w->code == 0) setreason(w, 1006, "", 0);
    w->state = CLOSED;
    lua_pushboolean(L, 1);
    return 1;
  }
  return n;
}

static int received(lua_State *L, int rc, gl_waiter *gw);

/* Waits for more bytes: the reader whose turn it is waits at the head of
 * the queue, with its place (seq), for a byte more than it has; one whose
 * turn it is not waits in line for its turn. */
static int waitmore(lua_State *L, glS_stream *s, uint64_t deadline,
                    int turn, int again, intptr_t seq) {
  gl_waiter *gw = gl_green_waiter(GL_WAIT_RECEIVE, s);
  uint64_t wait = glL_remaining(deadline);
  if (turn) glS_setneed(gw, GLS_RNUM, glS_buffered(s) + 1);
  else glS_setneed(gw, GLS_RANY, 1);
  if (again) {
    gw->n = seq;
    gl_waitq_link_first(&s->readq, gw);
    return gl_green_again(NULL, wait);
  }
  gw->n = ++s->rseq;  /* the order of receivers, for timeouts */
  return gl_green_wait(L, &s->readq, wait, received);
}

/* The receive loop, from where the receiver knows whether it is its turn
 * (it was woken for it: `again`, with its place `seq`). */
static int receiving(lua_State *L, ws *w, glS_stream *s, int mode,
                     uint64_t deadline, int turn, int again, intptr_t seq) {
  int n;
  for (;;) {
    if (turn) {
      s->rbusy = 1;
      n = step(L, w, s, mode);
      if (n > 0 || s->state == GLS_CLOSED) return done(L, w, s, mode, n, 1);
      s->rbusy = 0;
      if (glL_remaining(deadline) == 0) {
        glS_readnow(s);
        s->rbusy = 1;
        if ((n = step(L, w, s, mode)) == 0) n = glL_fail(L, "timeout");
        return done(L, w, s, mode, n, 1);
      }
      glS_startreading(s);
      if (s->rerr) continue;  /* step reports it */
      glW_readeridle(&w->r);
    }
    return waitmore(L, s, deadline, turn, again && turn, seq);
  }
}

/* What follows a receiver's wait (which may unwind, green.h). */
static int received(lua_State *L, int rc, gl_waiter *gw) {
  ws *w = lua_touserdata(L, SLOT_WS);
  glS_stream *s = lua_touserdata(L, SLOT_SOCK);
  uint64_t deadline = (uint64_t)lua_tointeger(L, SLOT_DEADLINE);
  int mode = (int)lua_tointeger(L, SLOT_MODE), n;
  if (s->state == GLS_CLOSED) {
    glL_raisepending(L, rc);
    return done(L, w, s, mode, closed(L, w), 0);
  }
  if (rc == GL_OK) {  /* our turn, handed over by glS_kick */
    s->rbusy = 0;
    return receiving(L, w, s, mode, deadline, 1, 1, gw->n);
  }
  if (rc == GL_EINTR) {
    glS_afterread(s);  /* the next reader may be served already */
    gl_green_raise(L);
  }
  if (!s->rbusy && (s->readq.head == NULL || s->readq.head->n >= gw->n)) {
    s->rbusy = 1;  /* it was our turn: what came may be enough */
    if ((n = step(L, w, s, mode)) == 0) n = glL_fail(L, "timeout");
    return done(L, w, s, mode, n, 1);
  }
  return done(L, w, s, mode, glL_fail(L, "timeout"), 0);
}

/* Sets up a receive's stack (SLOT_*) and starts it. */
static int startreceive(lua_State *L, ws *w, int mode, uint64_t timeout) {
  uint64_t deadline = glL_deadline(timeout);
  glS_stream *s;
  lua_settop(L, 2);
  s = pushstream(L, w);
  lua_pushinteger(L, (lua_Integer)deadline);
  lua_pushinteger(L, mode);
  if (s->state != GLS_CONNECTED) {
    if (w->code == 0) setreason(w, 1006, "", 0);
    w->state = CLOSED;
    return done(L, w, s, mode, closed(L, w), 0);
  }
  return receiving(L, w, s, mode, deadline,
                   s->readq.head == NULL && !s->rbusy, 0, 0);
}

/* ws:receive([timeout]) -> data, "text" | "binary" | nil, "timeout" |
 * nil, "closed", code, reason.  Waits for the next whole message
 * (fragments reassembled, inflated, text checked for UTF-8), answering
 * pings meanwhile.  After a close frame, or a failure (the connection is
 * then closed with 1002, 1007, 1009 or 1011 and the reason), or the end
 * of the stream (1006), every receive returns nil, "closed", code,
 * reason.  Timing out leaves the connection as it was. */
static int ws_receive(lua_State *L) {
  ws *w = checkws(L, 1);
  uint64_t timeout = glL_opttimeout(L, 2);
  if (w->state == CLOSED) return closed(L, w);
  return startreceive(L, w, MODE_RECEIVE, timeout);
}
/* }====== */

/* {====== Methods ====== */

/* Compresses the n bytes at *p in place of them when permessage-deflate
 * was agreed and they are long enough; returns the reserved bits of the
 * frame.  The bytes are deflate's until glW_deflatetrim. */
static int compress(lua_State *L, ws *w, const char **p, size_t *n) {
  const char *z;
  if (!w->wbits || *n < w->minzip) return 0;
  if ((z = glW_deflate(*p, *n, w->wbits, n)) == NULL)
    luaL_error(L, "not enough memory");
  *p = z;
  return GLW_RSV1;
}

/* ws:send(data, [kind="text"]) -> true | nil, err.  Sends data as one
 * message ("text" or "binary"), compressed when permessage-deflate was
 * agreed and data is long enough.  Waits while the peer does not read
 * (the socket's send timeout bounds the wait): what is not yet sent is
 * never buffered beyond the socket's own buffers. */
static int ws_send(lua_State *L) {
  static const char *const kinds[] = {"text", "binary", NULL};
  ws *w = checkws(L, 1);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n), *err;
  int op = luaL_checkoption(L, 3, "text", kinds) == 0 ? GLW_TEXT : GLW_BINARY;
  int rsv = 0;
  glS_stream *s;
  lua_settop(L, 3);
  s = pushstream(L, w);
  if (w->state != OPEN || s->state != GLS_CONNECTED)
    return glL_fail(L, "closed");
  rsv = compress(L, w, &p, &n);
  err = sendframe(L, w, s, 4, op, rsv, p, n, 0);
  if (rsv) glW_deflatetrim();
  if (w->shut) {  /* a frame cut short */
    w->shut = 0;
    glW_readerfree(&w->r);
    glS_close(s);
  }
  if (err != NULL) return glL_fail(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* ws:trysend(data, [kind="text"]) -> true | false | nil, err.  Sends
 * data as one message only if the socket can take it now, without
 * waiting: true when it went out (what the kernel did not take at once
 * follows in the background, and later sends wait for it); false when
 * nothing was sent, because another send is under way or the peer does
 * not read fast enough.  A fan-out writes to each client this way, and
 * queues for a writer of the client's own only what does not go at once
 * (scripts/examples/webchat.lua). */
static int ws_trysend(lua_State *L) {
  static const char *const kinds[] = {"text", "binary", NULL};
  ws *w = checkws(L, 1);
  size_t n, len;
  const char *p = luaL_checklstring(L, 2, &n), *out;
  int op = luaL_checkoption(L, 3, "text", kinds) == 0 ? GLW_TEXT : GLW_BINARY;
  int rsv = 0, sent, e;
  glS_stream *s = w->s;
  char buf[64];
  if (w->state != OPEN || s->state != GLS_CONNECTED)
    return glL_fail(L, "closed");
  if (s->werr) return glL_fail(L, glS_errtext(s, s->werr, buf, sizeof buf));
  if (s->tls != NULL || s->wbusy || s->h->wbusy || s->writeq.head != NULL) {
    lua_pushboolean(L, 0);  /* TLS writes park: left to ws:send */
    return 1;
  }
  rsv = compress(L, w, &p, &n);
  glW_outreset();
  e = glW_frame(op, rsv, w->client, p, n);
  if (rsv) glW_deflatetrim();
  if (e != 0) return luaL_error(L, "not enough memory");
  out = glW_out(&len);
  sent = glS_trysend(s, out, len);
  if (sent <= 0 || (size_t)sent == len) {
    glW_outreset();
    if (sent < 0) return glL_fail(L, glS_errtext(s, sent, buf, sizeof buf));
    lua_pushboolean(L, sent > 0);
    return 1;
  }
  lua_settop(L, 3);
  lua_getiuservalue(L, 1, UV_SOCK);
  lua_pushlstring(L, out + sent, len - (size_t)sent);
  glW_outreset();
  if ((e = glS_writebehind(s, lua_tostring(L, 5), len - (size_t)sent)) < 0) {
    setreason(w, 1006, "", 0);  /* the frame was cut */
    w->state = CLOSED;
    glW_readerfree(&w->r);
    glS_close(s);
    return glL_fail(L, glS_errtext(s, e, buf, sizeof buf));
  }
  lua_setiuservalue(L, 4, 1);  /* the stream's anchor, as s:send's */
  s->anchored = 1;
  lua_pushboolean(L, 1);
  return 1;
}

/* ws:ping([data]) -> true | nil, err: sends a ping (data: at most 125
 * bytes); its pong is dropped by receive. */
static int ws_ping(lua_State *L) {
  ws *w = checkws(L, 1);
  size_t n;
  const char *p = luaL_optlstring(L, 2, "", &n), *err;
  glS_stream *s;
  luaL_argcheck(L, n <= 125, 2, "longer than 125 bytes");
  lua_settop(L, 2);
  s = pushstream(L, w);
  if (w->state != OPEN || s->state != GLS_CONNECTED)
    return glL_fail(L, "closed");
  if ((err = sendframe(L, w, s, 3, GLW_PING, 0, p, n, 0)) != NULL) {
    if (w->shut) {
      w->shut = 0;
      glS_close(s);
    }
    return glL_fail(L, err);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* ws:close([code=1000], [reason], [timeout=2]) -> true.  Sends a close
 * frame (code and reason, at most 123 bytes of UTF-8), waits up to
 * `timeout` seconds for the peer's (dropping the messages that come
 * first), then closes the socket.  With timeout 0 the close frame goes
 * only if the socket takes it at once, and nothing is awaited (a peer
 * that does not read). */
static int ws_close(lua_State *L) {
  ws *w = checkws(L, 1);
  lua_Integer code = luaL_optinteger(L, 2, 1000);
  size_t n;
  const char *reason = luaL_optlstring(L, 3, "", &n);
  uint64_t timeout = lua_isnoneornil(L, 4) ? CLOSE_WAIT : glL_opttimeout(L, 4);
  glS_stream *s = w->s;
  luaL_argcheck(L, validcode(code), 2, "invalid close code");
  luaL_argcheck(L, n <= 123, 3, "longer than 123 bytes");
  luaL_argcheck(L, isutf8(L, reason, n), 3, "not UTF-8");
  if (w->state == OPEN && s->state == GLS_CONNECTED) {
    lua_settop(L, 4);
    pushstream(L, w);
    sendclose(L, w, s, 5, (int)code, reason, n, timeout == 0 ? SF_NOWAIT : 0);
    if (w->state == CLOSING) setreason(w, (int)code, reason, n);
  }
  if (w->state != CLOSING || timeout == 0 || s->state != GLS_CONNECTED) {
    if (w->code == 0) setreason(w, 1006, "", 0);
    w->state = CLOSED;
    glW_readerfree(&w->r);
    freemsg(w);
    glS_close(s);
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_settop(L, 1);
  lua_pushnil(L);
  return startreceive(L, w, MODE_CLOSE, timeout);
}

/* ws:socket() -> the socket under it, for its options and addresses
 * (setoption, getpeername); reading or writing it would break the
 * framing. */
static int ws_socket(lua_State *L) {
  checkws(L, 1);
  lua_getiuservalue(L, 1, UV_SOCK);
  return 1;
}

/* ws:protocol() -> the subprotocol agreed, or nil;
 * ws:extensions() -> the extensions agreed (the header's value), or nil.
 * (Methods rather than fields: the methods' lookups stay a plain table's,
 * which every message pays for.) */
static int infofield(lua_State *L, const char *name) {
  checkws(L, 1);
  if (lua_getiuservalue(L, 1, UV_INFO) != LUA_TTABLE) return 0;
  lua_getfield(L, -1, name);
  return 1;
}

static int ws_protocol(lua_State *L) { return infofield(L, "protocol"); }
static int ws_extensions(lua_State *L) { return infofield(L, "extensions"); }

static int ws_gc(lua_State *L) {
  ws *w = checkws(L, 1);
  glW_readerfree(&w->r);
  freemsg(w);
  return 0;
}

/* `local ws <close> = ...`: closes it (1011 when an error goes by). */
static int ws_toclose(lua_State *L) {
  int code = lua_isnil(L, 2) ? 1000 : 1011;
  lua_settop(L, 1);
  lua_pushcfunction(L, ws_close);
  lua_insert(L, 1);
  lua_pushinteger(L, code);
  lua_call(L, 2, 0);
  return 0;
}

static int ws_tostring(lua_State *L) {
  static const char *const states[] = {"open", "closing", "closed"};
  ws *w = checkws(L, 1);
  lua_pushfstring(L, "%s (%s): %p", GLW_TYPE,
                  states[w->s->state == GLS_CLOSED ? CLOSED : w->state],
                  (void *)w);
  return 1;
}

/* core.wsnew(sock, client, wbits, max_message, min_compress, info) -> ws:
 * the WebSocket on a socket whose opening handshake is done (the bytes
 * after it wait in the socket).  client: it masks what it sends; wbits:
 * permessage-deflate was agreed, and our window (9..15), or 0; info: the
 * table behind ws:protocol() and ws:extensions(). */
static int core_wsnew(lua_State *L) {
  glS_stream *s = glS_checkstream(L, 1);
  lua_Integer wbits = luaL_optinteger(L, 3, 0);
  lua_Number max = luaL_optnumber(L, 4, MAX_MESSAGE);
  lua_Integer minzip = luaL_optinteger(L, 5, 0);
  ws *w;
  luaL_argcheck(L, wbits == 0 || (wbits >= 9 && wbits <= 15), 3,
                "window bits out of range");
  luaL_argcheck(L, max >= 0, 4, "negative size");
  w = lua_newuserdatauv(L, sizeof *w, NUV);
  memset(w, 0, sizeof *w);
  w->s = s;
  w->client = (unsigned char)lua_toboolean(L, 2);
  w->wbits = (unsigned char)wbits;
  w->maxmsg = max >= 1.8e19 ? UINT64_MAX : (uint64_t)max;
  w->minzip = minzip < 0 ? 0 : (size_t)minzip;
  w->state = OPEN;
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, UV_SOCK);
  if (lua_istable(L, 6)) {
    lua_pushvalue(L, 6);
    lua_setiuservalue(L, -2, UV_INFO);
  }
  luaL_setmetatable(L, GLW_TYPE);
  return 1;
}

static const luaL_Reg ws_methods[] = {
  {"receive", ws_receive},
  {"send", ws_send},
  {"trysend", ws_trysend},
  {"ping", ws_ping},
  {"close", ws_close},
  {"socket", ws_socket},
  {"protocol", ws_protocol},
  {"extensions", ws_extensions},
  {NULL, NULL}
};

static const luaL_Reg ws_meta[] = {
  {"__gc", ws_gc},
  {"__close", ws_toclose},
  {"__tostring", ws_tostring},
  {NULL, NULL}
};
/* }====== */

int luaopen_green_websocket(lua_State *L);
int luaopen_green_websocket(lua_State *L) {
  lua_pushliteral(L, "text");
  textref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushliteral(L, "binary");
  binaryref = luaL_ref(L, LUA_REGISTRYINDEX);
  luaL_newmetatable(L, GLW_TYPE);
  luaL_setfuncs(L, ws_meta, 0);
  luaL_newlib(L, ws_methods);
  lua_setfield(L, -2, "__index");
  glL_setmtkey(L, &ws_mt);
  lua_pop(L, 1);
  glH_pushcore(L);
  lua_pushcfunction(L, core_wsnew);
  lua_setfield(L, -2, "wsnew");
  lua_pop(L, 1);
  return 0;
}
