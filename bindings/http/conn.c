/* An HTTP connection: a stream socket and the parser (parser.c) that
 * reads its messages straight from the stream's read buffer, in turn with
 * the stream's other receivers.  Its waits give the stack up (green.h), so
 * that a server's idle keep-alive connection costs neither a read buffer
 * nor C stack.  The server's timeouts (header_timeout, keepalive_timeout)
 * are kept here; the client gives each call its own. */
#include <stdalign.h>
#include <string.h>

#include "http.h"
#include "net/stream.h"

typedef struct conn {
  uint64_t idle, header;  /* keepalive_timeout, header_timeout (ns) */
  uint64_t due;           /* when the wait in progress ends (clock ns) */
  unsigned char dueset;   /* due holds for the head being read */
  unsigned char waitidle; /* ... and is the keep-alive one: no byte yet */
  unsigned char fixed;    /* ... and was given by the caller */
  unsigned char parked;   /* parked waiting for a request, idle */
  unsigned char nobody;   /* client: the response answers HEAD */
  unsigned char stopping; /* server: an idle connection closes at once */
  unsigned char seen;     /* a byte of the head being read came */
} conn;

/* The parser lives right after the conn, suitably aligned. */
#define CONN_SIZE ((sizeof(conn) + alignof(max_align_t) - 1) & \
                   ~(alignof(max_align_t) - 1))
#define PARSER(c) ((glH_parser *)((char *)(c) + CONN_SIZE))

static const void *conn_mt;

static conn *checkconn(lua_State *L, int arg) {
  return glL_checkudatap(L, arg, conn_mt, GLH_CONN_TYPE);
}

glH_parser *glH_connparser(lua_State *L, int idx) {
  conn *c = glL_testudatap(L, idx, conn_mt);
  return c != NULL ? PARSER(c) : NULL;
}

/* The stream of the connection at index 1, pushed. */
static glS_stream *pushstream(lua_State *L) {
  glS_stream *s;
  lua_getiuservalue(L, 1, GLH_UV_SOCK);
  s = glS_teststream(L, -1);
  if (s == NULL) luaL_error(L, "connection without a stream");
  return s;
}

static int failerr(lua_State *L, int err) {
  char buf[128];
  return glL_fail(L, glS_strerror(err, buf, sizeof buf));
}

/* The clock deadline of a green.now() time at index i (seconds). */
static uint64_t checkdeadline(lua_State *L, int i) {
  lua_Number d = luaL_checknumber(L, i);
  luaL_argcheck(L, d == d, i, "deadline is not a number (NaN)");
  if (d <= 0) return 0;
  return d >= 1.8e10 ? UINT64_MAX - 1 : (uint64_t)(d * 1e9);
}

/* A deadline `timeout` ns after now (UINT64_MAX: none), and the ns left
 * until `due` at `now`: the loops below read the clock once per wait. */
static uint64_t after(uint64_t now, uint64_t timeout) {
  return timeout >= UINT64_MAX - now ? UINT64_MAX : now + timeout;
}

static uint64_t left(uint64_t due, uint64_t now) {
  return due == UINT64_MAX ? UINT64_MAX : due > now ? due - now : 0;
}

/* Parks until more bytes than are buffered come, in turn with the
 * stream's other receivers, for at most `wait` ns; then k runs (it may
 * unwind, green.h).  `again`: the caller is a continuation, which returns
 * this to wait once more (its C stack stays flat). */
static int waitmore(lua_State *L, glS_stream *s, uint64_t wait, int again,
                    gl_green_k k) {
  gl_waiter *w = gl_green_waiter(GL_WAIT_RECEIVE, s);
  glS_setneed(w, GLS_RNUM, glS_buffered(s) + 1);
  w->n = ++s->rseq;  /* the order of receivers, for timeouts */
  if (again) return gl_green_again(&s->readq, wait);
  return gl_green_wait(L, &s->readq, wait, k);
}

