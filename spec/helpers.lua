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

-- The greenlua binary under test.
h.BIN = os.getenv("GREENLUA") or "build/greenlua"

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
