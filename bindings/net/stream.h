/* The net layer's internal API (glS_*, "S" for sockets, as glL_ for
 * lauxgl), shared by the files of bindings/net and by the layers built on
 * streams (HTTP, subprocess pipes, socket.core).  A stream is built in
 * layers, bottom up, one file each:
 *
 *   address.c    error messages, address formatting, argument checks
 *   resolve.c    name lookups with uv_getaddrinfo (connect, bind, dns.c)
 *   transport.c  the libuv handle (uv_tcp_t, uv_pipe_t; a uv_poll_t for
 *                listeners), fds and options, connect, listen, accept,
 *                and the raw write path (uv_try_write, parked uv_write)
 *       (TLS sits here: ciphertext to and from the transport, plaintext
 *        to the reader's buffer and from send; see "Layering" below)
 *   reader.c     the read buffer, libuv's read callbacks, the receivers'
 *                turns and backpressure; direct access for C parsers
 *   receive.c    the receive patterns ("*l", "*a", n, receiveany) with
 *                prefix and partial results, as a wait that can give its
 *                stack up (green.h)
 *   stream.c     the Lua object: the methods every stream has, its
 *                classes, close, streams over existing fds
 *
 * socket_tcp.c and socket_unix.c add connect and bind per address kind;
 * socket_udp.c and dns.c use the helpers.
 *
 * Layering.  Bytes read arrive in reader.c's read callback, which appends
 * them to the buffer and serves the first parked receiver; bytes sent go
 * from stream_send through the write turn to glS_write.  A record layer
 * (TLS with memory BIOs) takes the read callback's bytes before they
 * reach the buffer (decrypting into it) and sits between the write turn
 * and glS_write (encrypting into it), so every receive pattern, timeout,
 * close and kill work above it unchanged. */
#ifndef GL_STREAM_H
#define GL_STREAM_H

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "lauxgl.h"

#define GLS_TCP_TYPE "green.socket.tcp"
#define GLS_UNIX_TYPE "green.socket.unix"
#define GLS_PIPE_TYPE "green.Pipe"

/* The kinds of stream, each with its class (metatable).  GLS_PIPE wraps
 * any stream fd that is not a socket we connect: a pipe, a socketpair's
 * end, a child's stdin/stdout (glS_openfd). */
enum { GLS_TCP = 1, GLS_UNIX = 2, GLS_PIPE = 3, GLS_NKINDS };

/* A stream socket's life: a fresh socket has no fd; bind gives it one;
 * listen or connect moves it into a libuv handle. */
enum {
  GLS_FRESH,       /* no fd yet */
  GLS_BOUND,       /* s->fd bound, not yet listening nor connected */
  GLS_CONNECTING,  /* s->h: a stream handle with a connect in flight */
  GLS_CONNECTED,   /* s->h: a connected stream handle */
  GLS_LISTENING,   /* s->h: a poll handle on the listening fd */
  GLS_CLOSED
};

/* Socket options (setoption), kept so they apply to fds created later. */
enum {
  GLS_OPT_NODELAY = 1,
  GLS_OPT_KEEPALIVE = 2,
  GLS_OPT_REUSEADDR = 4,
  GLS_OPT_REUSEPORT = 8,
  GLS_OPT_SNDBUF = 16,   /* value in glS_stream.sndbuf */
  GLS_OPT_RCVBUF = 32
};

typedef struct glS_stream glS_stream;

/* Marks the userdata of every stream ("gl.Strea"). */
#define GLS_MAGIC UINT64_C(0x676c2e5374726561)
typedef struct glS_tls glS_tls;        /* tls.c */
typedef struct glS_tlsctx glS_tlsctx;  /* tls_context.c */
struct ssl_st;                         /* OpenSSL's SSL and SSL_CTX */
struct ssl_ctx_st;

/* The libuv side of a stream socket, heap-allocated because libuv owns it
 * until its close callback, which frees it.  `s` is NULL once the socket
 * let go of it (closed or collected): callbacks then only finish up. */
