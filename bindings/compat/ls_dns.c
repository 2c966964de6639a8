/* socket.dns: toip, tohostname, getaddrinfo, getnameinfo, gethostname,
 * with LuaSocket's results.  The C library's resolver calls that LuaSocket
 * makes (gethostbyname, gethostbyaddr, getaddrinfo, getnameinfo) run
 * here as they are, for the same answers, but on libuv's thread pool:
 * only the calling greenthread waits. */
#define _GNU_SOURCE  /* gethostbyname_r, gethostbyaddr_r */

#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "luasocket.h"

/* {====== Lookups on the thread pool ====== */

enum { J_BYNAME, J_BYADDR, J_ADDRINFO, J_NAMEINFO };

#define MAXNAMES 32

/* A lookup handed to the thread pool.  Whoever comes last frees it: the
 * greenthread once the work is done, else (it gave up: a kill or a
 * Timeout) the after-work callback. */
typedef struct job {
  uv_work_t req;
  gl_waitq q;
  int what, waiting, done;
  char *host, *serv;             /* inputs (serv may be NULL) */
  struct in_addr addr;           /* J_BYADDR */
  struct hostent he, *hp;        /* J_BYNAME, J_BYADDR */
  int herr;
  struct addrinfo *res;          /* J_ADDRINFO, J_NAMEINFO */
  int gai;
  int nnames;                    /* J_NAMEINFO: names[i] in buf */
  size_t names[MAXNAMES];
  char service[NI_MAXSERV];
  char buf[16384];
} job;

/* getnameinfo for each address of j->res, the names packed in j->buf. */
static void nameinfo(job *j) {
  struct addrinfo *ai;
  size_t used = 0;
  char host[NI_MAXHOST];
  for (ai = j->res; ai != NULL && j->nnames < MAXNAMES; ai = ai->ai_next) {
    host[0] = '\0';
    getnameinfo(ai->ai_addr, ai->ai_addrlen, host, j->host ? sizeof host : 0,
                j->service, j->serv ? sizeof j->service : 0, 0);
    if (used + strlen(host) + 1 > sizeof j->buf) break;
    j->names[j->nnames++] = used;
    memcpy(j->buf + used, host, strlen(host) + 1);
    used += strlen(host) + 1;
  }
}

static void work(uv_work_t *req) {
  job *j = (job *)req;
  struct addrinfo hints;
  switch (j->what) {
    case J_BYNAME:
      gethostbyname_r(j->host, &j->he, j->buf, sizeof j->buf, &j->hp,
                      &j->herr);
      break;
    case J_BYADDR:
      gethostbyaddr_r(&j->addr, sizeof j->addr, AF_INET, &j->he, j->buf,
                      sizeof j->buf, &j->hp, &j->herr);
      break;
    default:
      memset(&hints, 0, sizeof hints);
      hints.ai_socktype = SOCK_STREAM;
      hints.ai_family = AF_UNSPEC;
      j->gai = getaddrinfo(j->host, j->serv, &hints, &j->res);
      if (j->gai == 0 && j->what == J_NAMEINFO) nameinfo(j);
      break;
  }
}

static void freejob(job *j) {
  if (j->res != NULL) freeaddrinfo(j->res);
  free(j->host);
  free(j->serv);
  free(j);
}

static void workdone(uv_work_t *req, int status) {
  job *j = (job *)req;
  gl_waiter *w;
  GL_UNUSED(status);
  if (!j->waiting) {
    freejob(j);
    return;
  }
  j->done = 1;
  if ((w = gl_waitq_find(&j->q, j)) != NULL) gl_hub_wake(w, GL_OK);
}

static char *dupstr(const char *s) {
  char *d;
  size_t n;
  if (s == NULL) return NULL;
  n = strlen(s) + 1;
  if ((d = malloc(n)) != NULL) memcpy(d, s, n);
  return d;
}

/* Runs a job of kind `what` and waits for it; returns it (free it with
 * freejob) or raises (an interrupt, or no memory). */
static job *run(lua_State *L, int what, const char *host, const char *serv,
                const struct in_addr *addr) {
  job *j = calloc(1, sizeof *j);
  gl_waiter w;
  int rc;
  if (j == NULL) luaL_error(L, "not enough memory");
  j->what = what;
  j->host = dupstr(host);
  j->serv = dupstr(serv);
  if (addr != NULL) j->addr = *addr;
  gl_waitq_init(&j->q);
  if ((host && !j->host) || (serv && !j->serv) ||
      uv_queue_work(gl_hub_loop(), &j->req, work, workdone) != 0) {
    freejob(j);
    luaL_error(L, "cannot start a name lookup");
  }
  gl_waiter_init(&w, GL_WAIT_DNS, NULL);
  w.data = j;
  j->waiting = 1;
  rc = gl_waitq_wait(&j->q, &w, UINT64_MAX);
  j->waiting = 0;
  if (!j->done) {  /* workdone frees it */
    glL_raisepending(L, rc);
    luaL_error(L, "name lookup abandoned");
  }
  return j;
}
/* }====== */

/* {====== Host entries ====== */

static const char *hosterror(int err) {
  return err == HOST_NOT_FOUND ? "host not found" : hstrerror(err);
}

