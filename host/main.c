/* The greenlua program: Lua 5.4's standalone interpreter (lua.c) with the
 * same options, `arg` table and REPL, running its chunks in the main
 * greenthread.  The runtime itself (hub, greenthreads) lives in green.c. */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "ctx.h"
#include "gl.h"
#include "green.h"
#include "heap.h"
#include "hub.h"
#include "workers.h"

#ifndef GL_VERSION
#define GL_VERSION "0.1.0"
#endif

#define PROGNAME "greenlua"
#define PROMPT "> "
#define PROMPT2 ">> "
#define MAXINPUT 512         /* longest line the prompt reads at once */
#define STACKSIZE_ENV "GREENLUA_STACK_SIZE"
#define STACKSIZE_OPT "--stack-size"
#define WORKERS_OPT "--workers"
#define GRACE_OPT "--grace"
#define MAX_WORKERS 1024
#define DEFAULT_GRACE 10.0

/* What collectargs found on the command line. */
#define has_error 1   /* bad option */
#define has_i 2       /* -i */
#define has_v 4       /* -v */
#define has_e 8       /* -e */
#define has_E 16      /* -E */
#define has_help 32   /* --help */

static lua_State *globalL = NULL;      /* the state SIGINT interrupts */
static const char *progname = PROGNAME;
static const char *stacksize = NULL;   /* --stack-size=SIZE, or NULL */
static const char *workers = NULL;     /* --workers N, or NULL */
static const char *grace = NULL;       /* --grace SECONDS, or NULL */

/* {====== Interrupting a chunk with SIGINT ====== */

static struct sigaction oldint;  /* SIGINT's action before docall */
static int ownint;               /* docall installed laction */

/* Stops the interrupted chunk with an error; runs as a hook of globalL. */
static void lstop(lua_State *L, lua_Debug *ar) {
  GL_UNUSED(ar);
  lua_sethook(L, NULL, 0, 0);  /* reset hook */
  luaL_error(L, "interrupted!");
}

/* The SIGINT handler while a chunk runs: a hook on every event of the main
 * Lua thread stops it at its next step.  The hook fires only when the main
 * greenthread runs Lua code, so a chunk parked in a green call notices the
 * interrupt once it is woken.  A second SIGINT ends the process. */
static void laction(int sig) {
  int flag = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
  lua_sethook(globalL, lstop, flag, 1);
}

/* Installs laction for SIGINT, unless something else already handles the
 * signal: a green.signal handler (libuv's) or SIG_IGN inherited from the
 * shell is left alone. */
static void catchint(void) {
  struct sigaction sa;
  ownint = 0;
  if (sigaction(SIGINT, NULL, &oldint) != 0 || oldint.sa_handler != SIG_DFL)
    return;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = laction;
  sigemptyset(&sa.sa_mask);
  ownint = (sigaction(SIGINT, &sa, NULL) == 0);
}

/* Puts SIGINT's action back as catchint found it, unless the chunk set a
 * handler of its own in the meantime (green.signal "SIGINT"). */
static void releaseint(void) {
  struct sigaction cur;
  if (!ownint) return;
  ownint = 0;
  if (sigaction(SIGINT, NULL, &cur) == 0 &&
      (cur.sa_handler == laction || cur.sa_handler == SIG_DFL))
    sigaction(SIGINT, &oldint, NULL);
}
/* }====== */

/* {====== Messages ====== */

static void print_usage(const char *badoption) {
  fprintf(stderr, "%s: ", progname);
  if (strcmp(badoption, STACKSIZE_OPT) == 0)
    fprintf(stderr, "'%s' needs '=SIZE'\n", badoption);
  else if (strcmp(badoption, WORKERS_OPT) == 0 ||
           strcmp(badoption, GRACE_OPT) == 0)
    fprintf(stderr, "'%s' needs a number\n", badoption);
  else if (badoption[1] == 'e' || badoption[1] == 'l')
    fprintf(stderr, "'%s' needs argument\n", badoption);
  else
    fprintf(stderr, "unrecognized option '%s'\n", badoption);
  fprintf(stderr,
    "usage: %s [options] [script [args]]\n"
    "Available options are:\n"
    "  -e stat            execute string 'stat'\n"
    "  -i                 enter interactive mode after executing 'script'\n"
    "  -l mod             require library 'mod' into global 'mod'\n"
    "  -l g=mod           require library 'mod' into global 'g'\n"
    "  -v                 show version information\n"
    "  -E                 ignore environment variables\n"
    "  -W                 turn warnings on\n"
    "  --stack-size=SIZE  C stack size of greenthreads (256k, 1m, 65536)\n"
    "  --workers N        run the script in N worker processes\n"
    "  --grace SECONDS    how long workers have to stop (10)\n"
    "  --help             explain options and how greenlua runs a script\n"
    "  --                 stop handling options\n"
    "  -                  stop handling options and execute stdin\n",
    progname);
  fflush(stderr);
}

