/* What the socket bindings share (glS_*, "S" for sockets, as glL_ for
 * lauxgl): the stream socket behind green.socket.tcp and
 * green.socket.unix (stream.c), address resolution with uv_getaddrinfo,
 * address formatting and error messages.  socket_tcp.c and socket_unix.c
 * add connect and bind; socket_udp.c and dns.c use the helpers. */
#ifndef GL_STREAM_H
#define GL_STREAM_H

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "lauxgl.h"

#define GLS_TCP_TYPE "green.socket.tcp"
#define GLS_UNIX_TYPE "green.socket.unix"

enum { GLS_TCP = 1, GLS_UNIX = 2 };

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
  int wbusy;           /* wreq is in flight */
  int shut;            /* sreq was issued */
  int wwait;           /* a sender is parked on wreq (its w.data) */
  int cwait;           /* a connector is parked on creq (its w.data) */
  uv_write_t wreq;
  uv_connect_t creq;
  uv_shutdown_t sreq;
} glS_handle;

/* A stream socket: the userdata of green.socket.tcp/unix.  Parked calls
 * keep the userdata alive (it is their argument), so the wait queues and
 * the read buffer live here; the libuv handle lives in `h`. */
struct glS_stream {
  glS_handle *h;
  int kind;            /* GLS_TCP or GLS_UNIX */
  int state;
  int fd;              /* our own fd while FRESH/BOUND, else -1 */
  int family;          /* of fd */
  unsigned optset, optval;
  int sndbuf, rcvbuf;  /* GLS_OPT_SNDBUF/RCVBUF values */
  uint64_t tconnect, tsend, tread;  /* ns; UINT64_MAX: none */
  char *rbuf;          /* read buffer: data is rbuf[rstart, rend) */
  size_t rstart, rend, rcap;
  size_t lscan;        /* bytes from rstart known to hold no '\n' */
  int reading;         /* uv_read_start is on */
  int polling;         /* a listener's uv_poll_start is on */
  int eof;             /* the peer closed (or shutdown "receive") */
  int rerr, werr;      /* sticky libuv errors of reads and writes */
  int rbusy;           /* a reader was woken and has not consumed yet */
  int wbusy;           /* a sender holds the write turn */
  int anchored;        /* uservalue 1 anchors an in-flight write's data */
  intptr_t rseq;       /* receivers parked so far (their order) */
  gl_waitq readq;      /* receivers (head: the one served), acceptors */
  gl_waitq writeq;     /* senders waiting for their turn */
  gl_waitq waitq;      /* connect, resolve, a write in flight */
};

/* One-time process set-up of the socket bindings (SIGPIPE, the stress
 * switch); called by each opener. */
void glS_init(void);

/* Pushes green.socket, creating it in the green table at the top of the
 * stack if absent. */
void glS_pushsockets(lua_State *L);

/* {====== Stream sockets (stream.c) ====== */

/* The methods every stream socket has; each kind adds connect, bind. */
extern const luaL_Reg glS_stream_methods[];
extern const luaL_Reg glS_stream_meta[];

/* Pushes a new fresh stream socket of `kind`. */
glS_stream *glS_newstream(lua_State *L, int kind);

/* Checks that argument `i` is a stream socket (of either kind). */
glS_stream *glS_checkstream(lua_State *L, int i);

/* Creates a non-blocking stream socket of `family` with s's options;
 * returns the fd or a negative libuv error. */
int glS_socket(glS_stream *s, int family);

/* Connects s, FRESH or BOUND, with the stream fd `fd` (taken over even on
 * failure) to `sa` (TCP) or `path` (Unix), waiting up to `timeout` ns.
 * Returns 0 (s is then CONNECTED) or a libuv error; *rc is the park's
 * status (GL_OK, GL_ETIMEDOUT, GL_EINTR, GL_ECLOSED). */
int glS_connect(glS_stream *s, int fd, const struct sockaddr *sa,
                const char *path, uint64_t timeout, int *rc);

/* Listens on s (FRESH or BOUND; a fresh one gets an fd first).  Returns
 * 0 or a libuv error (UV_EBADF: closed). */
int glS_listen(glS_stream *s, int backlog);
/* }====== */

/* {====== Helpers ====== */

/* A timeout argument of a socket: nil or negative means none
 * (UINT64_MAX), as in LuaSocket. */
uint64_t glS_opttimeout(lua_State *L, int arg);

/* The message for libuv error `err`: "closed" for end of stream and
 * broken pipes, "timeout", "host not found" for unknown names (as
 * LuaSocket says), else uv_strerror's text, lower case, no final period. */
const char *glS_strerror(int err, char *buf, size_t size);
int glS_fail(lua_State *L, int err);

/* Checks a port argument (0..65535). */
int glS_checkport(lua_State *L, int arg);

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

/* Pushes the text form of an IPv4/IPv6 address (no port). */
void glS_pushaddr(lua_State *L, const struct sockaddr *sa);

/* Pushes host, port, family ("inet"/"inet6") or, for AF_UNIX, the path;
 * returns how many. */
int glS_pushsockaddr(lua_State *L, const struct sockaddr *sa);

/* A buffer for reads whose data is copied out at once (one hub thread). */
extern char glS_scratch[65536];

/* The one-byte stress switch (GREENLUA_IO_ONEBYTE=1 in the environment):
 * every stream read and write moves at most one byte, so every call
 * parks (OpenResty's mockeagain).  Datagrams are left whole. */
extern int glS_onebyte;
/* }====== */

/* After a parked socket call: raises a pending interrupt, else pushes
 * nil, "closed" if the socket was closed meanwhile or nil, "timeout" if
 * rc says so, and returns 2; returns 0 when the call may go on. */
int glS_parked(lua_State *L, glS_stream *s, int rc);

/* Makes the metatable of a stream socket kind: the shared stream methods
 * plus `methods`; then pushes the green.socket table, for the caller to
 * add its constructors to. */
void glS_newstreamclass(lua_State *L, const char *tname,
                        const luaL_Reg *methods);

#endif
