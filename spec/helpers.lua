-- Helpers shared by the specs: errors, iterators, child processes.
-- Load with `local h = require "spec.helpers"` (busted runs from the
-- repository root).
local assert = require "luassert"  -- busted's assert is not global here
local h = {}

-- Runs f(...) and returns the error it raises; fails if it raises none.
function h.errorof(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return err
end

-- Asserts that f raises a message containing `text` (plain).
function h.raises(text, f)
  local err = tostring(h.errorof(f))
  assert(err:find(text, 1, true),
    ("expected an error containing %q, got %q"):format(text, err))
end

-- Collects what a generic-for iterator yields.
function h.collect(...)
  local out = {}
  for v in ... do out[#out + 1] = v end
  return out
end

-- Quotes s for the shell.
function h.q(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- The whole content of a file.
function h.slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- What a shell command writes on stdout (io.popen: the caller's
-- greenthread waits, the others run).
function h.capture(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

-- Whether process `pid` exists (a zombie does: it is not reaped yet).
function h.exists(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if f then f:close() end
  return f ~= nil
end

-- Starts a green.http server on a free port of 127.0.0.1; fn(srv, port)
-- runs with it, and it is stopped however fn ends.
function h.withhttpserver(handler, opts, fn)
  local srv = assert(require("green.http").server("127.0.0.1", 0, handler,
                                                  opts))
  assert(srv:start())
  local ok, err = pcall(fn, srv, srv.port)
  srv:stop(0.5)
  if not ok then error(err, 0) end
end

-- The greenlua binary under test.
h.BIN = os.getenv("GREENLUA") or "build/greenlua"

-- Runs the command line `cmd` to its end (blocking the hub: for children
-- that need nobody here); returns its output, stderr included, with
-- addresses such as 0x55d0... as ADDR.
function h.outputof(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  p:close()
  return (out:gsub("0x%x+", "ADDR"))
end

-- Runs `greenlua <args>` (a shell word list, quoted by the caller) under a
-- time limit and returns its stdout, stderr and exit status.  opts.env is
-- a prefix of VAR=value words, opts.stdin a shell command whose output is
-- piped in (default: no input).  It blocks the hub meanwhile.
function h.greenlua(args, opts)
  opts = opts or {}
  local errfile = os.tmpname()
  local cmd = string.format("%s env -u LUA_INIT -u LUA_INIT_5_4 %s "
      .. "timeout 60 %s %s 2>%s; echo \"status=$?\"",
      opts.stdin and (opts.stdin .. " |") or "</dev/null",
      opts.env or "", h.q(h.BIN), args, h.q(errfile))
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  local err = h.slurp(errfile)
  os.remove(errfile)
  local status = tonumber(out:match("status=(%d+)\n$"))
  return (out:gsub("status=%d+\n$", "")), err, status
end

-- Runs `greenlua <script> . <args>` in the background, in a directory of
-- its own: once the script has made the file "ready" there, waits `delay`
-- seconds (0), sends it signal `sig` ("QUIT", "INT") from this process's
-- shell and makes the file "go"; then waits for it to end.  Returns its
-- stdout, stderr and exit status.  The child gets the signal's default
-- action back: a shell starts a background job with SIGINT and SIGQUIT
-- ignored.
function h.signalled(script, args, sig, delay)
  local pwd = os.getenv("PWD")
  local bin = h.BIN:sub(1, 1) == "/" and h.BIN or pwd .. "/" .. h.BIN
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. h.q(dir)))
  local sh = table.concat({
    "cd " .. h.q(dir),
    ("env --default-signal=INT,QUIT %s %s . %s >out 2>err & p=$!")
      :format(h.q(bin), h.q(pwd .. "/" .. script), args or ""),
    "i=0; while [ ! -e ready ] && [ $i -lt 3000 ]; do sleep 0.01; "
      .. "i=$((i+1)); done",
    ("sleep %s; kill -%s $p; touch go; wait $p; echo $?")
      :format(delay or 0, sig),
  }, "\n")
  local p = assert(io.popen("timeout 60 sh -c " .. h.q(sh)))
  local status = tonumber(p:read("a"))
  p:close()
  local out, err = h.slurp(dir .. "/out"), h.slurp(dir .. "/err")
  os.execute("rm -rf " .. h.q(dir))
  return out, err, status
end

-- Runs fn with the virtual clock on (green.virtual_clock): for specs of
-- timeouts, which then take no time and cannot race the real clock.
-- it("...", h.virtual(function() ... end))
function h.virtual(fn)
  return function(...)
    return require("green").virtual_clock(fn, ...)
  end
end

-- {====== Commands that run while the hub goes on ======
-- io.popen and os.execute block the whole process: a server of this
-- process could not answer the command.  These start the command in the
-- background, with its output in files, and poll for its end.

local function readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- A command started in the background (h.spawn): c.pid, c:output(),
-- c:errors(), c:await(pattern), c:kill().
local Bg = {}
Bg.__index = Bg

-- Starts the shell command `cmd` in the background, in a process group
-- of its own (c:kill ends the group).
function h.spawn(cmd)
  local green = require "green"
  local c = setmetatable({out = os.tmpname(), err = os.tmpname(),
                          status = os.tmpname(), green = green}, Bg)
  os.remove(c.status)
  local pidfile = os.tmpname()
  local script = ("sh -c %s >%s 2>%s; echo $? >%s.tmp; mv %s.tmp %s")
    :format(h.q(cmd), h.q(c.out), h.q(c.err), h.q(c.status), h.q(c.status),
            h.q(c.status))
  -- setsid: the command gets a process group of its own, which kill ends
  assert(os.execute(("setsid sh -c %s </dev/null >/dev/null 2>&1 & "
    .. "echo $! >%s"):format(h.q(script), h.q(pidfile))))
  c.pid = tonumber(readfile(pidfile))
  os.remove(pidfile)
  return c
end

function Bg:output() return readfile(self.out) or "" end
function Bg:errors() return readfile(self.err) or "" end

-- The exit status once the command ended, else nil.
function Bg:done() return tonumber(readfile(self.status) or "") end

-- Waits (at most `limit` seconds, default 20) until the output matches
-- `pattern`; returns the captures.
function Bg:await(pattern, limit)
  local deadline = self.green.now() + (limit or 20)
  while true do
    local r = {self:output():match(pattern)}
    if r[1] ~= nil then return table.unpack(r) end
    if self.green.now() > deadline or self:done() then
      error(("output never matched %q:\n%s\nstderr:\n%s")
        :format(pattern, self:output(), self:errors()), 2)
    end
    self.green.sleep(0.005)
  end
end

-- Waits for the end (at most `limit` seconds, default 60); returns
-- stdout, stderr, exit status (nil if it did not end in time).
function Bg:wait(limit)
  local deadline = self.green.now() + (limit or 60)
  local status = self:done()
  while not status and self.green.now() < deadline do
    self.green.sleep(0.005)
    status = self:done()
  end
  return self:output(), self:errors(), status
end

-- Ends the command (its whole process group) and removes its files;
-- returns stdout and stderr.
function Bg:kill()
  local status = self:done()
  if not status then
    local group = ("-%d 2>/dev/null"):format(self.pid)
    -- a process of the group that is not a zombie (the orphans' reaper
    -- may take a while)
    local alive = ("ps -e -o pgid=,stat= | awk '$1 == %d && $2 !~ /^Z/ "
      .. "{ f = 1 } END { exit !f }'"):format(self.pid)
    os.execute("kill -TERM " .. group)
    local deadline = self.green.now() + 5
    while os.execute(alive) and self.green.now() < deadline do
      self.green.sleep(0.005)
    end
    os.execute("kill -KILL " .. group)
  end
  local out, err = self:output(), self:errors()
  os.remove(self.out); os.remove(self.err); os.remove(self.status)
  return out, err, status
end

-- Runs the shell command to its end (killed after `limit` seconds,
-- default 60) without blocking the hub; returns stdout, stderr and the
-- exit status (nil if it was killed).
function h.run(cmd, limit)
  local c = h.spawn(cmd)
  local out, err, status = c:wait(limit or 60)
  if not status then out, err = c:kill() end
  os.remove(c.out); os.remove(c.err); os.remove(c.status)
  return out, err, status
end

-- Debian's Python: the peers' programs run under it, whatever python3
-- comes first in PATH.
h.PYTHON = "/usr/bin/python3"
-- }======

-- {====== Background children ======
-- A peer (redis-server, a Python server) runs in the background with its
-- output in files, so that the hub goes on running greenthreads while it
-- runs; `timeout` kills it after `limit` seconds (60) whatever happens.

local Child = {}
Child.__index = Child

-- Starts the command line `cmd` in the background (`timeout` passes our
-- kill on to it).
function h.background(cmd, limit)
  local c = setmetatable({out = os.tmpname(), err = os.tmpname(),
                          pidfile = os.tmpname()}, Child)
  assert(os.execute(("</dev/null timeout %d sh -c %s >%s 2>%s & echo $! >%s")
    :format(limit or 60, h.q("exec " .. cmd), h.q(c.out), h.q(c.err),
            h.q(c.pidfile))))
  c.pid = tonumber(h.slurp(c.pidfile))
  assert(c.pid, "no pid")
  return c
end

function Child:output() return h.slurp(self.out), h.slurp(self.err) end

-- Waits (at most `seconds`, 10) until the child's stdout or stderr
-- matches `pattern`; returns the captures.
function Child:await(pattern, seconds)
  local green = require "green"
  local deadline = green.now() + (seconds or 10)
  while true do
    local out, err = self:output()
    local r = {out:match(pattern)}
    if r[1] == nil then r = {err:match(pattern)} end
    if r[1] ~= nil then return table.unpack(r) end
    if green.now() > deadline then
      error(("child output never matched %q:\n%s\nstderr:\n%s")
        :format(pattern, out, err), 2)
    end
    green.sleep(0.01)
  end
end

-- Kills the child and removes its files.
function Child:kill()
  os.execute(("kill %d 2>/dev/null"):format(self.pid))
  os.remove(self.out); os.remove(self.err); os.remove(self.pidfile)
end

-- A TCP port of 127.0.0.1 free a moment ago, for peers that cannot be
-- told to pick one themselves.
function h.freeport()
  local green = require "green"
  local s = assert(green.socket.listen("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end
-- }======

return h