typedef struct glS_handle {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_poll_t poll;
  } u;
  glS_stream *s;
  int fd;              /* a listener's fd, closed with its poll handle */
  int wbusy;           /* a write request is in flight */
  int shut;            /* a shutdown request was issued */
  int wwait;           /* a sender is parked on the write request */
  int cwait;           /* a connector is parked on the connect request */
  /* The write, connect and shutdown requests are allocations of their
   * own, made when needed (most connections never park a write) and
   * freed by their callbacks; a parked caller's w.data is its request. */
} glS_handle;

/* A stream socket: the userdata of every stream class.  Parked calls
 * keep the userdata alive (it is their argument), so the wait queues and
 * the read buffer live here; the libuv handle lives in `h`. */
struct glS_stream {
  glS_handle *h;       /* first: describe.c tells streams by their handle */
  uint64_t magic;      /* GLS_MAGIC: glS_teststream's check */
  int kind;            /* GLS_TCP, GLS_UNIX or GLS_PIPE */
  int state;
  int fd;              /* our own fd while FRESH/BOUND, else -1 */
  int family;          /* of fd */
  unsigned optset, optval;
  int sndbuf, rcvbuf;  /* GLS_OPT_SNDBUF/RCVBUF values */
  int opening;         /* a connect or bind is under way (it may park) */
  size_t maxline;      /* the longest line "*l" returns ("max-line") */
  uint64_t tconnect, tsend, tread;  /* ns; UINT64_MAX: none */
  uint64_t tidle;      /* LuaSocket's block timeout (bindings/compat): a
                          receive, send or accept fails with "timeout"
                          once nothing moved for this long, whatever its
                          deadline; UINT64_MAX (green.socket's): none */
  uint64_t nconsumed;  /* bytes taken from the buffer, ever (getstats) */
  int luasocket;       /* LuaSocket's receive results and error texts
                          (glS_receive, glS_errtext) */
  char *rbuf;          /* read buffer: data is rbuf[rstart, rend) */
  size_t rstart, rend, rcap;
  size_t lscan;        /* bytes from rstart known to hold no '\n' */
  int reading;         /* uv_read_start is on */
  int polling;         /* a listener's uv_poll_start is on */
  int eof;             /* the peer closed (or shutdown "receive") */
  int rerr, werr;      /* sticky libuv errors of reads and writes */
  int rbusy;           /* a reader holds the turn, or was woken for it
                          and has not consumed yet */
  int wbusy;           /* a sender holds the write turn */
  int anchored;        /* uservalue 1 anchors an in-flight write's data */
  intptr_t rseq;       /* receivers parked so far (their order) */
  gl_waitq readq;      /* receivers (head: the one served), acceptors */
  gl_waitq writeq;     /* senders waiting for their turn */
  gl_waitq waitq;      /* connect, resolve, a write in flight,
                          a handshake */
  glS_tls *tls;        /* the TLS layer, once sslhandshake began */
};

/* {====== The layer (stream.c) ====== */

/* One-time process set-up of the socket bindings (SIGPIPE, the stress
 * switch); called by each opener. */
void glS_init(void);

/* Pushes green.socket, creating it in the green table at the top of the
 * stack if absent. */
void glS_pushsockets(lua_State *L);

/* A buffer for reads whose data is copied out at once (one hub thread). */
extern char glS_scratch[65536];

/* Sockets of this layer (streams of every kind, UDP) made and not yet
 * closed, for green.stats. */
extern size_t glS_nopen;

/* Describes a socket wait for green.dump (gl_wait_describer): the
 * socket's class, its address and its peer's; for GL_WAIT_DNS the host
 * looked up.  Every socket object of this layer starts with a pointer to
 * its libuv handle (NULL while it has none), which is what it reads; the
 * handle's type tells a stream from a UDP socket (describe.c). */
void glS_describe(const gl_waiter *w, char *buf, size_t n);

/* The one-byte stress switch (GREENLUA_IO_ONEBYTE=1 in the environment):
 * every stream read and write moves at most one byte, so every call
 * parks (OpenResty's mockeagain).  Datagrams are left whole. */
extern int glS_onebyte;
/* }====== */

/* {====== Stream objects (stream.c) ====== */

/* The methods every stream has; each kind adds its own (connect, bind). */
extern const luaL_Reg glS_stream_methods[];
extern const luaL_Reg glS_stream_meta[];