/* Whether it was the caller's turn when its wait timed out (else the
 * buffered bytes are someone else's). */
static int hadturn(glS_stream *s, gl_waiter *w) {
  return !(s->rbusy || (s->readq.head != NULL && s->readq.head->n < w->n));
}

/* {====== Heads ====== */

/* Completes the head from the buffer if it can (first draining a body
 * the handler left unread): pushes the results and returns their count,
 * or returns 0 to wait. */
static int headstep(lua_State *L, conn *c, glS_stream *s) {
  glH_parser *p = PARSER(c);
  size_t used;
  int n;
  if (glS_buffered(s) > 0) c->seen = 1;
  if (glH_phase(p) == GLH_BODY) {  /* drained, up to max_body */
    glH_skipbody(p);
    n = glH_parsebody(L, p, glS_bufdata(s), glS_buffered(s), s->eof, &used);
    glS_consume(s, used);
    if (n == 0) return s->rerr ? failerr(L, s->rerr) : 0;
    lua_pop(L, n);
    if (n != 1) return glL_fail(L, "closed");  /* the answer went out */
  }
  n = glH_parsehead(L, p, glS_bufdata(s), glS_buffered(s), &used,
                    c->nobody);
  if (n == 1) {
    glS_consume(s, used);
    c->dueset = 0;
    return 1;
  }
  if (n != 0) return n;
  if (s->rerr) return failerr(L, s->rerr);
  if (s->eof) return glL_fail(L, "closed");
  return 0;
}

/* Whether nothing of a request came yet. */
static int isidle(conn *c, glS_stream *s) {
  return glS_buffered(s) == 0 && glH_phase(PARSER(c)) != GLH_BODY;
}

/* The deadline of the head being read: keepalive_timeout while nothing
 * of it came, then header_timeout from the first byte (or from the
 * accept, set by the constructor). */
static uint64_t headdue(conn *c, glS_stream *s, uint64_t now) {
  int idle = isidle(c, s);
  if (c->fixed) return c->due;
  if (!c->dueset || (c->waitidle && !idle)) {
    c->waitidle = (unsigned char)idle;
    c->due = after(now, idle ? c->idle : c->header);
    c->dueset = 1;
  }
  return c->due;
}

/* A head that did not come in time: 408 once some of it came, else just
 * "timeout" (an idle keep-alive connection, or a client's deadline). */
static int headlate(lua_State *L, conn *c, glS_stream *s) {
  if (c->fixed || isidle(c, s)) return glL_fail(L, "timeout");
  lua_pushnil(L);
  lua_pushinteger(L, 408);
  lua_pushliteral(L, "request timeout");
  return 3;
}

/* Completes the head if it can, with the read turn when `turn`: returns
 * how many values it pushed, or 0 to wait *wait ns (until the head's
 * deadline) for more bytes. */
static int headtry(lua_State *L, conn *c, glS_stream *s, int turn,
                   uint64_t *wait) {
  uint64_t due, now;
  int n;
  for (;;) {
    if (turn && (n = headstep(L, c, s)) > 0) break;
    now = gl_clock_now();
    due = headdue(c, s, now);
    if (turn) {
      if (c->stopping && isidle(c, s)) {
        n = glL_fail(L, "closed");
        break;
      }
      if (due <= now) {
        glS_readnow(s);
        if ((n = headstep(L, c, s)) == 0) n = headlate(L, c, s);
        break;
      }
      glS_startreading(s);
      if (s->rerr) continue;  /* headstep reports it */
    }
    c->parked = (unsigned char)isidle(c, s);
    *wait = left(due, now);
    return 0;
  }
  glS_afterread(s);
  return n;
}

