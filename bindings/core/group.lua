-- green.Group: a set of greenthreads joined and killed together, and
-- map, imap and imap_unordered over them.  green.Pool (pool.lua) is a
-- Group that bounds how many run at once; green.Pile (pile.lua) reads
-- results in spawn order.  Composed from greenthreads and green.Event.
local green = ...

local spawn, getcurrent, sleep, now = green.spawn, green.getcurrent,
  green.sleep, green.now
local Event, GreenletExit = green.Event, green.GreenletExit
local huge, max, type, next, pairs = math.huge, math.max, type, next, pairs
local getmetatable, setmetatable = getmetatable, setmetatable

-- {====== Argument checks ======

-- The type name luaL_typeerror would show: __name, else type().
local function typename(v)
  local mt = getmetatable(v)
  if type(mt) == "table" and type(mt.__name) == "string" then
    return mt.__name
  end
  return type(v)
end

-- Raises "bad argument #n to 'fname' (msg)" at the caller of the method
-- that called argerror (hence level 3).
local function argerror(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

local function iscallable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

local function isgreenthread(v)
  return type(v) == "userdata" and typename(v) == "green.Greenthread"
end

-- True if v is an object of `class` or of a class built on it (Pool on
-- Group): every class table names its own class in _class_<name>.
local function isa(v, class)
  local mt = type(v) == "table" and getmetatable(v)
  return type(mt) == "table" and mt[class._key] == true
end

-- Raises "calling 'fname' on bad self (green.Group expected, got ...)".
local function checkself(self, class, fname, level)
  if not isa(self, class) then
    error(("calling '%s' on bad self (%s expected, got %s)")
      :format(fname, class.__name, typename(self)), level or 3)
  end
end

local function checktimeout(timeout, n, fname)
  if timeout ~= nil and type(timeout) ~= "number" then
    error(("bad argument #%d to '%s' (number expected, got %s)")
      :format(n, fname, typename(timeout)), 3)
  end
end
-- }======

-- {====== Group ======

local Group = {__name = "green.Group", _key = "_class_group",
               _class_group = true}
Group.__index = Group

-- Body of every greenthread Group:spawn makes.  Its to-be-closed variable
-- takes it out of the group however fn ends (return, error, kill), while
-- fn's error value and traceback stay untouched.
local function run(grp, fn, ...)
  grp._unstarted[getcurrent()] = nil
  local _ <close> = grp._closer
  return fn(...)
end

-- __close of a group's _closer: runs in the member that is ending.
local closermeta = {__close = function(c) c.grp:_ended(getcurrent()) end}

local function newgroup(class)
  local grp = setmetatable({
    _members = {},    -- g -> true, or the map state that spawned it
    _n = 0,           -- how many members
    _unstarted = {},  -- members spawned here whose body has not begun
    _added = {},      -- members added with add(): they end on their own
  }, class)
  grp._closer = setmetatable({grp = grp}, closermeta)
  return grp
end

-- The slot hooks Pool overrides: a Group never waits for room.
-- luacheck: push no unused args
function Group:_tryacquire() return true end
function Group:_acquire() return true end
function Group:_release() end
-- luacheck: pop

-- Takes g out of the member set and gives back its slot.
function Group:_remove(g)
  self._members[g] = nil
  self._unstarted[g] = nil
  self._added[g] = nil
  self._n = self._n - 1
  self:_release()
end

-- g has ended (or will never run): it leaves the group, and a map state
-- waiting for its result hears it was killed.
function Group:_ended(g)
  local owner = self._members[g]
  if owner == nil then return end
  self:_remove(g)
  if owner ~= true then owner:_lost(g) end
end

-- Spawns fn(...) as a member owned by `owner` (true or a map state);
-- the caller has taken its slot.
function Group:_start(owner, fn, ...)
  local g = spawn(run, self, fn, ...)
  self._members[g] = owner
  self._unstarted[g] = true
  self._n = self._n + 1
  return g
end

-- Members whose end the group is not told of at once: those killed
-- before they started (their body never runs) and added ones whose link
-- has not run yet.  Removes the ones that have ended.
function Group:_prune()
  for g in pairs(self._unstarted) do
    if g:ready() then self:_ended(g) end
  end
  for g in pairs(self._added) do
    if g:ready() then self:_ended(g) end
  end
end

-- Before waiting for members to end: lets the members that have not
-- started run once (sleep(0)), so that those killed before starting are
-- found and removed; a wait for them would never end (pool_spec: "lets
-- a waiting spawn go when a member not started yet is killed").
function Group:_settle()
  self:_prune()
  if next(self._unstarted) ~= nil then
    sleep(0)
    self:_prune()
  end
end

-- grp:spawn(fn, ...) -> g: fn(...) in a new member greenthread.
function Group:spawn(fn, ...)
  checkself(self, Group, "spawn")
  if not iscallable(fn) then
    argerror(1, "spawn", "function expected, got " ..
      (select("#", ...) == 0 and fn == nil and "no value" or typename(fn)))
  end
  self:_acquire()
  return self:_start(true, fn, ...)
end

-- grp:add(g): g becomes a member until it ends.  A greenthread that has
-- ended is not added.
function Group:add(g)
  checkself(self, Group, "add")
  if not isgreenthread(g) then
    argerror(1, "add", "green.Greenthread expected, got " .. typename(g))
  end
  if self._members[g] ~= nil or g:ready() then return end
  self:_acquire()
  if self._members[g] ~= nil or g:ready() then  -- changed while waiting
    self:_release()
    return
  end
  self._members[g] = true
  self._added[g] = true
  self._n = self._n + 1
  if not self._linker then
    self._linker = function(x) self:_ended(x) end
  end
  g:link(self._linker)
end

-- grp:discard(g): g is no longer a member (it goes on running).
function Group:discard(g)
  checkself(self, Group, "discard")
  if not isgreenthread(g) then
    argerror(1, "discard", "green.Greenthread expected, got " .. typename(g))
  end
  if self._members[g] ~= nil then self:_remove(g) end
end

-- grp:has(g) -> true if g is a member.
function Group:has(g)
  checkself(self, Group, "has")
  self:_prune()
  return self._members[g] ~= nil
end

-- #grp: how many members have not ended.
function Group:__len()
  self:_prune()
  return self._n
end

function Group:__tostring()
  return ("%s (%d members)"):format(getmetatable(self).__name, #self)
end

-- grp:join([timeout]) -> true once the group is empty, or nil, "timeout".
-- Joins the members one by one: all must end anyway.  A member cannot
-- join its own group (it would wait for itself).
function Group:join(timeout)
  checkself(self, Group, "join")
  checktimeout(timeout, 1, "join")
  local deadline = timeout and now() + timeout
  local cur = getcurrent()
  while true do
    self:_prune()
    local g = next(self._members)
    if g == nil then return true end
    if self._members[cur] ~= nil then
      error("cannot join a group from one of its members", 2)
    end
    if not g:join(deadline and max(0, deadline - now())) then
      return nil, "timeout"
    end
    self:_ended(g)  -- no-op unless its end was not reported yet
  end
end

-- Members other than the current greenthread and those in `skip`, in
-- spawn order.
local function others(grp, skip)
  local cur, list = getcurrent(), {}
  for g in pairs(grp._members) do
    if g ~= cur and not skip[g] then list[#list + 1] = g end
  end
  table.sort(list, function(a, b) return a.id < b.id end)
  return list
end

-- grp:kill([err]): raises err (default GreenletExit) in every member but
-- the caller, and waits for them to end.  Members spawned meanwhile are
-- killed too.
function Group:kill(err)
  checkself(self, Group, "kill")
  local killed = {}
  while true do
    self:_prune()
    local list = others(self, killed)
    if #list == 0 then return end
    for _, g in ipairs(list) do
      killed[g] = true
      g:kill(err, false)
    end
    for _, g in ipairs(list) do
      g:join()
      self:_ended(g)
    end
  end
end
-- }======

-- {====== map, imap and imap_unordered ======
--
-- A map state pulls items from the iterable and spawns fn(item) as
-- members of the group, only as the consumer asks for results (so an
-- abandoned iteration leaves nothing blocked behind), keeping the
-- results in flight plus those unread within `maxsize` and, in a Pool,
-- the members within its size.  Each worker catches fn's error and
-- hands it over with its result; the consumer raises it.

local Map = {}
Map.__index = Map

local function items(iterable)
  if type(iterable) == "function" then return iterable end
  local i = 0
  return function()
    i = i + 1
    return iterable[i]
  end
end

local function newmap(grp, fn, iterable, ordered, maxsize)
  return setmetatable({
    grp = grp, fn = fn, pull = items(iterable), ordered = ordered,
    maxsize = maxsize,
    exhausted = false, closed = false,
    stash = nil,      -- an item pulled, waiting for a slot
    spawned = 0,      -- index of the last item spawned
    inflight = 0, unread = 0,
    pending = {},     -- worker g -> item index
    ok = {}, res = {}, idx = {},  -- results: ordered by index, else FIFO
    head = 1, tail = 0,           -- the FIFO (unordered), next index (ordered)
    ev = Event(), waiting = false,
  }, Map)
end

-- Body of a worker: fn(item) under pcall; a GreenletExit (the worker was
-- killed) counts as a result, as g.value would be.
local function work(st, i, item)
  local ok, v = pcall(st.fn, item)
  if not ok and v == GreenletExit then ok = true end
  st:_deliver(getcurrent(), i, ok, v)
end

function Map:_deliver(g, i, ok, v)
  if self.pending[g] == nil then return end
  self.pending[g] = nil
  self.inflight = self.inflight - 1
  if self.closed then return end
  self.unread = self.unread + 1
  local slot = i  -- ordered: the item's index
  if not self.ordered then
    slot = self.tail + 1
    self.tail = slot
    self.idx[slot] = i
  end
  self.ok[slot], self.res[slot] = ok, v
  if self.waiting then self.ev:set() end
end

-- A worker was killed before it started: its result is GreenletExit
-- (group_spec: "passes GreenletExit for calls killed before they
-- started").
function Map:_lost(g)
  local i = self.pending[g]
  if i then self:_deliver(g, i, true, GreenletExit) end
end

-- Spawns workers while there are items, room under maxsize and free
-- slots; with `block`, waits for a slot for the first one.  Returns true
-- if it spawned any.
function Map:_fill(block)
  local grp, spawned = self.grp, false
  while not self.exhausted and self.inflight + self.unread < self.maxsize do
    if self.stash == nil then
      local item = self.pull()
      if item == nil then
        self.exhausted = true
        break
      end
      self.stash = item
    end
    if not grp:_tryacquire() then
      if not block then break end
      grp:_acquire()
      if self.closed then grp:_release() break end
    end
    block = false
    local item = self.stash
    self.stash = nil
    self.spawned = self.spawned + 1
    local g = grp:_start(self, work, self, self.spawned, item)
    self.pending[g] = self.spawned
    self.inflight = self.inflight + 1
    spawned = true
  end
  return spawned
end

-- Takes the next result: index, ok, value; nil if none is ready.
function Map:_take()
  local slot = self.head
  local ok = self.ok[slot]
  if ok == nil then return nil end
  local v, i = self.res[slot], slot
  self.ok[slot], self.res[slot] = nil, nil
  self.head = slot + 1
  self.unread = self.unread - 1
  if not self.ordered then
    i = self.idx[slot]
    self.idx[slot] = nil
  end
  return i, ok, v
end

-- Waits for the next result: index, ok, value; nil once every item has
-- been handed over.
function Map:_step()
  local settled = false
  while true do
    if self:_fill() then settled = false end
    local i, ok, v = self:_take()
    if i then return i, ok, v end
    if self.inflight == 0 then
      if self.exhausted or self.closed then return nil end
      self:_fill(true)  -- the group's slots are all taken by others
    elseif not settled and next(self.grp._unstarted) ~= nil then
      settled = true    -- let new workers start (or be found killed)
      self.grp:_settle()
    else
      self.waiting = true
      self.ev:clear()
      self.ev:wait()
      self.waiting = false
    end
  end
end

-- Ends the iteration: kills the workers still running and waits for
-- them, so that their slots are free when map returns or raises.
function Map:close()
  if self.closed then return end
  self.closed, self.exhausted, self.stash = true, true, nil
  self.ok, self.res, self.idx = {}, {}, {}
  local list = {}
  for g in pairs(self.pending) do list[#list + 1] = g end
  if #list == 0 then return end
  table.sort(list, function(a, b) return a.id < b.id end)
  for _, g in ipairs(list) do g:kill(nil, false) end
  for _, g in ipairs(list) do
    g:join()
    self.grp:_ended(g)
  end
end
Map.__close = Map.close

local function checkmap(self, fname, fn, iterable, maxsize)
  checkself(self, Group, fname, 4)
  if not iscallable(fn) then
    error(("bad argument #1 to '%s' (function expected, got %s)")
      :format(fname, typename(fn)), 3)
  end
  if type(iterable) ~= "table" and type(iterable) ~= "function" then
    error(("bad argument #2 to '%s' (table or function expected, got %s)")
      :format(fname, typename(iterable)), 3)
  end
  if maxsize ~= nil then
    if type(maxsize) ~= "number" then
      error(("bad argument #3 to '%s' (number expected, got %s)")
        :format(fname, typename(maxsize)), 3)
    elseif maxsize < 1 or maxsize ~= maxsize then  -- NaN too
      error(("bad argument #3 to '%s' (maxsize must be at least 1)")
        :format(fname), 3)
    end
  end
end

-- grp:map(fn, iterable) -> the array of fn(item)'s first results, in
-- input order (a nil result leaves a hole).  The first error of fn is
-- raised here, after the other calls still running are killed.
function Group:map(fn, iterable)
  checkmap(self, "map", fn, iterable)
  local st <close> = newmap(self, fn, iterable, false, huge)
  local out = {}
  while true do
    local i, ok, v = st:_step()
    if i == nil then return out end
    if not ok then
      st:close()
      error(v, 0)
    end
    out[i] = v
  end
end

-- The iterator of imap and imap_unordered, with the map state as the
-- closing value of a generic for: leaving the loop early (break, error)
-- kills the calls still running.  fn's error is raised where its result
-- would come; the iteration then ends.  nil results are skipped: a
-- generic for would stop at them.
local function iterate(st)
  return function()
    while not st.closed do
      local i, ok, v = st:_step()
      if i == nil then break end
      if not ok then
        st:close()
        error(v, 0)
      end
      if v ~= nil then return v end
    end
    st:close()
    return nil
  end, nil, nil, st
end

-- The default bound on results in flight plus unread: none in a Group
-- (it bounds nothing), the size in a Pool.
function Group:_maxsize() return huge end  -- luacheck: ignore 212

-- grp:imap(fn, iterable, [maxsize]) -> an iterator over fn(item)'s first
-- results, in input order.
function Group:imap(fn, iterable, maxsize)
  checkmap(self, "imap", fn, iterable, maxsize)
  return iterate(newmap(self, fn, iterable, true, maxsize or self:_maxsize()))
end

-- grp:imap_unordered(fn, iterable, [maxsize]) -> an iterator over
-- fn(item)'s first results, as they complete.
function Group:imap_unordered(fn, iterable, maxsize)
  checkmap(self, "imap_unordered", fn, iterable, maxsize)
  return iterate(newmap(self, fn, iterable, false,
                        maxsize or self:_maxsize()))
end
-- }======

-- What pool.lua and pile.lua build on; not part of the API.
Group._lib = {
  newgroup = newgroup, typename = typename, iscallable = iscallable,
  isa = isa, checkself = checkself, checktimeout = checktimeout,
}

green.Group = setmetatable({}, {
  __call = function() return newgroup(Group) end,
})

return Group
