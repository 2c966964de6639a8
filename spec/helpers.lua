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

return h