/* After a wait for bytes of a head (rc, w: the wait's): as headtry. */
static int headwoke(lua_State *L, conn *c, glS_stream *s, int rc,
                    gl_waiter *w, uint64_t *wait) {
  int n;
  c->parked = 0;
  if (s->state == GLS_CLOSED) {
    glL_raisepending(L, rc);
    return glL_fail(L, "closed");
  }
  if (rc == GL_OK) {  /* our turn, handed over by glS_kick */
    s->rbusy = 0;
    return headtry(L, c, s, 1, wait);
  }
  if (rc == GL_EINTR) {
    glS_afterread(s);  /* the next reader may be served already */
    gl_green_raise(L);
  }
  if (hadturn(s, w) && (n = headstep(L, c, s)) > 0) {
    glS_afterread(s);
    return n;
  }
  glS_afterread(s);
  return headlate(L, c, s);
}

/* Starts reading a head: 0 or the results of a closed stream. */
static int headstart(lua_State *L, conn *c, glS_stream *s, int *turn) {
  *turn = s->readq.head == NULL && !s->rbusy;
  if (glH_phase(PARSER(c)) != GLH_HEAD) c->seen = 0;  /* a new message */
  if (s->state != GLS_CONNECTED) return glL_fail(L, "closed");
  return 0;
}

/* What follows the wait of readhead (which may unwind, green.h). */
static int headk(lua_State *L, int rc, gl_waiter *w) {
  conn *c = lua_touserdata(L, 1);        /* both checked by readhead */
  glS_stream *s = lua_touserdata(L, 5);
  uint64_t wait;
  int n = headwoke(L, c, s, rc, w, &wait);
  return n > 0 ? n : waitmore(L, s, wait, 1, headk);
}

/* c:readhead([stopping], [deadline], [nobody]) -> head | nil, status,
 * message | nil, err.  Reads the next message's head from the stream,
 * first draining a body the last message left unread.  A server's
 * connection waits keepalive_timeout for the first byte of a request
 * (not at all when `stopping`) and header_timeout for the rest (from the
 * accept for the first); `deadline` (a green.now() time) replaces both.
 * Returns the head (a request table; for a client, {status, reason,
 * version, headers}, without a body to come when `nobody`: it asked with
 * HEAD); nil, status, message for a bad message or a head that came too
 * slowly (408), to be answered with that status; or nil, "closed",
 * "timeout" or another error. */
static int conn_readhead(lua_State *L) {
  conn *c = checkconn(L, 1);
  glS_stream *s;
  uint64_t wait;
  int n, turn;
  c->stopping = (unsigned char)lua_toboolean(L, 2);
  c->fixed = !lua_isnoneornil(L, 3);
  if (c->fixed) c->due = checkdeadline(L, 3);
  c->nobody = (unsigned char)lua_toboolean(L, 4);
  lua_settop(L, 4);
  s = pushstream(L);
  if ((n = headstart(L, c, s, &turn)) != 0) return n;
  n = headtry(L, c, s, turn, &wait);
  return n > 0 ? n : waitmore(L, s, wait, 0, headk);
}
/* }====== */

/* {====== Bodies ====== */

static int bodystep(lua_State *L, conn *c, glS_stream *s) {
  size_t used;
  int n = glH_parsebody(L, PARSER(c), glS_bufdata(s), glS_buffered(s),
                        s->eof, &used);
  glS_consume(s, used);
  if (n != 0) return n;
  if (s->rerr) return failerr(L, s->rerr);
  return 0;
}

static int bodyk(lua_State *L, int rc, gl_waiter *w);

/* Each wait for body bytes lasts until the caller's deadline, or
 * header_timeout (a body may take long, but not stall). */
static int bodyloop(lua_State *L, conn *c, glS_stream *s, int turn,
                    int again) {
  uint64_t due, now;
  int n;
  for (;;) {
    if (turn && (n = bodystep(L, c, s)) > 0) break;
    now = gl_clock_now();
    due = c->fixed ? c->due : after(now, c->header);
    if (turn) {
      if (due <= now) {
        glS_readnow(s);
        if ((n = bodystep(L, c, s)) == 0) n = glL_fail(L, "timeout");
        break;
      }
      glS_startreading(s);
      if (s->rerr) continue;
    }
    return waitmore(L, s, left(due, now), again, bodyk);
  }
  glS_afterread(s);
  return n;
}