/* The text of --help: the options, then what the runtime adds to lua. */
static void print_help(void) {
  printf(
    "usage: %s [options] [script [args]]\n"
    "Runs a Lua 5.4 script with the green runtime.  With no script, starts\n"
    "an interactive prompt, or runs stdin when it is not a terminal.\n"
    "\n"
    "Options (they come before the script name, as with lua):\n"
    "  -e stat            execute string 'stat'\n"
    "  -i                 enter interactive mode after executing 'script'\n"
    "  -l mod             require library 'mod' into global 'mod'\n"
    "  -l g=mod           require library 'mod' into global 'g'\n"
    "  -v                 show version information\n"
    "  -E                 ignore environment variables (LUA_INIT, LUA_PATH,\n"
    "                     LUA_CPATH, " STACKSIZE_ENV ")\n"
    "  -W                 turn warnings on\n"
    "  --stack-size=SIZE  C stack size of each greenthread: bytes, or a\n"
    "                     number with k, m or g (256k, 1m, 65536)\n"
    "  --workers N        run the script in N worker processes, watched\n"
    "                     over by this one (see Multi-core below)\n"
    "  --grace SECONDS    how long workers have to finish what is in\n"
    "                     flight once told to stop (default 10)\n"
    "  --help             show this help\n"
    "  --                 stop handling options\n"
    "  -                  stop handling options and execute stdin\n"
    "\n"
    "Environment:\n"
    "  LUA_INIT_5_4, LUA_INIT  code, or @file, run before the arguments\n"
    "  " STACKSIZE_ENV "     as --stack-size (the option wins)\n"
    "  GREENLUA_PRIVATE_STACKS how many greenthreads get a C stack of\n"
    "                          their own (64); later ones share a few\n"
    "                          stacks, their frames copied out while parked\n"
    "  GREENLUA_HUGEPAGES=1    grow the Lua heap on transparent huge pages\n"
    "  GREENLUA_VIRTUAL_CLOCK=1 when every greenthread waits only for time\n"
    "                          or for another, time jumps to the next\n"
    "                          deadline (green.virtual_clock)\n"
    "\n"
    "How a script runs:\n"
    "  The script, the -e chunks, the -l modules and the prompt run in the\n"
    "  main greenthread: 'green' is a global, require \"green\" works, and a\n"
    "  green call blocks only the greenthread that makes it (other\n"
    "  greenthreads also run while the prompt waits for input).\n"
    "  When the main chunk returns (or the prompt reaches end of input),\n"
    "  greenlua waits until every greenthread has finished, then exits 0.\n"
    "  If every greenthread is blocked and nothing (timer, socket, signal,\n"
    "  child process) can wake one, greenlua reports a deadlock on stderr,\n"
    "  with the traceback of each blocked greenthread, and exits non-zero.\n"
    "  An error escaping a spawned greenthread is printed on stderr with\n"
    "  its traceback and the greenthread's name; the program goes on.\n"
    "  An error escaping the main chunk is printed with its traceback and\n"
    "  greenlua exits 1 at once, without waiting for other greenthreads.\n"
    "  green.exit([code]) ends the process at once with that status.\n"
    "  SIGQUIT (kill -QUIT) prints every greenthread, what it waits on and\n"
    "  its traceback on stderr (green.dump()); the program goes on.\n"
    "\n"
    "Multi-core (--workers N):\n"
    "  This process becomes a master that starts N workers, each running\n"
    "  the script with its own hub; green.worker() gives each its number.\n"
    "  Servers started with opts.reuseport = true share their port.  A\n"
    "  worker that dies is started again (after a growing delay if it\n"
    "  keeps dying at start; the master gives up after 5 such deaths).\n"
    "  SIGTERM or SIGINT stops the workers (each stops its servers and\n"
    "  finishes what is in flight within the grace period); SIGHUP\n"
    "  replaces them one by one, the port staying open.\n",
    progname);
}

