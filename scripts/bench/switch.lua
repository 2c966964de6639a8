-- switch: two greenthreads alternately yield to the scheduler with
-- green.sleep(0); N switches in all (default 1,000,000) -> ns per switch.
-- Usage: greenlua scripts/bench/switch.lua [N] [watchdog]
local lib = dofile((arg[0]:match("^(.*)/") or ".") .. "/lib/benchlib.lua")
local green = lib.green { "spawn", "sleep", "joinall", "now" }

local N = lib.narg(1000000)
lib.options(green)
local half = N // 2
local sleep = green.sleep

local function worker()
  for _ = 1, half do sleep(0) end
end

local t0 = green.now()
green.joinall { green.spawn(worker), green.spawn(worker) }
local dt = green.now() - t0
lib.result("switch", { { "n", 2 * half }, { "ns_per_switch", dt / (2 * half) * 1e9 } })