/* Makes the class of stream kind `kind`, named `tname`: the shared stream
 * methods plus `methods` (may be NULL); then pushes the green.socket
 * table, for the caller to add its constructors to.  glS_checkstream
 * accepts the userdata of every class made here. */
void glS_newstreamclass(lua_State *L, int kind, const char *tname,
                        const luaL_Reg *methods);

/* Pushes a new fresh stream of `kind` (its class must exist). */
glS_stream *glS_newstream(lua_State *L, int kind);

/* The same with `size` bytes (at least sizeof(glS_stream)), whose first
 * member is the stream, for a layer that keeps fields of its own in the
 * userdata (bindings/compat); it sets the class it wants. */
glS_stream *glS_newstreamx(lua_State *L, int kind, size_t size);

/* Registers the metatable on top of the stack (kept alive by the
 * registry) as one more class of streams of `kind`, such as LuaSocket's
 * tcp{client}: glS_teststream and glS_checkstream then accept its
 * userdata, so every glS_ function works on them. */
void glS_addclass(lua_State *L, int kind);

/* Checks that argument `i` is a stream (of any kind); the error names
 * "green.socket.tcp or unix". */
glS_stream *glS_checkstream(lua_State *L, int i);

/* The stream at `i`, or NULL if it is none. */
glS_stream *glS_teststream(lua_State *L, int i);

/* Pushes a new connected stream of `kind` over `fd`, an open stream fd
 * (a pipe end, a socketpair end, an accepted or inherited socket), which
 * it takes over: it is made non-blocking and closed with the stream, or
 * at once on failure.  Every receive pattern, send, timeouts, shutdown
 * and close work on it.  Returns the stream, or NULL with nothing pushed
 * and *err a libuv error.  For a child's stdio, make the pair with
 * uv_pipe() or socketpair(), give the child its end (UV_INHERIT_FD) and
 * open the other end here.  A memory error raised while pushing the
 * stream leaves `fd` to the caller. */
glS_stream *glS_openfd(lua_State *L, int kind, int fd, int *err);

/* For uv_spawn's UV_CREATE_PIPE: pushes a new stream of kind GLS_PIPE
 * whose handle's uv_pipe_t is initialised (uv_pipe_init, no IPC) and
 * returned in *pipe, for uv_process_options_t.stdio[i].data.stream.  The
 * stream is GLS_CONNECTING (receive and send return "closed") until
 * glS_pipeopened(s) once uv_spawn succeeded; if it failed, just close or
 * drop the stream. */
glS_stream *glS_newpipe(lua_State *L, uv_pipe_t **pipe);
void glS_pipeopened(glS_stream *s);

/* Moves the connected stream at stack index `from`, on which nobody
 * waits, into the fresh stream at `to` (of the same kind): its handle,
 * fd, buffer and settings; `from` is left closed, without them.  Returns
 * 0, or UV_EINVAL (not connected; `to` not fresh) or UV_EBUSY (a call
 * is under way on it).  LuaSec's wrap makes a connection of a socket so,
 * leaving the socket it wrapped unusable. */
int glS_move(lua_State *L, int from, int to);

/* Closes s: lets go of its handle and fd, frees the buffer and wakes
 * every greenthread parked on it with GL_ECLOSED ("closed"). */
void glS_close(glS_stream *s);

/* What a call waits before giving up, at its next park: the time left
 * until `deadline`, or s->tidle if that is shorter. */
static inline uint64_t glS_nextwait(const glS_stream *s, uint64_t deadline) {
  uint64_t left = glL_remaining(deadline);
  return s->tidle < left ? s->tidle : left;
}

/* After a parked socket call: raises a pending interrupt, else pushes
 * nil, "closed" if the socket was closed meanwhile or nil, "timeout" if
 * rc says so, and returns 2; returns 0 when the call may go on. */
int glS_parked(lua_State *L, glS_stream *s, int rc);
/* }====== */

/* {====== Transport (transport.c) ====== */

/* The fd of s, whatever its state, or -1. */
int glS_sockfd(glS_stream *s);

/* Applies the options in `mask` of s to fd; returns 0 or a libuv error. */
int glS_applyopts(glS_stream *s, int fd, unsigned mask);

