-- Plain Lua coroutines driven by a tiny round-robin scheduler.
-- Runs unchanged under lua5.4 and luajit.  Usage: micro.lua PEER switch|spawn|mem [N]
-- luv is used only as a wall clock (uv.hrtime, ns).
local uv = require "luv"
local peer, bench, narg = arg[1], arg[2], tonumber(arg[3])
local now = uv.hrtime

local function status()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a") or f:read("*a")
  f:close()
  local rss = tonumber(s:match("VmRSS:%s*(%d+)")) * 1024
  local hwm = tonumber(s:match("VmHWM:%s*(%d+)")) * 1024
  return rss, hwm
end

local function result(kv)
  local t = { "RESULT", "bench=" .. bench, "peer=" .. peer }
  for _, p in ipairs(kv) do
    local v = p[2]
    if type(v) == "number" and v ~= math.floor(v) then v = string.format("%.3f", v) end
    t[#t + 1] = p[1] .. "=" .. tostring(v)
  end
  print(table.concat(t, " "))
end

local create, resume, yield, status_co = coroutine.create, coroutine.resume, coroutine.yield, coroutine.status

-- the scheduler: a FIFO run queue of coroutines; a task that yields goes back on the
-- queue, unless it yields "park" (then whoever parked it resumes it later)
local function run(queue)
  local head, tail = 1, #queue
  while head <= tail do
    local co = queue[head]
    queue[head] = nil
    head = head + 1
    local ok, what = resume(co)
    if not ok then error(what) end
    if what ~= "park" and status_co(co) ~= "dead" then
      tail = tail + 1
      queue[tail] = co
    end
  end
end

if bench == "switch" then
  local N = narg or 1000000 -- total yields (each yield + the resume that follows = one switch)
  local half = N / 2
  local function worker()
    for _ = 1, half do yield() end
  end
  local t0 = now()
  run({ create(worker), create(worker) })
  local dt = now() - t0
  result { { "ns_per_switch", dt / N } }

elseif bench == "spawn" then
  local N = narg or 200000
  local function nop() end
  local t0 = now()
  local q = {}
  for i = 1, N do q[i] = create(nop) end
  run(q) -- runs each to completion (= join)
  local dt = now() - t0
  result { { "ns_per_task", dt / N } }

elseif bench == "mem" then
  -- N coroutines parked on one "event": a table of waiters; set() resumes them all
  local N = narg or 100000
  local waiters, nwait = {}, 0
  local function wait()
    nwait = nwait + 1
    waiters[nwait] = coroutine.running()
    yield("park") -- off the run queue until set()
  end
  local function waiter() wait() end
  collectgarbage(); collectgarbage()
  local base = status()
  local t0 = now()
  local q = {}
  for i = 1, N do q[i] = create(waiter) end
  run(q) -- each runs until it parks itself in `waiters`
  local tcreate = (now() - t0) / 1e9
  local rss, hwm = status()
  local kb = collectgarbage("count")
  local parked = nwait
  -- set(): wake everyone
  local done = 0
  for i = 1, nwait do
    assert(resume(waiters[i]))
    if status_co(waiters[i]) == "dead" then done = done + 1 end
  end
  result { { "n", N }, { "ok", (parked == N and done == N) and 1 or 0 },
    { "bytes_per_task", (hwm - base) / N }, { "rss_mb", rss / 2 ^ 20 }, { "hwm_mb", hwm / 2 ^ 20 },
    { "base_mb", base / 2 ^ 20 }, { "lua_heap_mb", kb / 1024 }, { "create_s", tcreate } }
else
  error("unknown bench " .. tostring(bench))
end