static void print_version(void) {
  printf("%s\n%s %s (context switch: %s)\n", LUA_COPYRIGHT, PROGNAME,
         GL_VERSION, gl_ctx_impl);
  fflush(stdout);
}

/* Prints a message on stderr, after the program name if there is one. */
static void l_message(const char *pname, const char *msg) {
  if (pname) fprintf(stderr, "%s: ", pname);
  fprintf(stderr, "%s\n", msg);
  fflush(stderr);
}

/* Reports the error on top of the stack, if status is not LUA_OK, and pops
 * it.  Returns status. */
static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    l_message(progname, msg ? msg : "(error object is not a string)");
    lua_pop(L, 1);
  }
  return status;
}
/* }====== */

/* {====== Running chunks ====== */

/* The message handler of every chunk: appends a traceback to a string
 * error, or turns another value into one through __tostring. */
static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1;  /* that is the message */
    msg = lua_pushfstring(L, "(error object is a %s value)",
                          luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Calls the function below its narg arguments on top of the stack, in
 * protected mode with msghandler, while SIGINT interrupts it.  Green calls
 * inside it park the main greenthread.  Returns lua_pcall's status. */
static int docall(lua_State *L, int narg, int nres) {
  int status;
  int base = lua_gettop(L) - narg;  /* function index */
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  globalL = L;
  catchint();
  status = lua_pcall(L, narg, nres, base);
  releaseint();
  lua_remove(L, base);
  return status;
}

static int dochunk(lua_State *L, int status) {
  if (status == LUA_OK) status = docall(L, 0, 0);
  return report(L, status);
}

static int dofile(lua_State *L, const char *name) {
  return dochunk(L, luaL_loadfile(L, name));
}

static int dostring(lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

/* Runs 'globname = require(modname)' for an argument 'globname[=modname]'
 * (the text is cut at the '='). */
static int dolibrary(lua_State *L, char *globname) {
  int status;
  char *modname = strchr(globname, '=');
  if (modname == NULL)
    modname = globname;  /* module name is equal to global name */
  else {
    *modname = '\0';  /* global name ends here */
    modname++;
  }
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  status = docall(L, 1, 1);
  if (status == LUA_OK) lua_setglobal(L, globname);
  return report(L, status);
}

/* Pushes arg[1..#arg], the script's `...`.  Returns how many. */
static int pushargs(lua_State *L) {
  int i, n;
  if (lua_getglobal(L, "arg") != LUA_TTABLE)
    luaL_error(L, "'arg' is not a table");
  n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -i);  /* remove table from the stack */
  return n;
}

/* Runs the script argv[0] with its arguments.  "-" means stdin, unless it
 * follows "--".  A first line starting with '#' (a shebang) is skipped by
 * luaL_loadfile. */
static int handle_script(lua_State *L, char **argv) {
  int status;
  const char *fname = argv[0];
  if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0)
    fname = NULL;  /* stdin */
  status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    int n = pushargs(L);
    status = docall(L, n, LUA_MULTRET);
  }
  return report(L, status);
}
/* }====== */

/* {====== Command line ====== */

/* Reads the long option `name` at argv[*i], as "name=value" or "name
 * value" (then *i moves past the value) into *value.  Returns 0 if
 * argv[*i] is not that option; *value is NULL if its value is missing. */
static int longvalue(char **argv, int *i, const char *name,
                     const char **value) {
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n) != 0) return 0;
  if (argv[*i][n] == '=') {
    *value = argv[*i] + n + 1;
  } else if (argv[*i][n] == '\0') {
    *value = argv[*i + 1];
    if (*value != NULL) (*i)++;
  } else {
    return 0;
  }
  return 1;
}

/* Checks the options before the script and returns the has_* flags found,
 * or has_error.  *first becomes the index of the script (argc if none) or,
 * on error, of the bad option.  Our long options are recorded here. */
