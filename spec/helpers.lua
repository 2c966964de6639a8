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

-- The greenlua binary under test.
h.BIN = os.getenv("GREENLUA") or "build/greenlua"

-- Runs `greenlua <args>` (a shell word list, quoted by the caller) under a
-- time limit and returns its stdout, stderr and exit status.  opts.env is
-- a prefix of VAR=value words, opts.stdin a shell command whose output is
-- piped in (default: no input).
function h.run(args, opts)
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

-- Runs fn with the virtual clock on (green.virtual_clock): for specs of
-- timeouts, which then take no time and cannot race the real clock.
-- it("...", h.virtual(function() ... end))
function h.virtual(fn)
  return function(...)
    return require("green").virtual_clock(fn, ...)
  end
end

return h
