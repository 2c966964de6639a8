/* The receive patterns of a stream: "*l" (a line), "*a" (until the
 * end), n (exactly n bytes) and receiveany (what is there, up to n), each
 * with an optional prefix and LuaSocket's partial result on failure.  A
 * receive waits in turn with the stream's other receivers (reader.c), as
 * a wait that gives its stack up while parked (green.h). */
#include "stream.h"

#include <string.h>

void glS_pushdata(lua_State *L, const char *p, size_t n, int prefix) {
  if (prefix) {
    lua_pushvalue(L, prefix);
    lua_pushlstring(L, p, n);
    lua_concat(L, 2);
  } else {
    lua_pushlstring(L, p, n);
  }
}

/* Pushes the line at p (n bytes, without its '\n') after the prefix:
 * without a final '\r', or, for LuaSocket, without any '\r'. */
static void pushline(lua_State *L, glS_stream *s, const char *p, size_t n,
                     int prefix) {
  luaL_Buffer b;
  size_t i;
  if (!s->luasocket) {
    glS_pushdata(L, p, n > 0 && p[n - 1] == '\r' ? n - 1 : n, prefix);
  } else if (memchr(p, '\r', n) == NULL) {
    glS_pushdata(L, p, n, prefix);
  } else {
    luaL_buffinit(L, &b);
    if (prefix) {
      lua_pushvalue(L, prefix);
      luaL_addvalue(&b);
    }
    for (i = 0; i < n; i++)
      if (p[i] != '\r') luaL_addchar(&b, p[i]);
    luaL_pushresult(&b);
  }
}

/* nil, msg, everything buffered (which is dropped): a receive that ended
 * early, as LuaSocket returns it (a partial line without its '\r's). */
static int failpartial(lua_State *L, glS_stream *s, const char *msg,
                       int kind, int prefix) {
  size_t have = glS_buffered(s);
  lua_pushnil(L);
  lua_pushstring(L, msg);
  if (kind == GLS_RLINE && s->luasocket)
    pushline(L, s, glS_bufdata(s), have, prefix);
  else
    glS_pushdata(L, glS_bufdata(s), have, prefix);
  glS_consume(s, have);
  return 3;
}

/* The count of a receive's results once its data is pushed: LuaSocket
 * adds two nils. */
static int done(lua_State *L, glS_stream *s) {
  if (!s->luasocket) return 1;
  lua_pushnil(L);
  lua_pushnil(L);
  return 3;
}

/* Completes a receive from the buffer if it can: pushes the results and
 * returns their count, or returns 0 (nothing pushed) if it must wait. */
static int take(lua_State *L, glS_stream *s, int kind, size_t n,
                int prefix) {
  const char *p = glS_bufdata(s), *nl;
  size_t have = glS_buffered(s), len;
  char buf[128];
  switch (kind) {
    case GLS_RLINE:
      nl = glS_findnl(s);
      if (nl != NULL && !glS_overlong(s, nl)) {
        len = (size_t)(nl - p);
        pushline(L, s, p, len, prefix);
        glS_consume(s, len + 1);
        return done(L, s);
      }
      if (glS_overlong(s, nl)) {
        /* The first max-line bytes as the partial result; the rest of
         * the line stays for the next receive (spec/socket_bounds_spec). */
        lua_pushnil(L);
        lua_pushliteral(L, "line too long");
        glS_pushdata(L, p, s->maxline, prefix);
        glS_consume(s, s->maxline);
        return 3;
      }
      break;
    case GLS_RNUM:
      if (have >= n) {
        glS_pushdata(L, p, n, prefix);
        glS_consume(s, n);
        return done(L, s);
      }
      break;
    case GLS_RANY:
      if (have > 0) {
        len = have < n ? have : n;
        glS_pushdata(L, p, len, prefix);
        glS_consume(s, len);
        return done(L, s);
      }
      break;
    default:
      /* "*a": what came before the end, "" if nothing (LuaSocket: a
       * failure, unless something came) */
      if (s->eof && (have > 0 || !s->luasocket)) {
        glS_pushdata(L, p, have, prefix);
        glS_consume(s, have);
        return done(L, s);
      }
      break;
  }
  if (s->rerr)
    return failpartial(L, s, glS_errtext(s, s->rerr, buf, sizeof buf),
                       kind, prefix);
  if (s->eof) return failpartial(L, s, "closed", kind, prefix);
  return 0;
}