static int collectargs(char **argv, int *first) {
  int args = 0;
  int i;
  if (argv[0] != NULL) {
    if (argv[0][0]) progname = argv[0];
  } else {  /* no program name: argc is 0 */
    *first = 0;
    return 0;
  }
  for (i = 1; argv[i] != NULL; i++) {
    *first = i;
    if (argv[i][0] != '-') return args;  /* the script: stop */
    switch (argv[i][1]) {
      case '-':
        if (argv[i][2] == '\0') {  /* '--' */
          *first = i + 1;
          return args;
        }
        if (strcmp(argv[i], "--help") == 0)
          args |= has_help;
        else if (strncmp(argv[i], STACKSIZE_OPT "=",
                         strlen(STACKSIZE_OPT "=")) == 0)
          stacksize = argv[i] + strlen(STACKSIZE_OPT "=");
        else if (longvalue(argv, &i, WORKERS_OPT, &workers)) {
          if (workers == NULL) return has_error;
        } else if (longvalue(argv, &i, GRACE_OPT, &grace)) {
          if (grace == NULL) return has_error;
        } else {
          return has_error;
        }
        break;
      case '\0':  /* '-': the script is stdin */
        return args;
      case 'E':
        if (argv[i][2] != '\0') return has_error;
        args |= has_E;
        break;
      case 'W':
        if (argv[i][2] != '\0') return has_error;
        break;
      case 'i':
        args |= has_i;  /* -i implies -v */
        /* FALLTHROUGH */
      case 'v':
        if (argv[i][2] != '\0') return has_error;
        args |= has_v;
        break;
      case 'e':
        args |= has_e;
        /* FALLTHROUGH */
      case 'l':  /* both need an argument */
        if (argv[i][2] == '\0') {  /* not concatenated: the next one */
          i++;
          if (argv[i] == NULL || argv[i][0] == '-') return has_error;
        }
        break;
      default:
        return has_error;
    }
  }
  *first = i;  /* no script */
  return args;
}

/* Runs the -e, -l and -W options found before argv[n], in order.  Returns
 * 0 as soon as one fails (its error is already reported), else 1. */
static int runargs(lua_State *L, char **argv, int n) {
  int i;
  for (i = 1; i < n; i++) {
    int option = argv[i][1];
    switch (option) {
      case 'e':
      case 'l': {
        int status;
        char *extra = argv[i] + 2;
        if (*extra == '\0') extra = argv[++i];
        status = (option == 'e') ? dostring(L, extra, "=(command line)")
                                 : dolibrary(L, extra);
        if (status != LUA_OK) return 0;
        break;
      }
      case 'W':
        lua_warning(L, "@on", 0);
        break;
      default:
        break;
    }
  }
  return 1;
}

/* Fills the global `arg` as lua.c does: the script at 0, its arguments at
 * 1.., the interpreter and the options at negative indices.  Without a
 * script, the interpreter is at 0 and the options follow it. */