/* Whether s may start a connect (`isbind` 0) or a bind now: 0, or the
 * error to return: UV_EOF ("closed"), UV_EALREADY (a connect or bind is
 * under way), UV_EISCONN (connected), UV_EINVAL (listening; bound, for
 * a bind).  A connect or bind that parks (name lookups, the connect
 * itself) sets s->opening meanwhile, so that a second one, from another
 * greenthread, fails instead of taking the socket over. */
int glS_canopen(glS_stream *s, int isbind);

/* Creates a non-blocking stream socket of `family` with s's options;
 * returns the fd or a negative libuv error. */
int glS_socket(glS_stream *s, int family);

/* Wraps the connected fd into a stream handle for s (uv_tcp_t for TCP,
 * uv_pipe_t otherwise); returns 0 or a libuv error (fd is closed then).
 * The caller sets s->state. */
int glS_openstream(glS_stream *s, int fd);

/* A new handle for s, not yet initialised for libuv (the caller runs
 * uv_*_init on h->u), or NULL; and the way to let go of an initialised
 * one (libuv's close callback frees it). */
glS_handle *glS_newhandle(glS_stream *s);
void glS_releasehandle(glS_handle *h);

/* Connects s, FRESH or BOUND, with the stream fd `fd` (taken over even on
 * failure) to `sa` (TCP) or `path` (Unix), waiting up to `timeout` ns.
 * Returns 0 (s is then CONNECTED) or a libuv error; *rc is the park's
 * status (GL_OK, GL_ETIMEDOUT, GL_EINTR, GL_ECLOSED). */
int glS_connect(glS_stream *s, int fd, const struct sockaddr *sa,
                const char *path, uint64_t timeout, int *rc);

/* Listens on s (FRESH or BOUND; a fresh one gets an fd first).  Returns
 * 0 or a libuv error (UV_EBADF: closed). */
int glS_listen(glS_stream *s, int backlog);

/* Accepts a connection on the listening s into c, a fresh stream of the
 * same kind, within s's read timeout or s->tidle (see stream_accept).  Returns 0 (c
 * is then CONNECTED) or a libuv error: UV_ECANCELED when s was closed
 * meanwhile, UV_ETIMEDOUT; *rc is the last park's status (a GL_EINTR is
 * the caller's to raise, before anything else). */
int glS_accept(glS_stream *s, glS_stream *c, int *rc);
int glS_tryaccept(glS_stream *s, glS_stream *c);

/* The raw write path.  A sender first takes the write turn (senders go
 * one at a time, in order): glS_writeturn parks until it is its turn and
 * returns GL_OK, or the park's status (GL_ETIMEDOUT, GL_EINTR, or
 * GL_ECLOSED when s was closed).  It then writes with glS_write, and
 * gives the turn to the next sender with glS_writedone (not after
 * GL_ECLOSED). */
int glS_writeturn(glS_stream *s, uint64_t deadline);
void glS_writedone(glS_stream *s);

/* Writes at once what can go out of n bytes at p, without parking: for
 * a caller whose bytes do not outlive the call (a buffer of its own).  It
 * writes only when send could do so at once: the stream is connected,
 * without an error, and no sender holds the write turn or waits for it.
 * Returns how many bytes went out (0 when it may not write now, or the
 * kernel took none: the caller sends the rest as s:send does), or a
 * libuv error (made sticky in s->werr).  On a TLS stream the bytes that
 * went out are those encrypted (up to 64 KiB; glS_tls_trysend): their
 * ciphertext is the TLS layer's, written as the socket takes it. */
int glS_trysend(glS_stream *s, const char *p, size_t n);

/* Leaves the rest of what glS_trysend began, n bytes at p, to a uv_write
 * in the background, without parking (the same conditions hold: nobody
 * else writes).  Other senders wait for it as for a send abandoned by
 * its timeout (h->wbusy), and the caller keeps p alive until it ends, as
 * stream_send anchors its data.  Returns 0 or a libuv error (made sticky
 * in s->werr). */
int glS_writebehind(glS_stream *s, const char *p, size_t n);