static int bodyk(lua_State *L, int rc, gl_waiter *w) {
  conn *c = lua_touserdata(L, 1);        /* both checked by readbody */
  glS_stream *s = lua_touserdata(L, 3);
  int n;
  if (s->state == GLS_CLOSED) {
    glL_raisepending(L, rc);
    return glL_fail(L, "closed");
  }
  if (rc == GL_OK) {
    s->rbusy = 0;
    return bodyloop(L, c, s, 1, 1);
  }
  if (rc == GL_EINTR) {
    glS_afterread(s);
    gl_green_raise(L);
  }
  n = hadturn(s, w) ? bodystep(L, c, s) : 0;
  glS_afterread(s);
  return n > 0 ? n : glL_fail(L, "timeout");
}

/* c:readbody([deadline]) -> body | nil, status, message | nil, err.  Reads
 * the rest of the body of the message whose head was read: the whole
 * body (a string), or nil, 413, message past max_body, nil, 400, message
 * for a bad chunk, nil, err when the stream fails ("closed", "timeout").
 * Without `deadline` (a green.now() time), each wait for more bytes
 * lasts up to header_timeout. */
static int conn_readbody(lua_State *L) {
  conn *c = checkconn(L, 1);
  glS_stream *s;
  c->fixed = !lua_isnoneornil(L, 2);
  if (c->fixed) c->due = checkdeadline(L, 2);
  lua_settop(L, 2);
  s = pushstream(L);
  if (glH_phase(PARSER(c)) == GLH_DONE) return bodystep(L, c, s);
  if (s->state != GLS_CONNECTED) return glL_fail(L, "closed");
  return bodyloop(L, c, s, s->readq.head == NULL && !s->rbusy, 0);
}
/* }====== */

/* {====== Serving ======
 * A server's connection runs its request loop here, in C: each head is
 * read straight from the stream's buffer, the handler runs in a
 * protected call that lets it wait anywhere (its waits, as those for the
 * next head, give the stack up through the continuations), and what it
 * returns goes out in one write straight from message.c's buffer.  Only
 * the rarer cases go back to Lua: a bad request, the response object
 * used or a body function returned, a handler error, a response the
 * socket did not take whole, a connection to close. */

/* The message handler of the exchange: a kill (GreenletExit) goes on as
 * it is; any other error comes back as {traceback}, to be logged. */
static int onerror(lua_State *L) {
  gl_green_pushexit(L);
  if (lua_rawequal(L, 1, -1)) {
    lua_pop(L, 1);
    return 1;
  }
  lua_pop(L, 1);
  luaL_traceback(L, L, luaL_tolstring(L, 1, NULL), 1);
  lua_createtable(L, 1, 0);
  lua_insert(L, -2);
  lua_rawseti(L, -2, 1);
  return 1;
}

/* The stack of serve: what it was given (conn, app, stopping), then the
 * stream, the message handler, the Lua side's state, the keys "close"
 * and "_used", and the request in progress, followed by what the
 * handler returned (status, headers, body). */
enum {
  SV_CONN = 1, SV_APP = 2, SV_STREAM = 4, SV_MSGH, SV_STATE, SV_CLOSE,
  SV_USED, SV_REQ, SV_STATUS, SV_HEADERS, SV_BODY
};

static int servek(lua_State *L, int rc, gl_waiter *w);

/* Returns what the handler returned to Lua, which ends the response: the
 * response object was used, or the body is not a string. */
static int tolua(lua_State *L) {
  lua_settop(L, SV_BODY);
  lua_pushliteral(L, "res");
  lua_rotate(L, SV_STATUS, 1);
  lua_pushvalue(L, SV_REQ);
  return 5;
}