/* Pushes LuaSocket's table of a host entry: {name=, alias={}, ip={}}. */
static void pushresolved(lua_State *L, const struct hostent *hp) {
  char **p;
  int i;
  lua_createtable(L, 0, 3);
  lua_pushstring(L, hp->h_name);
  lua_setfield(L, -2, "name");
  lua_newtable(L);
  for (i = 1, p = hp->h_aliases; p != NULL && *p != NULL; p++, i++) {
    lua_pushstring(L, *p);
    lua_rawseti(L, -2, i);
  }
  lua_setfield(L, -2, "alias");
  lua_newtable(L);
  for (i = 1, p = hp->h_addr_list; p != NULL && *p != NULL; p++, i++) {
    lua_pushstring(L, inet_ntoa(*(struct in_addr *)*p));
    lua_rawseti(L, -2, i);
  }
  lua_setfield(L, -2, "ip");
}

/* The host entry of an address or a name, as LuaSocket looks it up. */
static job *gethost(lua_State *L, const char *address) {
  struct in_addr a;
  if (inet_aton(address, &a)) return run(L, J_BYADDR, NULL, NULL, &a);
  return run(L, J_BYNAME, address, NULL, NULL);
}

/* dns.toip(address) -> ip, resolved | nil, err */
static int dns_toip(lua_State *L) {
  job *j = gethost(L, luaL_checkstring(L, 1));
  if (j->hp == NULL) {
    int e = j->herr;
    freejob(j);
    return glC_fail(L, hosterror(e));
  }
  lua_pushstring(L, inet_ntoa(*(struct in_addr *)j->hp->h_addr_list[0]));
  pushresolved(L, j->hp);
  freejob(j);
  return 2;
}

/* dns.tohostname(address) -> name, resolved | nil, err */
static int dns_tohostname(lua_State *L) {
  job *j = gethost(L, luaL_checkstring(L, 1));
  if (j->hp == NULL) {
    int e = j->herr;
    freejob(j);
    return glC_fail(L, hosterror(e));
  }
  lua_pushstring(L, j->hp->h_name);
  pushresolved(L, j->hp);
  freejob(j);
  return 2;
}
/* }====== */

/* {====== Address information ====== */

/* The text of getaddrinfo's error code e (not libuv's). */
static const char *gaitext(int e) {
  switch (e) {
    case EAI_NONAME: return glC_gaierror(UV_EAI_NONAME);
    case EAI_AGAIN: return glC_gaierror(UV_EAI_AGAIN);
    case EAI_FAIL: return glC_gaierror(UV_EAI_FAIL);
    case EAI_FAMILY: return glC_gaierror(UV_EAI_FAMILY);
    case EAI_MEMORY: return glC_gaierror(UV_EAI_MEMORY);
    case EAI_SERVICE: return glC_gaierror(UV_EAI_SERVICE);
    case EAI_SOCKTYPE: return glC_gaierror(UV_EAI_SOCKTYPE);
    default: return gai_strerror(e);
  }
}

/* dns.getaddrinfo(host) -> {{family=, addr=}, ...} | nil, err */
static int dns_getaddrinfo(lua_State *L) {
  job *j = run(L, J_ADDRINFO, luaL_checkstring(L, 1), NULL, NULL);
  struct addrinfo *ai;
  char host[NI_MAXHOST];
  int i = 1, e;
  if (j->gai != 0) {
    e = j->gai;
    freejob(j);
    return glC_fail(L, gaitext(e));
  }
  lua_newtable(L);
  for (ai = j->res; ai != NULL; ai = ai->ai_next) {
    e = getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof host, NULL, 0,
                    NI_NUMERICHOST);
    if (e != 0) {
      freejob(j);
      return glC_fail(L, gaitext(e));
    }
    lua_createtable(L, 0, 2);
    if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6) {
      lua_pushstring(L, ai->ai_family == AF_INET ? "inet" : "inet6");
      lua_setfield(L, -2, "family");
    }
    lua_pushstring(L, host);
    lua_setfield(L, -2, "addr");
    lua_rawseti(L, -2, i++);
  }
  freejob(j);
  return 1;
}

/* dns.getnameinfo([host], [serv]) -> names, [service] | nil, err: the
 * name of each address host resolves to, and serv's name. */
static int dns_getnameinfo(lua_State *L) {
  const char *host = luaL_optstring(L, 1, NULL);
  const char *serv = luaL_optstring(L, 2, NULL);
  job *j;
  int i, e;
  if (host == NULL && serv == NULL)
    return luaL_error(L, "host and serv cannot be both nil");
  j = run(L, J_NAMEINFO, host, serv, NULL);
  if (j->gai != 0) {
    e = j->gai;
    freejob(j);
    return glC_fail(L, gaitext(e));
  }
  lua_newtable(L);
  for (i = 0; host != NULL && i < j->nnames; i++) {
    lua_pushstring(L, j->buf + j->names[i]);
    lua_rawseti(L, -2, i + 1);
  }
  if (serv != NULL) lua_pushstring(L, j->service);
  freejob(j);
  return serv != NULL ? 2 : 1;
}

/* dns.gethostname() -> name | nil, err */
static int dns_gethostname(lua_State *L) {
  char name[257];
  name[256] = '\0';
  if (gethostname(name, 256) < 0) return glC_fail(L, "gethostname failed");
  lua_pushstring(L, name);
  return 1;
}
/* }====== */

static const luaL_Reg dns_funcs[] = {
  {"toip", dns_toip},
  {"tohostname", dns_tohostname},
  {"getaddrinfo", dns_getaddrinfo},
  {"getnameinfo", dns_getnameinfo},
  {"gethostname", dns_gethostname},
  {NULL, NULL}
};

void glC_open_dns(lua_State *L) {
  luaL_newlib(L, dns_funcs);
  lua_setfield(L, -2, "dns");
}