/* Writes n bytes at p to the transport: uv_try_write, then the rest with
 * uv_write in chunks, parking on each, until `deadline` (each park at
 * most s->tidle, which a chunk that goes out starts again).  Adds what went
 * out to *sent and returns 0 or a libuv error (also made sticky in
 * s->werr), with *rc the last park's status: GL_ETIMEDOUT or GL_EINTR
 * leave the last chunk in flight, counted as sent, and set *inflight, so
 * that the caller keeps p alive until the write ends (h->wbusy clears);
 * GL_ECLOSED or s->state == GLS_CLOSED: s was closed. */
int glS_write(glS_stream *s, const char *p, size_t n, uint64_t deadline,
              size_t *sent, int *rc, int *inflight);
/* }====== */

/* {====== The read buffer (reader.c) ====== */

/* Bytes buffered, and where they start (never NULL). */
static inline size_t glS_buffered(const glS_stream *s) {
  return s->rend - s->rstart;
}
static inline const char *glS_bufdata(const glS_stream *s) {
  return s->rbuf != NULL ? s->rbuf + s->rstart : "";
}

/* Drops the first n buffered bytes (n <= glS_buffered(s)).  A buffer
 * that empties is freed, so an idle stream holds none; a large one left
 * with little data shrinks. */
void glS_consume(glS_stream *s, size_t n);

/* Makes room for n more bytes at the end of the buffer (rbuf + rend);
 * returns 0 or -1 (out of memory). */
int glS_reserve(glS_stream *s, size_t n);

/* Frees the buffer (closing). */
void glS_freebuf(glS_stream *s);

/* The first '\n' of the buffer, or NULL; scans only what it did not scan
 * before, so a long line arriving in small pieces stays linear. */
const char *glS_findnl(glS_stream *s);

/* Whether the line at the start of the buffer is, or will be, longer
 * than s->maxline (a '\r' before its '\n' not counted); `nl` is what
 * glS_findnl returned. */
int glS_overlong(const glS_stream *s, const char *nl);

/* Starts and stops libuv reading into the buffer. */
void glS_startreading(glS_stream *s);
void glS_stopreading(glS_stream *s);

/* Reads what the kernel holds now into the buffer, without parking. */
void glS_readnow(glS_stream *s);

/* Hands the buffer to the first parked receiver if it has what that
 * receiver waits for; the receiver consumes before anyone else is served
 * (s->rbusy). */
void glS_kick(glS_stream *s);

/* After a receive: serves the next receiver, and keeps reading unless the
 * buffer is full enough with nobody waiting. */
void glS_afterread(glS_stream *s);

/* What a parked receiver waits for: a kind, and a count for GLS_RNUM
 * and GLS_RANY, kept in its waiter (the kind as w->data, a tag in static
 * memory; the count whole in w->n2; w->n is its place in line).  A kind
 * with GLS_RPROGRESS added wakes the receiver for any new byte too: a
 * receive under a block timeout (s->tidle), which starts again whenever
 * data arrives. */
enum { GLS_RLINE, GLS_RALL, GLS_RNUM, GLS_RANY };
#define GLS_RPROGRESS 4
void glS_setneed(gl_waiter *w, int kind, size_t n);
int glS_needkind(const gl_waiter *w);
int glS_needprogress(const gl_waiter *w);
size_t glS_needn(const gl_waiter *w);

/* The default of "max-line". */
#define GLS_MAXLINE (16 * 1024 * 1024)

/* Reading the buffer directly, for parsers in C.  A C reader takes one
 * turn among the stream's receivers (FIFO, as receive does):
 *
 *   rc = glS_fill(s, need, deadline);   parks until `need` bytes are in
 *   ... parse glS_bufdata(s), glS_buffered(s); glS_consume(s, used) ...
 *   glS_readdone(s);                    the next receiver's turn
 *
 * glS_fill returns GL_OK with the turn held when at least `need` bytes
 * are buffered or the stream ended (s->eof) or failed (s->rerr: a libuv
 * error; glS_buffered may then be less than need); call glS_readdone
 * after consuming, before parking again.  Otherwise the turn is released
 * already and it returns GL_ETIMEDOUT (`deadline`, a gl_clock_now value
 * or UINT64_MAX, passed; nothing is consumed), GL_EINTR (raise it) or
 * GL_ECLOSED (s was closed: its buffer is gone).  It keeps its C frames
 * while parked (receive.c's wait is the one that gives the stack up). */
