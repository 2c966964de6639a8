/* What the C parts of green.http share (glH_*, "H" for HTTP, as glS_ for
 * sockets): the table of private functions the Lua parts use, the parser
 * object (parser.c, the one file that knows http-parser), and the helpers
 * of codec.c and message.c. */
#ifndef GL_HTTP_H
#define GL_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "lauxgl.h"

#define GLH_PARSER_TYPE "green.http.parser"

/* The private functions of the Lua parts live in package.loaded under
 * this name ("green.http.core"): pushes that table, creating it. */
void glH_pushcore(lua_State *L);

/* {====== The parser (parser.c) ====== */

/* What a parser knows of the message it read last, for message.c. */
typedef struct glH_info {
  int request;         /* a request parser */
  int head;            /* the request was HEAD (client: asked with HEAD) */
  int minor;           /* HTTP/1.<minor> */
  int keepalive;       /* the peer allows another message after this one */
  int expect;          /* expect: 100-continue and no body read yet */
  int bodyleft;        /* its body is not all read */
  int upgrade;         /* an upgrade (connection: upgrade) was asked */
} glH_info;

/* Fills `info` from the parser userdata at `arg` (raises if it is not
 * one). */
void glH_checkinfo(lua_State *L, int arg, glH_info *info);

/* The reason phrase of a status code ("OK"), or NULL if none is known. */
const char *glH_reason(int status);
/* }====== */

/* {====== Codecs (codec.c) ====== */

enum {
  GLH_PLUS = 1,     /* '+' is a space (query strings, forms) */
  GLH_LENIENT = 2   /* a '%' without two hex digits stays as it is */
};

/* Percent-decodes n bytes at s into out (room for n bytes).  Returns the
 * decoded length, or (size_t)-1 if a '%' is not followed by two hex
 * digits (unless GLH_LENIENT). */
size_t glH_unescape(const char *s, size_t n, char *out, int flags);
/* }====== */

#endif