/* After the handler's protected call ended with status st: sends the
 * response it returned, and returns how many results go back to Lua, or
 * -1 to go on with the next request.  The connection closes after the
 * response if the Lua side's state says `close` (set by the handler's
 * side, or by a server stopping meanwhile). */
static int served(lua_State *L, int st) {
  conn *c = lua_touserdata(L, SV_CONN);  /* both checked by serve */
  glS_stream *s = lua_touserdata(L, SV_STREAM);
  glH_reply r;
  size_t sent;
  int n, close;
  if (st != LUA_OK && st != LUA_YIELD) {  /* the error value on top */
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    lua_pushvalue(L, SV_REQ);
    return 3;
  }
  lua_pushvalue(L, SV_USED);  /* set by the response object's methods */
  if (lua_rawget(L, SV_REQ) != LUA_TNIL ||
      (!lua_isnil(L, SV_STATUS) && !lua_isinteger(L, SV_STATUS)) ||
      (!lua_isnil(L, SV_HEADERS) && !lua_istable(L, SV_HEADERS)))
    return tolua(L);
  lua_pushvalue(L, SV_CLOSE);
  lua_rawget(L, SV_STATE);
  close = lua_toboolean(L, -1);
  lua_pop(L, 2);
  n = glH_respond(L, PARSER(c),
                  lua_isnil(L, SV_STATUS) ? 200 : lua_tointeger(L, SV_STATUS),
                  SV_HEADERS, SV_BODY, close, &r);
  if (n == -1) return tolua(L);
  if (n == -2) {  /* as an error of the handler */
    lua_pushboolean(L, 0);
    luaL_traceback(L, L, r.err, 1);
    lua_createtable(L, 1, 0);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, SV_REQ);
    return 3;
  }
  n = glS_trysend(s, r.bytes, r.len);
  sent = n > 0 ? (size_t)n : 0;
  if (sent == r.len && !r.rest && r.keepalive) {  /* the common case */
    glH_releaseout();
    lua_settop(L, SV_REQ - 1);
    lua_pushnil(L);
    lua_setiuservalue(L, SV_CONN, GLH_UV_REQ);
    return -1;
  }
  lua_pushboolean(L, 1);
  lua_pushboolean(L, r.keepalive && n >= 0);
  if (sent < r.len && n >= 0) lua_pushlstring(L, r.bytes + sent, r.len - sent);
  else lua_pushnil(L);
  glH_releaseout();
  if (r.rest) lua_pushvalue(L, SV_BODY);
  else lua_pushnil(L);
  lua_pushvalue(L, SV_REQ);
  return 5;
}

static int servedk(lua_State *L, int st, lua_KContext ctx);

/* The request at the top (n == 1; else n results of readhead, returned
 * as they are) is the current one: runs the handler, in a protected call
 * that lets it wait anywhere, and answers. */
static int exchange(lua_State *L, int n) {
  if (n != 1) return n;
  lua_pushvalue(L, SV_REQ);
  lua_setiuservalue(L, SV_CONN, GLH_UV_REQ);
  lua_pushvalue(L, SV_APP);
  lua_pushvalue(L, SV_REQ);
  lua_pushvalue(L, SV_REQ);  /* the response object is the request */
  return served(L, lua_pcallk(L, 2, 3, SV_MSGH, 0, servedk));
}

/* Request after request, from the next head, until one needs Lua.
 * `again`: called by servek, which waits by returning (green.h). */
static int serveloop(lua_State *L, conn *c, glS_stream *s, int again) {
  uint64_t wait;
  int n, turn;
  for (;;) {
    if ((n = headstart(L, c, s, &turn)) != 0) return n;
    if ((n = headtry(L, c, s, turn, &wait)) == 0)
      return waitmore(L, s, wait, again, servek);
    if ((n = exchange(L, n)) >= 0) return n;
  }
}