int glS_fill(glS_stream *s, size_t need, uint64_t deadline);
void glS_readdone(glS_stream *s);
/* }====== */

/* {====== Receive patterns (receive.c) ====== */

/* Receives with pattern `kind` (GLS_RLINE, GLS_RALL, GLS_RNUM n bytes,
 * GLS_RANY up to n) from the stream at index 1, after the prefix at
 * index `prefix` (0: none), within the read timeout (and s->tidle);
 * returns what s:receive returns (data | nil, err, partial).  Use it as
 * the return expression of a lua_CFunction: the wait may give the stack
 * up.  A stream with s->luasocket set gets LuaSocket's results instead:
 * a line drops every '\r', not only a final one; "*a" with nothing left
 * before the end fails with nil, "closed", prefix; data comes back as
 * data, nil, nil. */
int glS_receive(lua_State *L, glS_stream *s, int kind, size_t n,
                int prefix);

/* Pushes n bytes at p, after the prefix at stack index `prefix` (0:
 * none). */
void glS_pushdata(lua_State *L, const char *p, size_t n, int prefix);
/* }====== */

/* {====== TLS (tls.c, tls_context.c) ======
 * A stream with s->tls set reads ciphertext: the reader hands what each
 * read brings to glS_tls_input, which decrypts into the buffer (so the
 * buffer always holds plaintext), and stream_send writes through
 * glS_tls_write instead of glS_write.  Nothing changes above. */

/* A TLS failure of s (s->rerr, s->werr); its text is glS_errtext's. */
#define GLS_ETLS (-30000)

/* Feeds what a read brought (n > 0), or the transport's end or failure
 * (n < 0, a libuv error), to the TLS layer of s. */
void glS_tls_input(glS_stream *s, const char *p, ssize_t n);

/* glS_write for a TLS stream, holding the write turn: encrypts n bytes
 * at p and writes them, parking until the peer took each chunk, until
 * `deadline`.  Adds the plaintext bytes sent to *sent; returns 0 or an
 * error (GLS_ETLS, a libuv error; UV_ECANCELED when s was closed), *rc
 * the last park's status (after GL_ETIMEDOUT or GL_EINTR the last chunk
 * still goes out, counted as sent; its ciphertext is the layer's own). */
int glS_tls_write(glS_stream *s, const char *p, size_t n, uint64_t deadline,
                  size_t *sent, int *rc);

/* glS_trysend on a TLS stream whose handshake is done. */
int glS_tls_trysend(glS_stream *s, const char *p, size_t n);

/* Sends close_notify (shutdown "send"); glS_tls_free sends it too, as far
 * as the socket takes it at once, and frees the layer (close). */
void glS_tls_shutdown(glS_stream *s);
void glS_tls_free(glS_stream *s);

/* TLS streams open, and those of them that hold SSL's record buffers
 * (the rest gave theirs up while idle: tls.c's sweep). */
void glS_tls_counts(size_t *open, size_t *buffered);

/* The message for err on s: a TLS failure's text for GLS_ETLS, else
 * glS_strerror's, or glS_luasocketerror's for a LuaSocket stream. */
const char *glS_errtext(glS_stream *s, int err, char *buf, size_t size);

/* For layers that drive a handshake themselves (LuaSec's dohandshake,
 * bindings/compat).  glS_tls_begin puts TLS with context c on the
 * connected s and starts its handshake, which goes on in s's read
 * callbacks: a client sends `name` (may be NULL) as SNI, and checks the
 * certificate against it if c verifies and `checkname`.  Returns NULL or
 * what failed.  The caller sees that no send is under way.
 * glS_tls_wait parks until the handshake ended, or `deadline` (then it
 * goes on): returns the park's status; glS_tls_state says how it stands
 * (a failure's text is glS_errtext's for GLS_ETLS).  glS_tls_ssl is the
 * connection's SSL, or NULL. */
enum { GLS_TLS_NONE, GLS_TLS_RUNNING, GLS_TLS_DONE, GLS_TLS_FAILED };
const char *glS_tls_begin(glS_stream *s, glS_tlsctx *c, const char *name,
                          int checkname);
