/* What the C parts of green.http share (glH_*, "H" for HTTP, as glS_ for
 * sockets): the table of private functions the Lua parts use, the parser
 * (parser.c, the one file that knows http-parser), connections that parse
 * their stream's buffer in place (conn.c), and the helpers of codec.c and
 * message.c. */
#ifndef GL_HTTP_H
#define GL_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "lauxgl.h"

#define GLH_PARSER_TYPE "green.http.parser"
#define GLH_CONN_TYPE "green.http.conn"

/* The private functions of the Lua parts live in package.loaded under
 * "green.http.core": pushes that table, creating it (codec.c). */
void glH_pushcore(lua_State *L);

/* {====== The parser (parser.c) ======
 * A parser reads one message after another.  Its head is parsed from a
 * window of bytes that starts at the head's first byte and grows as bytes
 * come (what earlier calls saw is not parsed again); its body from the
 * bytes after the head, which it consumes as it goes. */

typedef struct glH_parser glH_parser;

/* Where a parser is in its current message. */
enum {
  GLH_HEAD,  /* waiting for (the rest of) a head */
  GLH_BODY,  /* head read, body not all read */
  GLH_DONE,  /* message complete: the next head starts the next one */
  GLH_FAIL   /* a bad message: every call fails the same way */
};

/* The uservalues of a userdata holding a parser (a parser object or a
 * connection): the metatable of its request tables; a connection's
 * stream, the Lua side's state of a server's connection, and the request
 * it serves. */
enum { GLH_UV_META = 1, GLH_UV_SOCK, GLH_UV_STATE, GLH_UV_REQ };

/* The size of a parser, for objects that hold one; init and free it. */
size_t glH_parsersize(void);
void glH_parserinit(glH_parser *p, int request, size_t maxheader,
                    uint64_t maxbody);
void glH_parserfree(glH_parser *p);

/* Reads max_header at `arg` and max_body at arg + 1 (nil or negative:
 * no limit). */
void glH_checklimits(lua_State *L, int arg, size_t *maxheader,
                     uint64_t *maxbody);

int glH_phase(const glH_parser *p);

/* Parses the head in data[0, len).  Returns 0 when more bytes are needed
 * (keep every one of them: the head is parsed in place), or the number of
 * values pushed: 1, the head, with *used its length (consume it), or 3,
 * nil, status, message for a bad message (400, 431 over max_header, 413
 * content-length over max_body, 501, 505).  A request table gets the
 * metatable GLH_UV_META of the userdata at index 1.  `nobody`: the
 * response answers HEAD. */
int glH_parsehead(lua_State *L, glH_parser *p, const char *data, size_t len,
                  size_t *used, int nobody);

/* Parses body bytes data[0, len), of which it consumes *used; `eof`: the
 * peer closed.  Returns 0 when more are needed, or the number of values
 * pushed: 1, the body (a string; "" when skipped), or 3, nil, status,
 * message (status 0 and "closed" when the peer closed too early). */
int glH_parsebody(lua_State *L, glH_parser *p, const char *data, size_t len,
                  int eof, size_t *used);

/* The rest of the body is read and dropped. */
void glH_skipbody(glH_parser *p);

/* 1 if the request expects 100-continue and its body is not read yet
 * (the 100 counts as sent from then on), else 0. */
int glH_continue(glH_parser *p);

/* What a parser knows of its last message, for message.c. */
typedef struct glH_info {
  int request;         /* a request parser */
  int head;            /* the request was HEAD (client: asked with HEAD) */
  int minor;           /* HTTP/1.<minor> */
  int keepalive;       /* the peer allows another message after this one */
  int expect;          /* expect: 100-continue and no body read yet */
  int bodyleft;        /* its body is not all read */
  int upgrade;         /* an upgrade (connection: upgrade) was asked */
} glH_info;

void glH_getinfo(const glH_parser *p, glH_info *info);

/* The parser of the parser object or connection at idx (raises if it is
 * neither). */
glH_parser *glH_toparser(lua_State *L, int idx);

/* The reason phrase of a status code ("OK"), or NULL if none is known. */
const char *glH_reason(int status);
/* }====== */

/* {====== Messages (message.c) ====== */

/* What glH_respond made: `bytes` (the head, and the body after it
 * unless `rest`: a body too large to copy, to be sent after the bytes)
 * lie in a buffer of message.c that the next message reuses. */
typedef struct glH_reply {
  const char *bytes;
  size_t len;
  int keepalive;     /* the connection may carry another request */
  const char *mode;  /* streamed: "chunked", "length", "close", "none" */
  int rest;
  const char *err;   /* why no response was made (valid until the next) */
} glH_reply;

/* Builds the response to the last request read by p: `status`, the
 * headers table at hidx (0 or nil: none), and the body at bidx: a string
 * (or a number, or nil for none) for a whole response with its
 * content-length, or false for a head whose body follows in pieces
 * (r->mode).  `force` closes the connection after it.  Returns 0; -1
 * (nothing made) for a body of another type; -2 for bad headers or a bad
 * status, with r->err saying why (it never raises).  Call
 * glH_releaseout once the bytes are sent or copied. */
int glH_respond(lua_State *L, glH_parser *p, lua_Integer status, int hidx,
                int bidx, int force, glH_reply *r);
void glH_releaseout(void);
/* }====== */

/* {====== Connections (conn.c) ====== */

/* The parser of the connection at idx, or NULL if it is none. */
glH_parser *glH_connparser(lua_State *L, int idx);
/* }====== */

/* {====== Codecs (codec.c) ====== */

enum {
  GLH_PLUS = 1,     /* '+' is a space (query strings, forms) */
  GLH_LENIENT = 2   /* a '%' without two hex digits stays as it is */
};

/* Whether n bytes at s are a token (RFC 9110 tchar: a header name, a
 * method). */
int glH_istoken(const char *s, size_t n);

/* Percent-decodes n bytes at s into out (room for n bytes).  Returns the
 * decoded length, or (size_t)-1 if a '%' is not followed by two hex
 * digits (unless GLH_LENIENT). */
size_t glH_unescape(const char *s, size_t n, char *out, int flags);
/* }====== */

#endif