static int received(lua_State *L, int rc, gl_waiter *w);

/* The receive loop, from where the receiver knows whether it is its
 * turn.  The deadline and `prefix` wait on top of L's stack, above the
 * arguments, for `received`; `again` says whether it runs there, as a
 * receiver that was given its turn (by glS_kick) and must wait once more
 * (it waits for any progress, under s->tidle): it keeps its turn, at the
 * head of the queue, with the place it had (seq). */
static int receiving(lua_State *L, glS_stream *s, int kind, size_t n,
                     int prefix, uint64_t deadline, int turn, int again,
                     intptr_t seq) {
  gl_waiter *w;
  uint64_t wait;
  int nres;
  for (;;) {
    wait = glS_nextwait(s, deadline);
    if (turn) {
      if ((nres = take(L, s, kind, n, prefix)) > 0) break;
      if (wait == 0) {
        glS_readnow(s);
        if ((nres = take(L, s, kind, n, prefix)) > 0) break;
        nres = failpartial(L, s, "timeout", kind, prefix);
        break;
      }
      glS_startreading(s);
      if (s->rerr) continue;  /* take reports it */
    }
    w = gl_green_waiter(GL_WAIT_RECEIVE, s);
    glS_setneed(w, s->tidle != UINT64_MAX ? kind + GLS_RPROGRESS : kind, n);
    if (again && turn) {
      w->n = seq;
      gl_waitq_link_first(&s->readq, w);
      return gl_green_again(NULL, wait);
    }
    w->n = ++s->rseq;  /* the order of receivers, for timeouts */
    if (again) return gl_green_again(&s->readq, wait);
    return gl_green_wait(L, &s->readq, wait, received);
  }
  glS_afterread(s);
  return nres;
}

/* What follows a receiver's wait (which may unwind, green.h). */
static int received(lua_State *L, int rc, gl_waiter *w) {
  glS_stream *s = glS_checkstream(L, 1);
  uint64_t deadline = (uint64_t)lua_tointeger(L, -2);
  int prefix = (int)lua_tointeger(L, -1), nres;
  if (s->state == GLS_CLOSED) {
    glL_raisepending(L, rc);
    return glL_fail(L, "closed");
  }
  if (rc == GL_OK) {  /* our turn, handed over by glS_kick */
    s->rbusy = 0;
    return receiving(L, s, glS_needkind(w), glS_needn(w), prefix, deadline,
                     1, 1, w->n);
  }
  if (rc == GL_EINTR) {
    glS_afterread(s);  /* the next reader may be served already */
    gl_green_raise(L);
  }
  if (s->rbusy || (s->readq.head != NULL && s->readq.head->n < w->n)) {
    lua_pushnil(L);  /* not our turn: the data is someone else's */
    lua_pushliteral(L, "timeout");
    glS_pushdata(L, "", 0, prefix);
    nres = 3;
  } else {
    nres = failpartial(L, s, "timeout", glS_needkind(w), prefix);
  }
  glS_afterread(s);
  return nres;
}

/* A receiver times out with the buffered data as its partial result only
 * if it was its turn (the data belongs to the first receiver). */
int glS_receive(lua_State *L, glS_stream *s, int kind, size_t n,
                int prefix) {
  uint64_t deadline = glL_deadline(s->tread);
  if (s->state != GLS_CONNECTED) return glL_fail(L, "closed");
  lua_pushinteger(L, (lua_Integer)deadline);
  lua_pushinteger(L, prefix);
  return receiving(L, s, kind, n, prefix, deadline,
                   s->readq.head == NULL && !s->rbusy, 0, 0);
}
