/* Ending the process when going on is unsafe: a broken invariant, an
 * exhausted resource, a stack overflow.  gl_fatal formats with stdio;
 * gl_fatal_raw uses write(2) alone, for signal handlers.  No Lua, no
 * libuv, no hub: every file of the core may stop the process. */
#include "gl.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#define PREFIX "greenlua: fatal: "

void gl_fatal(const char *fmt, ...) {
  va_list ap;
  fflush(stdout);
  fputs(PREFIX, stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  abort();
}

/* Writes all of s to fd 2, retrying after a signal; gives up silently on
 * any other error (there is nobody left to tell). */
static void put(const char *s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(2, s, n);
    if (w > 0) {
      s += w;
      n -= (size_t)w;
    } else if (w < 0 && errno != EINTR) {
      return;
    }
  }
}

void gl_fatal_raw(const char *s, ...) {
  va_list ap;
  put(PREFIX);
  va_start(ap, s);
  for (; s != NULL; s = va_arg(ap, const char *)) put(s);
  va_end(ap);
  put("\n");
  abort();
}

char *gl_fmt_u64(char *buf, unsigned long long n) {
  char tmp[24];
  size_t i = 0, j = 0;
  do {
    tmp[i++] = (char)('0' + n % 10);
    n /= 10;
  } while (n > 0);
  while (i > 0) buf[j++] = tmp[--i];
  buf[j] = '\0';
  return buf;
}
