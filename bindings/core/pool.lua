-- green.Pool: a Group (group.lua) whose spawn and add wait while `size`
-- of its greenthreads are running.  The slots are a green.Semaphore; a
-- member gives its slot back as it leaves the group.
local green = ...
local Group = require "green.group"
local lib = Group._lib
local checkself, checktimeout, typename = lib.checkself, lib.checktimeout,
  lib.typename
local Semaphore, max = green.Semaphore, math.max

local Pool = setmetatable({__name = "green.Pool", _key = "_class_pool",
                           _class_pool = true}, {__index = Group})
Pool.__index = Pool
Pool.__len = Group.__len
Pool.__tostring = Group.__tostring

local function checksize(n, fname)
  local i = type(n) == "number" and math.tointeger(n)
  if not i or i < 1 then
    error(("bad argument #1 to '%s' (positive integer expected, got %s)")
      :format(fname, type(n) == "number" and tostring(n) or typename(n)), 3)
  end
  return i
end

-- Slots: a member holds one from spawn (or add) until it leaves.  When
-- resize shrinks the pool below what is taken, the slots given back
-- later pay that debt instead of returning to the semaphore.
function Pool:_tryacquire()
  return self._sem:acquire(0) == true
end

function Pool:_acquire(timeout)
  if self._sem:acquire(0) then return true end
  self:_settle()  -- frees the slots of members killed before starting
  return self._sem:acquire(timeout)
end

function Pool:_release()
  if self._debt > 0 then
    self._debt = self._debt - 1
  else
    self._sem:release()
  end
end

function Pool:_maxsize() return self._size end

-- pool:free_count() -> how many more could be spawned without waiting.
function Pool:free_count()
  checkself(self, Pool, "free_count")
  return max(0, self._size - #self)
end

-- pool:full() -> true if spawn would wait.
function Pool:full()
  checkself(self, Pool, "full")
  return self:free_count() == 0
end

-- pool:wait_available([timeout]) -> true once spawn would not wait, or
-- nil, "timeout".  Takes no slot.
function Pool:wait_available(timeout)
  checkself(self, Pool, "wait_available")
  checktimeout(timeout, 1, "wait_available")
  if self._sem:count() > 0 then return true end
  local ok, err = self:_acquire(timeout)
  if not ok then return nil, err end
  self._sem:release()  -- to the next waiter, if any
  return true
end

-- pool:resize(n): at most n members from now on; members already running
-- beyond n are not killed, but no new one starts until fewer than n run.
function Pool:resize(n)
  checkself(self, Pool, "resize")
  n = checksize(n, "resize")
  local diff = n - self._size
  self._size, self.size = n, n
  while diff > 0 and self._debt > 0 do  -- growing pays the debt first
    self._debt, diff = self._debt - 1, diff - 1
  end
  for _ = 1, diff do self._sem:release() end
  while diff < 0 and self._sem:acquire(0) do diff = diff + 1 end
  if diff < 0 then self._debt = self._debt - diff end
end

green.Pool = setmetatable({}, {
  __call = function(_, size)
    if size == nil then size = 1000 end
    size = checksize(size, "Pool")
    local pool = lib.newgroup(Pool)
    pool._size, pool._debt, pool._sem = size, 0, Semaphore(size)
    pool.size = size  -- read it; change it with resize
    return pool
  end,
})

return Pool