/* What follows a wait for a head (which may unwind, green.h). */
static int servek(lua_State *L, int rc, gl_waiter *w) {
  conn *c = lua_touserdata(L, SV_CONN);  /* both checked by serve */
  glS_stream *s = lua_touserdata(L, SV_STREAM);
  uint64_t wait;
  int n = headwoke(L, c, s, rc, w, &wait);
  if (n == 0) return waitmore(L, s, wait, 1, servek);
  if ((n = exchange(L, n)) >= 0) return n;
  return serveloop(L, c, s, 1);
}

/* What follows a handler that waited with its stack given up. */
static int servedk(lua_State *L, int st, lua_KContext ctx) {
  int n = served(L, st);
  GL_UNUSED(ctx);
  if (n >= 0) return n;
  return serveloop(L, lua_touserdata(L, SV_CONN),
                   lua_touserdata(L, SV_STREAM), 0);
}

/* c:serve(app, [stopping]) -> true, keepalive, pending, rest, req |
 * "res", status, headers, body, req | false, err, req | nil, status,
 * message | nil, err.  A server connection's requests, one after the
 * other: reads each head (as readhead: `stopping` closes an idle
 * connection at once), calls app(req, res) and sends the response it
 * returns, and goes on with the next request while the connection stays
 * open, until a request needs Lua.  Returns true once a response went
 * out (`pending`: what the socket did not take at once and `rest`, a
 * large body, both for s:send; keepalive false when the connection is to
 * close after it, or the write failed); "res" and what app returned when
 * the response object was used or the body is not a string (Lua ends the
 * response); false and {traceback} (or the GreenletExit value of a kill)
 * when app, or the making of its response, raised; nil, status, message
 * for a bad request, to be answered with that status; nil, err when the
 * connection ended ("closed", "timeout").  The request (also the response
 * object) comes last; c:request() gives it until the next call. */
static int conn_serve(lua_State *L) {
  conn *c = checkconn(L, 1);
  glS_stream *s;
  c->stopping = (unsigned char)lua_toboolean(L, 3);
  c->fixed = c->nobody = 0;
  lua_settop(L, 3);
  s = pushstream(L);
  lua_pushcfunction(L, onerror);
  lua_getiuservalue(L, SV_CONN, GLH_UV_STATE);
  lua_pushliteral(L, "close");
  lua_pushliteral(L, "_used");
  lua_pushnil(L);
  lua_setiuservalue(L, SV_CONN, GLH_UV_REQ);
  return serveloop(L, c, s, 0);
}

/* c:request() -> the request being served (a table), or nil */
static int conn_request(lua_State *L) {
  checkconn(L, 1);
  lua_getiuservalue(L, 1, GLH_UV_REQ);
  return 1;
}
/* }====== */

/* {====== The rest ====== */

/* c:continue() -> true if the request expects 100-continue and the 100
 * was not sent yet (it counts as sent from then on) */
static int conn_continue(lua_State *L) {
  lua_pushboolean(L, glH_continue(PARSER(checkconn(L, 1))));
  return 1;
}

/* c:state() -> "head", "body", "done" or "failed" */
static int conn_state(lua_State *L) {
  static const char *const names[] = {"head", "body", "done", "failed"};
  lua_pushstring(L, names[glH_phase(PARSER(checkconn(L, 1)))]);
  return 1;
}

/* c:seen() -> true if a byte of the head being read (or last read)
 * came: a client retries a request on a reused connection only if the
 * server closed it before answering anything */
static int conn_seen(lua_State *L) {
  lua_pushboolean(L, checkconn(L, 1)->seen);
  return 1;
}

/* c:idle() -> true while the connection waits for a request of which
 * nothing came yet (a server stopping closes those) */
static int conn_idle(lua_State *L) {
  lua_pushboolean(L, checkconn(L, 1)->parked);
  return 1;
}

