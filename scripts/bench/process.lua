-- spawn process: N runs of /bin/true, 50 at a time (default 1,000), each
-- spawned and waited for by a greenthread of a Pool of 50 -> runs per
-- second.  Usage: greenlua scripts/bench/process.lua [N]
local lib = dofile((arg[0]:match("^(.*)/") or ".") .. "/lib/benchlib.lua")
local green = lib.green { "Pool", "now", "subprocess.spawn" }

local N, PAR = lib.narg(1000), 50
local spawn = green.subprocess.spawn
local argv = {"/bin/true"}
local errors = 0

local function run()
  local p = spawn(argv)
  if not p or p:wait() ~= 0 then errors = errors + 1 end
end

local pool = green.Pool(PAR)
local t0 = green.now()
for _ = 1, N do pool:spawn(run) end
pool:join()
local dt = green.now() - t0
lib.result("process", { { "n", N }, { "runs_per_s", N / dt },
                        { "errors", errors } })
