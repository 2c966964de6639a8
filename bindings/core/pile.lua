-- green.Pile: calls spawned in a Pool (pool.lua) whose first results are
-- read back in spawn order, as eventlet's GreenPile.  Each call's error
-- is kept for the reader instead of escaping its greenthread.
local green = ...
local Group = require "green.group"
require "green.pool"  -- green.Pool first
local lib = Group._lib
local checkself, iscallable, typename = lib.checkself, lib.iscallable,
  lib.typename
local getcurrent, GreenletExit = green.getcurrent, green.GreenletExit

local Pile = {__name = "green.Pile", _key = "_class_pile",
              _class_pile = true}
Pile.__index = Pile

-- Body of a call: fn(...) under pcall.  Returns the first result (as
-- g.value); an error other than GreenletExit goes to pile._errors.
local function call(pile, fn, ...)
  local ok, v = pcall(fn, ...)
  if not ok and v ~= GreenletExit then
    pile._errors[getcurrent()] = v
    return nil
  end
  return v
end

-- pile:spawn(fn, ...) -> g: fn(...) in the pile's pool (waits while the
-- pool is full).
function Pile:spawn(fn, ...)
  checkself(self, Pile, "spawn")
  if not iscallable(fn) then
    error(("bad argument #1 to 'spawn' (function expected, got %s)")
      :format(typename(fn)), 2)
  end
  local g = self._pool:spawn(call, self, fn, ...)
  self._tail = self._tail + 1
  self._calls[self._tail] = g
  return g
end

-- pile:iter() -> an iterator over the first results of the calls spawned
-- and not read yet, in spawn order; it waits for each.  A call's error is
-- raised when its turn comes (the very value).  nil results are skipped:
-- a generic for would stop at them.  A call killed with GreenletExit
-- yields green.GreenletExit, as its g.value.
function Pile:iter()
  checkself(self, Pile, "iter")
  return function()
    while self._head <= self._tail do
      local i = self._head
      local g = self._calls[i]
      g:join()
      self._calls[i], self._head = nil, i + 1
      local err = self._errors[g]
      if err ~= nil then
        self._errors[g] = nil
        error(err, 0)
      end
      local v = g.value
      if v ~= nil then return v end
    end
    return nil
  end
end

-- #pile: how many calls have not been read yet.
function Pile:__len()
  return self._tail - self._head + 1
end

function Pile:__tostring()
  return ("green.Pile (%d unread)"):format(#self)
end

green.Pile = setmetatable({}, {
  __call = function(_, size_or_pool)
    local pool = size_or_pool
    if pool == nil then
      pool = green.Pool()
    elseif type(pool) == "number" then
      local n = math.tointeger(pool)
      if not n or n < 1 then
        error(("bad argument #1 to 'Pile' (positive integer expected, got %s)")
          :format(tostring(pool)), 2)
      end
      pool = green.Pool(n)
    elseif not lib.isa(pool, Group) then
      error(("bad argument #1 to 'Pile' (number or green.Pool expected, "
        .. "got %s)"):format(typename(pool)), 2)
    end
    return setmetatable({_pool = pool, _calls = {}, _head = 1, _tail = 0,
                         _errors = {}}, Pile)
  end,
})

return Pile
