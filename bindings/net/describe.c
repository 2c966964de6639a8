/* What a socket wait is on, for green.dump: the socket's class, its own
 * address and its peer's, or the host a lookup resolves.  One describer
 * serves every socket object of the layer: each starts with a pointer to
 * its libuv handle (glS_stream and socket_udp.c's gl_udp), whose type
 * tells a stream from a datagram socket. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "stream.h"

_Static_assert(offsetof(glS_stream, h) == 0 && offsetof(glS_handle, u) == 0,
               "a stream starts with its handle");

/* Appends the text form of sa ("127.0.0.1:5000", "[::1]:80", a Unix
 * path) to buf, which holds `used` bytes of n. */
static size_t addaddr(char *buf, size_t used, size_t n, const char *label,
                      const struct sockaddr_storage *ss, socklen_t len) {
  char host[64];
  const char *text = NULL;
  int port = 0;
  if (used >= n) return used;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    if (uv_ip4_name(a, host, sizeof host) == 0) text = host;
    port = ntohs(a->sin_port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    if (uv_ip6_name(a, host, sizeof host) == 0) text = host;
    port = ntohs(a->sin6_port);
  } else if (ss->ss_family == AF_UNIX) {
    const struct sockaddr_un *a = (const struct sockaddr_un *)ss;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    int plen = len > (socklen_t)off ? (int)(len - off) : 0;
    if (plen > 0 && a->sun_path[0] != '\0')
      return used + (size_t)snprintf(buf + used, n - used, ", %s %.*s", label,
                                     (int)strnlen(a->sun_path, (size_t)plen),
                                     a->sun_path);
    return used;
  }
  if (text == NULL) return used;
  return used + (size_t)snprintf(buf + used, n - used,
                                 ss->ss_family == AF_INET6 ? ", %s [%s]:%d"
                                                           : ", %s %s:%d",
                                 label, text, port);
}

/* The host name of a lookup, printable characters only. */
static void describehost(const char *host, char *buf, size_t n) {
  size_t i, j;
  if (host == NULL) {
    snprintf(buf, n, "name lookup");
    return;
  }
  j = (size_t)snprintf(buf, n, "lookup of '");
  for (i = 0; host != NULL && host[i] != '\0' && i < 255 && j + 3 < n; i++)
    buf[j++] = (host[i] >= 32 && host[i] < 127) ? host[i] : '?';
  if (j + 2 <= n) {
    buf[j++] = '\'';
    buf[j] = '\0';
  }
}

void glS_describe(const gl_waiter *w, char *buf, size_t n) {
  const uv_handle_t *h;
  const char *type;
  struct sockaddr_storage ss;
  socklen_t len;
  uv_os_fd_t fd;
  size_t used;
  if (w->kind == GL_WAIT_DNS) {
    describehost(w->obj, buf, n);
    return;
  }
  if (w->obj == NULL) {
    snprintf(buf, n, "socket");
    return;
  }
  h = *(const uv_handle_t *const *)w->obj;
  if (h == NULL) {
    type = "socket";
  } else if (h->type == UV_UDP) {
    type = "green.socket.udp";
  } else {
    const glS_stream *s = w->obj;
    type = s->kind == GLS_TCP    ? GLS_TCP_TYPE
           : s->kind == GLS_UNIX ? GLS_UNIX_TYPE
                                 : GLS_PIPE_TYPE;
  }
  used = (size_t)snprintf(buf, n, "%s: %p", type, w->obj);
  if (h == NULL || uv_fileno(h, &fd) != 0) return;
  len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
    used = addaddr(buf, used, n, "address", &ss, len);
  len = sizeof ss;
  if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
    addaddr(buf, used, n, "peer", &ss, len);
}
