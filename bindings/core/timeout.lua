-- with_timeout, composed from green.Timeout.
local green = ...

-- green.with_timeout(seconds, fn, ...) -> fn's values, or nil, "timeout"
-- if fn did not finish in time.  Errors of fn, and other Timeouts (an
-- outer one firing), propagate.
function green.with_timeout(seconds, fn, ...)
  if type(seconds) ~= "number" then
    error(("bad argument #1 to 'with_timeout' (number expected, got %s)")
      :format(type(seconds)), 2)
  end
  if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
    error(("bad argument #2 to 'with_timeout' (function expected, got %s)")
      :format(type(fn)), 2)
  end
  local t = green.Timeout(seconds):start()
  local r = table.pack(pcall(fn, ...))
  t:cancel()
  if r[1] then return table.unpack(r, 2, r.n) end
  if r[2] == t then return nil, "timeout" end
  error(r[2], 0)
end
