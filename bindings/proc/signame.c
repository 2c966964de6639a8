/* Signal names and numbers, both ways, for green.signal, p:kill and the
 * results of p:wait. */
#include <signal.h>
#include <string.h>

#include "proc.h"

static const struct {
  const char *name;
  int num;
} names[] = {
  {"SIGHUP", SIGHUP},   {"SIGINT", SIGINT},   {"SIGQUIT", SIGQUIT},
  {"SIGILL", SIGILL},   {"SIGTRAP", SIGTRAP}, {"SIGABRT", SIGABRT},
  {"SIGBUS", SIGBUS},   {"SIGFPE", SIGFPE},   {"SIGKILL", SIGKILL},
  {"SIGUSR1", SIGUSR1}, {"SIGSEGV", SIGSEGV}, {"SIGUSR2", SIGUSR2},
  {"SIGPIPE", SIGPIPE}, {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM},
  {"SIGCHLD", SIGCHLD}, {"SIGCONT", SIGCONT}, {"SIGSTOP", SIGSTOP},
  {"SIGTSTP", SIGTSTP}, {"SIGTTIN", SIGTTIN}, {"SIGTTOU", SIGTTOU},
  {"SIGURG", SIGURG},   {"SIGXCPU", SIGXCPU}, {"SIGXFSZ", SIGXFSZ},
  {"SIGVTALRM", SIGVTALRM}, {"SIGPROF", SIGPROF}, {"SIGWINCH", SIGWINCH},
  {"SIGSYS", SIGSYS},
#ifdef SIGIO
  {"SIGIO", SIGIO},
#endif
#ifdef SIGPWR
  {"SIGPWR", SIGPWR},
#endif
};

#define NNAMES (sizeof names / sizeof names[0])

int glP_signum(const char *name) {
  size_t i;
  if (strncmp(name, "SIG", 3) == 0) name += 3;
  for (i = 0; i < NNAMES; i++)
    if (strcmp(names[i].name + 3, name) == 0) return names[i].num;
  return 0;
}

const char *glP_signame(int signum) {
  size_t i;
  for (i = 0; i < NNAMES; i++)
    if (names[i].num == signum) return names[i].name;
  return NULL;
}

void glP_pushsigname(lua_State *L, int signum) {
  const char *name = glP_signame(signum);
  if (name != NULL) lua_pushstring(L, name);
  else lua_pushfstring(L, "SIG%d", signum);
}

int glP_checksignal(lua_State *L, int arg, const char *def) {
  lua_Integer n;
  int signum;
  if (lua_type(L, arg) == LUA_TNUMBER) {
    n = luaL_checkinteger(L, arg);
    luaL_argcheck(L, n > 0 && n < NSIG, arg, "signal number out of range");
    return (int)n;
  }
  signum = glP_signum(luaL_optstring(L, arg, def));
  if (signum == 0)
    return luaL_argerror(L, arg, lua_pushfstring(L, "unknown signal '%s'",
                                                 lua_tostring(L, arg)));
  return signum;
}