static void createargtable(lua_State *L, char **argv, int argc, int script) {
  int i, narg;
  if (script == argc) script = 0;  /* no script name? */
  narg = argc - (script + 1);
  lua_createtable(L, narg, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* Runs LUA_INIT_5_4, or else LUA_INIT: code, or a file after '@'. */
static int handle_luainit(lua_State *L) {
  const char *name = "=LUA_INIT_" LUA_VERSION_MAJOR "_" LUA_VERSION_MINOR;
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=LUA_INIT";
    init = getenv(name + 1);
  }
  if (init == NULL) return LUA_OK;
  if (init[0] == '@') return dofile(L, init + 1);
  return dostring(L, init, name);
}

/* Applies --stack-size or, without it, GREENLUA_STACK_SIZE (unless -E).
 * Must run before gl_runtime_open.  Returns 0 after reporting an unusable
 * size, else 1. */
static int setstacksize(int args) {
  const char *what = STACKSIZE_OPT, *text = stacksize;
  if (text == NULL && !(args & has_E)) {
    what = STACKSIZE_ENV;
    text = getenv(STACKSIZE_ENV);
  }
  if (text == NULL || gl_runtime_stacksize(text) == 0) return 1;
  fprintf(stderr, "%s: bad %s '%s' (use e.g. 256k, 1m or 65536)\n"
          "usage: %s [options] [script [args]] (see --help)\n",
          progname, what, text, progname);
  fflush(stderr);
  return 0;
}
/* Reads --workers and --grace.  Returns the number of workers (0 without
 * --workers), or -1 after reporting an unusable value. */
static int getworkers(double *secs) {
  char *end;
  long n = 0;
  *secs = DEFAULT_GRACE;
  if (grace != NULL) {
    *secs = strtod(grace, &end);
    if (end == grace || *end != '\0' || !(*secs >= 0 && *secs <= 86400)) {
      fprintf(stderr, "%s: bad %s '%s' (use seconds, e.g. 10 or 0.5)\n",
              progname, GRACE_OPT, grace);
      return -1;
    }
  }
  if (workers == NULL) return 0;
  n = strtol(workers, &end, 10);
  if (end == workers || *end != '\0' || n < 1 || n > MAX_WORKERS) {
    fprintf(stderr, "%s: bad %s '%s' (use a number from 1 to %d)\n",
            progname, WORKERS_OPT, workers, MAX_WORKERS);
    return -1;
  }
  return (int)n;
}
/* }====== */

/* {====== The prompt ====== */

#define EOFMARK "<eof>"
#define marklen (sizeof(EOFMARK) / sizeof(char) - 1)

static int stdin_flags = -1;  /* fd 0's file status flags, for polling */

/* Tells whether a failed load only lacks more input: a syntax error at
 * <eof>.  Pops the message in that case. */
static int incomplete(lua_State *L, int status) {
  if (status == LUA_ERRSYNTAX) {
    size_t lmsg;
    const char *msg = lua_tolstring(L, -1, &lmsg);
    if (lmsg >= marklen && strcmp(msg + lmsg - marklen, EOFMARK) == 0) {
      lua_pop(L, 1);
      return 1;
    }
  }
  return 0;
}

/* Pushes the prompt (_PROMPT or _PROMPT2 if set) and returns it. */
static const char *get_prompt(lua_State *L, int firstline) {
  const char *p;
  lua_getglobal(L, firstline ? "_PROMPT" : "_PROMPT2");
  p = lua_tostring(L, -1);
  if (p == NULL) p = firstline ? PROMPT : PROMPT2;
  return p;
}

/* Waits, as the main greenthread, until stdin has input, so that other
 * greenthreads run meanwhile.  An interrupt aimed at the main greenthread
 * (a kill, a green.Timeout started at the prompt) is raised and reported
 * here, then the wait goes on.  When fd 0 cannot be polled (a regular
 * file), returns at once and the read blocks. */
static void waitinput(lua_State *L) {
  for (;;) {
    int rc = gl_hub_wait_fd(0, UV_READABLE, UINT64_MAX);
    /* libuv made fd 0 non-blocking; its file description is shared with
     * the shell and with io.read: give the flags back. */
    if (stdin_flags != -1) fcntl(0, F_SETFL, stdin_flags);
    if (rc != GL_EINTR) return;
    lua_pushcfunction(L, gl_green_raise);
    report(L, docall(L, 0, 0));
  }
}

/* Shows the prompt and reads a line into b.  Returns 0 at end of input. */
static int readprompt(lua_State *L, char *b, const char *prompt) {
  fputs(prompt, stdout);
  fflush(stdout);
  waitinput(L);
  return fgets(b, MAXINPUT, stdin) != NULL;
}

/* Reads a line and pushes it; a first line "=exp" becomes "return exp".
 * Returns 0 at end of input, leaving the prompt on the stack. */
static int pushline(lua_State *L, int firstline) {
  char buffer[MAXINPUT];
  char *b = buffer;
  size_t l;
  const char *prmt = get_prompt(L, firstline);
  if (!readprompt(L, b, prmt)) return 0;
  lua_pop(L, 1);  /* remove prompt */
  l = strlen(b);
  if (l > 0 && b[l - 1] == '\n') b[--l] = '\0';
  if (firstline && b[0] == '=')
    lua_pushfstring(L, "return %s", b + 1);
  else
    lua_pushlstring(L, b, l);
  return 1;
}

/* Tries to compile the line on top as "return <line>;", so that an
 * expression typed alone is printed.  On success the chunk sits above the
 * line; on failure the stack is as it was. */
static int addreturn(lua_State *L) {
  const char *line = lua_tostring(L, -1);
  const char *retline = lua_pushfstring(L, "return %s;", line);
  int status = luaL_loadbuffer(L, retline, strlen(retline), "=stdin");
  if (status == LUA_OK)
    lua_remove(L, -2);  /* remove modified line */
  else
    lua_pop(L, 2);  /* remove the error and the modified line */
  return status;
}

/* Compiles the line at index 1 as a statement, reading continuation lines
 * while the only problem is a missing end. */
static int multiline(lua_State *L) {
  for (;;) {
    size_t len;
    const char *line = lua_tolstring(L, 1, &len);
    int status = luaL_loadbuffer(L, line, len, "=stdin");
    if (!incomplete(L, status) || !pushline(L, 0)) return status;
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);  /* line .. "\n" .. next line */
  }
}

