-- timers: 10,000 greenthreads each sleep 1..100 ms, the delays drawn from
-- MINSTD with seed 42 as every peer draws them -> total wall time and the
-- mean lateness (time slept minus time asked).
-- Usage: greenlua scripts/bench/timers.lua [N]
local lib = dofile((arg[0]:match("^(.*)/") or ".") .. "/lib/benchlib.lua")
local green = lib.green { "spawn", "sleep", "joinall", "now" }

local N = lib.narg(10000)
local ds = lib.delays(N, 42)
local late = {}
local now, sleep = green.now, green.sleep

local t0 = now()
local gs = {}
for i = 1, N do
  gs[i] = green.spawn(function()
    local d = ds[i] / 1000
    local t = now()
    sleep(d)
    late[i] = now() - t - d
  end)
end
green.joinall(gs)
local dt = now() - t0
local sum, max, early = 0, -math.huge, 0
for i = 1, N do
  local l = assert(late[i], "a sleeper did not finish")
  sum = sum + l
  if l > max then max = l end
  if l < 0 then early = early + 1 end
end
lib.result("timers", { { "n", N }, { "total_ms", dt * 1e3 }, { "mean_late_ms", sum / N * 1e3 },
  { "max_late_ms", max * 1e3 }, { "early", early } })
