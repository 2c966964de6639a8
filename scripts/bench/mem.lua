-- mem: N greenthreads (default 100,000) all blocked on one green.Event.
-- Prints two lines: RSS per greenthread once every one of them reached its
-- wait (phase=wait: (VmHWM - base) / N, as the peers measure it, plus the
-- total RSS and the creation time), and again after 2 s of idleness
-- (phase=idle: (VmRSS - base) / N).  Then sets the event and checks that
-- every greenthread finished.  A spawn that fails is reported, not hidden.
-- Usage: greenlua scripts/bench/mem.lua [N]
local lib = dofile((arg[0]:match("^(.*)/") or ".") .. "/lib/benchlib.lua")
local green = lib.green { "spawn", "sleep", "now", "Event" }

local N = lib.narg(100000)
local ev, alldone = green.Event(), green.Event()
local parked, finished = 0, 0

local function waiter()
  parked = parked + 1
  ev:wait()
  finished = finished + 1
  if finished == N then alldone:set() end
end

collectgarbage(); collectgarbage()
local base = lib.status()
local t0 = green.now()
local spawn = green.spawn
local created, err = 0, nil
-- One pcall around the loop, as the peers call their spawn bare: a spawn
-- that fails ends the loop with `created` counting the ones before it.
local ok, e = pcall(function()
  for i = 1, N do
    spawn(waiter)
    created = i
  end
end)
if not ok then err = tostring(e) end
-- sleep(0) runs every runnable greenthread once: each one reaches ev:wait()
for _ = 1, 10 do
  green.sleep(0)
  if parked >= created then break end
end
local tcreate = green.now() - t0
local rss, hwm = lib.status()
local function quoted(s) return '"' .. s:gsub("\n.*", ""):gsub("%s+", "_"):gsub('"', "'") .. '"' end
lib.result("mem", { { "phase", "wait" }, { "n", N }, { "ok", (parked == N) and 1 or 0 },
  { "created", created }, { "parked", parked },
  { "bytes_per_task", (hwm - base) / math.max(created, 1) },
  { "rss_bytes_per_task", (rss - base) / math.max(created, 1) },
  { "rss_mb", rss / 2 ^ 20 }, { "hwm_mb", hwm / 2 ^ 20 }, { "base_mb", base / 2 ^ 20 },
  { "create_s", tcreate }, { "error", err and quoted(err) or "none" } })

green.sleep(2)
local rss2 = lib.status()
lib.result("mem", { { "phase", "idle" }, { "n", N }, { "idle_s", 2 },
  { "bytes_per_task", (rss2 - base) / math.max(created, 1) }, { "rss_mb", rss2 / 2 ^ 20 } })

ev:set()
if created == N then
  assert(alldone:wait(60), "the waiters did not all finish within 60 s")
  assert(finished == N)
end
