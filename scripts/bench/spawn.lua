-- spawn: N trivial greenthreads spawned, then all joined (default 200,000)
-- -> ns per task.  Usage: greenlua scripts/bench/spawn.lua [N] [watchdog]
local lib = dofile((arg[0]:match("^(.*)/") or ".") .. "/lib/benchlib.lua")
local green = lib.green { "spawn", "joinall", "now" }

local N = lib.narg(200000)
lib.options(green)
local spawn = green.spawn
local function nop() end

local t0 = green.now()
local gs = {}
for i = 1, N do gs[i] = spawn(nop) end
local done = green.joinall(gs)
local dt = green.now() - t0
if #done ~= N then
  error(string.format("joinall returned %d of %d greenthreads", #done, N))
end
lib.result("spawn", { { "n", N }, { "ns_per_task", dt / N * 1e9 } })