/* c:reusable() -> true if the last response was read whole, allows
 * another request, and the stream is connected and has seen neither
 * the end, an error, nor bytes nobody asked for (the stream reads on
 * between receives, so a peer's close is noticed without a system
 * call) */
static int conn_reusable(lua_State *L) {
  conn *c = checkconn(L, 1);
  glH_info info;
  glS_stream *s = pushstream(L);
  glH_getinfo(PARSER(c), &info);
  lua_pushboolean(L, glH_phase(PARSER(c)) == GLH_DONE && info.keepalive &&
                         !info.upgrade && s->state == GLS_CONNECTED &&
                         !s->eof && !s->rerr && !s->werr &&
                         glS_buffered(s) == 0);
  return 1;
}

static int conn_gc(lua_State *L) {
  glH_parserfree(PARSER(checkconn(L, 1)));
  return 0;
}

static int conn_tostring(lua_State *L) {
  lua_pushfstring(L, "%s: %p", GLH_CONN_TYPE, (void *)checkconn(L, 1));
  return 1;
}

static conn *newconn(lua_State *L, int request) {
  size_t maxheader;
  uint64_t maxbody;
  conn *c;
  glS_checkstream(L, 1);
  glH_checklimits(L, 2, &maxheader, &maxbody);
  c = lua_newuserdatauv(L, CONN_SIZE + glH_parsersize(), GLH_UV_REQ);
  memset(c, 0, sizeof *c);
  c->idle = c->header = UINT64_MAX;
  glH_parserinit(PARSER(c), request, maxheader, maxbody);
  luaL_setmetatable(L, GLH_CONN_TYPE);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, GLH_UV_SOCK);
  return c;
}

/* core.serverconn(sock, max_header, max_body, header_timeout,
 * keepalive_timeout, meta, state) -> c: a server's connection, whose
 * request tables (which are also the response objects) get `meta` as
 * metatable (what the requests of one connection share: their methods,
 * the peer's address), and whose state on the Lua side is `state`.  The
 * first head is due header_timeout from now. */
static int core_serverconn(lua_State *L) {
  uint64_t header = glL_opttimeout(L, 4), idle = glL_opttimeout(L, 5);
  conn *c = newconn(L, 1);
  c->header = header;
  c->idle = idle;
  c->due = glL_deadline(header);
  c->dueset = 1;
  lua_pushvalue(L, 6);
  lua_setiuservalue(L, -2, GLH_UV_META);
  lua_pushvalue(L, 7);
  lua_setiuservalue(L, -2, GLH_UV_STATE);
  return 1;
}

/* core.clientconn(sock, max_header, [max_body]) -> c: a client's
 * connection, reading responses */
static int core_clientconn(lua_State *L) {
  newconn(L, 0);
  return 1;
}

static const luaL_Reg conn_methods[] = {
  {"readhead", conn_readhead},
  {"readbody", conn_readbody},
  {"serve", conn_serve},
  {"request", conn_request},
  {"continue", conn_continue},
  {"state", conn_state},
  {"idle", conn_idle},
  {"seen", conn_seen},
  {"reusable", conn_reusable},
  {NULL, NULL}
};

static const luaL_Reg conn_meta[] = {
  {"__gc", conn_gc},
  {"__tostring", conn_tostring},
  {NULL, NULL}
};

static const luaL_Reg core_funcs[] = {
  {"serverconn", core_serverconn},
  {"clientconn", core_clientconn},
  {NULL, NULL}
};
/* }====== */

int luaopen_green_http_conn(lua_State *L);
int luaopen_green_http_conn(lua_State *L) {
  glL_newclass(L, GLH_CONN_TYPE, conn_methods, conn_meta);
  glL_setmtkey(L, &conn_mt);
  lua_pop(L, 1);
  glH_pushcore(L);
  luaL_setfuncs(L, core_funcs, 0);
  lua_pop(L, 1);
  return 0;
}