int glS_tls_wait(glS_stream *s, uint64_t deadline);
int glS_tls_state(const glS_stream *s);
struct ssl_st *glS_tls_ssl(glS_stream *s);

/* sslhandshake and sslinfo, methods of every stream class. */
extern const luaL_Reg glS_tls_methods[];

/* Contexts: one SSL_CTX per configuration, shared (references counted:
 * the Lua object and each connection).  glS_tlsctx_client gives the
 * cached client context for (verify, cafile), or NULL with err;
 * glS_tlsctx_test the green.tls.Context at i, or NULL.  A client's SSL
 * is prepared with the session it last had with `key` (host:port), and
 * new sessions are kept under it. */
glS_tlsctx *glS_tlsctx_client(lua_State *L, int verify, const char *cafile,
                              char *err, size_t size);
glS_tlsctx *glS_tlsctx_test(lua_State *L, int i);
void glS_tlsctx_ref(glS_tlsctx *c);
void glS_tlsctx_unref(glS_tlsctx *c);
int glS_tlsctx_isserver(const glS_tlsctx *c);
struct ssl_ctx_st *glS_tlsctx_get(glS_tlsctx *c);
void glS_tlsctx_prepare(glS_tlsctx *c, struct ssl_st *ssl, const char *key);

/* A new context (one reference, the caller's), with greenlua's settings
 * and no certificate nor verification yet, for a layer that configures
 * its SSL_CTX itself (glS_tlsctx_get); NULL with err on failure. */
glS_tlsctx *glS_tlsctx_new(int server, char *err, size_t size);

/* OpenSSL's reason for the last failure, lower case, into buf (or
 * `fallback`); clears OpenSSL's error queue. */
const char *glS_tls_reason(char *buf, size_t size, const char *fallback);
/* }====== */

/* {====== Addresses, errors, arguments (address.c) ====== */

/* A timeout argument of a socket: nil or negative means none
 * (UINT64_MAX), as in LuaSocket. */
uint64_t glS_opttimeout(lua_State *L, int arg);

/* The message for libuv error `err`: "closed" for end of stream and
 * broken pipes, "timeout", "host not found" for unknown names (as
 * LuaSocket says), else uv_strerror's text, lower case, no final period. */
const char *glS_strerror(int err, char *buf, size_t size);
int glS_fail(lua_State *L, int err);

/* LuaSocket's text for libuv error `err`, as its sockets give it: "closed"
 * also for resets and aborts, "already connected", strerror's text (not
 * lower-cased) for the rest. */
const char *glS_luasocketerror(int err);

/* Checks a port argument (0..65535). */
int glS_checkport(lua_State *L, int arg);

/* Pushes the text form of an IPv4/IPv6 address (no port). */
void glS_pushaddr(lua_State *L, const struct sockaddr *sa);

/* Pushes host, port, family ("inet"/"inet6") or, for AF_UNIX, the path;
 * returns how many. */
int glS_pushsockaddr(lua_State *L, const struct sockaddr *sa);
/* }====== */

/* {====== Name lookups (resolve.c) ====== */

/* Resolves `host` with uv_getaddrinfo (never blocking the hub), parking
 * in `q` (close wakes it) up to `timeout` ns; numeric addresses and "*"
 * (any) are parsed at once.  Writes up to `max` addresses with `port` to
 * `out` and returns how many, or 0 with *err (a libuv error) or *rc
 * (a park status other than GL_OK) set. */
int glS_resolve(const char *host, int port, int socktype,
                struct sockaddr_storage *out, int max, gl_waitq *q,
                uint64_t timeout, int *rc, int *err);

/* The uv_getaddrinfo behind glS_resolve: returns the list (free it with
 * uv_freeaddrinfo) or NULL with *err or *rc set. */
struct addrinfo *glS_getaddrinfo(const char *host, int socktype,
                                 gl_waitq *q, uint64_t timeout, int *rc,
                                 int *err);

/* The same with uv_getaddrinfo's own arguments: a service (or NULL) and
 * hints (flags, family, socket type). */
struct addrinfo *glS_getaddrinfox(const char *host, const char *service,
                                  const struct addrinfo *hints, gl_waitq *q,
                                  uint64_t timeout, int *rc, int *err);
/* }====== */

#endif