/* Reads and compiles the next complete entry.  Returns -1 at end of input,
 * else the load status with the chunk (or the error) alone on the stack. */
static int loadline(lua_State *L) {
  int status;
  lua_settop(L, 0);
  if (!pushline(L, 1)) return -1;
  if ((status = addreturn(L)) != LUA_OK) status = multiline(L);
  lua_remove(L, 1);  /* remove line */
  return status;
}

/* Prints the values on the stack with the global print. */
static void l_print(lua_State *L) {
  int n = lua_gettop(L);
  if (n > 0) {
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    lua_getglobal(L, "print");
    lua_insert(L, 1);
    if (lua_pcall(L, n, 0, 0) != LUA_OK)
      l_message(progname, lua_pushfstring(L, "error calling 'print' (%s)",
                                          lua_tostring(L, -1)));
  }
}

/* The read-eval-print loop, in the main greenthread.  Errors are reported
 * without the program name and do not end the loop. */
static void doREPL(lua_State *L) {
  int status;
  const char *oldprogname = progname;
  progname = NULL;
  stdin_flags = fcntl(0, F_GETFL);
  while ((status = loadline(L)) != -1) {
    if (status == LUA_OK) status = docall(L, 0, LUA_MULTRET);
    if (status == LUA_OK)
      l_print(L);
    else
      report(L, status);
  }
  lua_settop(L, 0);
  fputs("\n", stdout);
  fflush(stdout);
  progname = oldprogname;
}
/* }====== */

/* {====== Main ====== */

/* The whole program, in protected mode: argc and argv are its arguments.
 * Pushes true when everything succeeded. */
static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int script;
  int args = collectargs(argv, &script);
  int optlim = (script > 0) ? script : argc;  /* first non-option */
  int repl, nworkers;
  double gracesecs;
  luaL_checkversion(L);
  if (args == has_error) {
    print_usage(argv[script]);
    return 0;
  }
  if (args & has_help) {
    print_help();
    lua_pushboolean(L, 1);
    return 1;
  }
  if (args & has_v) print_version();
  if (args & has_E) {  /* libraries ignore environment variables */
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  if (!setstacksize(args)) return 0;
  if ((nworkers = getworkers(&gracesecs)) < 0) return 0;
  if (nworkers > 0) {
    if (script == argc || (args & has_i)) {
      fprintf(stderr, "%s: %s needs a script (and no -i)\n", progname,
              WORKERS_OPT);
      return 0;
    }
    /* Before any hub or loop exists; returns in each worker. */
    gl_workers_run(nworkers, gracesecs, progname);
  }
  repl = (args & has_i) ||
         (script == argc && !(args & (has_e | has_v)) && isatty(0));
  /* The prompt polls fd 0 before each read: nothing may wait in stdio's
   * buffer unseen by the poll, so stdin is unbuffered before any read. */
  if (repl) setvbuf(stdin, NULL, _IONBF, 0);
  luaL_openlibs(L);
  gl_runtime_open(L);  /* this context becomes the main greenthread */
  createargtable(L, argv, argc, script);
  lua_gc(L, LUA_GCRESTART);
  lua_gc(L, LUA_GCGEN, 0, 0);
  if (!(args & has_E) && handle_luainit(L) != LUA_OK) return 0;
  if (!runargs(L, argv, optlim)) return 0;
  if (script < argc && handle_script(L, argv + script) != LUA_OK) return 0;
  if (args & has_i)
    doREPL(L);
  else if (script == argc && !(args & (has_e | has_v))) {
    if (repl) {
      print_version();
      doREPL(L);
    } else if (dofile(L, NULL) != LUA_OK) {
      return 0;  /* lua 5.4 exits 0 here; the main chunk failed: 1 */
    }
  }
  gl_runtime_wait(L);  /* every other greenthread ends, or a deadlock */
  lua_pushboolean(L, 1);
  return 1;
}

int main(int argc, char **argv) {
  int status, result;
  lua_State *L;
  gl_heap_init();
  L = luaL_newstate();
  if (L == NULL) {
    l_message(argv[0], "cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  lua_setallocf(L, gl_heap_alloc, NULL);  /* realloc/free, as before */
  lua_gc(L, LUA_GCSTOP);  /* stop the collector while building the state */
  lua_pushcfunction(L, &pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  status = lua_pcall(L, 2, 1, 0);
  result = lua_toboolean(L, -1);
  report(L, status);
  lua_close(L);
  return (result && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}
/* }====== */
