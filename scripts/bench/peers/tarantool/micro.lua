-- Tarantool fiber micro benchmarks (no box.cfg): switch [N] | spawn [N] | spawn_create [N] | mem [N] | queue [N] | timers
local fiber = require "fiber"
local clock = require "clock"
local peer, bench, narg = "tarantool", arg[1], tonumber(arg[2])
local now = clock.monotonic

local function status()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) * 1024, tonumber(s:match("VmHWM:%s*(%d+)")) * 1024
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

local function joinable(fn, ...)
  local f = fiber.new(fn, ...)
  f:set_joinable(true)
  return f
end

if bench == "switch" then
  local N = narg or 1000000
  local function worker()
    local y = fiber.yield
    for _ = 1, N / 2 do y() end
  end
  local t0 = now()
  local a, b = joinable(worker), joinable(worker)
  a:join(); b:join()
  result { { "ns_per_switch", (now() - t0) / N * 1e9 } }

elseif bench == "spawn" then
  -- spawn N joinable fibers, then join them all.  Dead joinable fibers keep their
  -- stacks until joined, so this is bounded by vm.max_map_count (fails near 32,600 under vm.max_map_count 65530).
  local N = narg or 200000
  local function nop() end
  local t0 = now()
  local fs, created, err = {}, 0, nil
  for i = 1, N do
    local ok, f = pcall(joinable, nop)
    if not ok then err = tostring(f); break end
    fs[i] = f
    created = i
  end
  for i = 1, created do fs[i]:join() end
  result { { "n", N }, { "ok", created == N and 1 or 0 }, { "created", created },
    { "ns_per_task", (now() - t0) / math.max(created, 1) * 1e9 },
    { "error", err and ('"' .. err:gsub("%s+", "_") .. '"') or "none" } }

elseif bench == "spawn_create" then
  -- variant that fits Tarantool: fiber.create runs the new fiber at once; it dies and
  -- its stack goes back to the fiber cache before the next one is created
  local N = narg or 200000
  local done = 0
  local function nop() done = done + 1 end
  local t0 = now()
  for _ = 1, N do fiber.create(nop) end
  while done < N do fiber.yield() end
  result { { "ns_per_task", (now() - t0) / N * 1e9 } }

elseif bench == "mem" then
  local N = narg or 100000
  local cond = fiber.cond()
  local parked, finished = 0, 0
  local function waiter()
    parked = parked + 1
    cond:wait()
    finished = finished + 1
  end
  collectgarbage(); collectgarbage()
  local base = status()
  local t0 = now()
  local fs, created, err = {}, 0, nil
  for i = 1, N do
    local ok, f = pcall(fiber.new, waiter)
    if not ok then err = tostring(f); break end
    fs[i] = f
    f:set_joinable(true)
    created = i
  end
  fiber.yield() -- every created fiber runs up to cond:wait()
  local tcreate = now() - t0
  local rss, hwm = status()
  local np = parked
  cond:broadcast()
  for i = 1, created do fs[i]:join() end
  local ok = (np == N and finished == N) and 1 or 0
  result { { "n", N }, { "ok", ok }, { "created", created }, { "bytes_per_task", (hwm - base) / math.max(created, 1) },
    { "rss_mb", rss / 2 ^ 20 }, { "hwm_mb", hwm / 2 ^ 20 }, { "base_mb", base / 2 ^ 20 }, { "create_s", tcreate },
    { "error", err and ('"' .. err:gsub("%s+", "_") .. '"') or "none" } }

elseif bench == "queue" then
  local N = narg or 1000000
  local ch = fiber.channel(100)
  local t0 = now()
  local p = joinable(function() for i = 1, N do ch:put(i) end end)
  local c = joinable(function() for _ = 1, N do ch:get() end end)
  p:join(); c:join()
  result { { "ns_per_item", (now() - t0) / N * 1e9 } }

elseif bench == "timers" then
  local N = 10000
  local ds, x = {}, 42
  for i = 1, N do
    x = x * 48271 % 2147483647
    ds[i] = 1 + x % 100
  end
  local late = {}
  local t0 = now()
  local fs = {}
  for i = 1, N do
    fs[i] = joinable(function()
      local d = ds[i] / 1000
      local t = now()
      fiber.sleep(d)
      late[i] = now() - t - d
    end)
  end
  for i = 1, N do fs[i]:join() end
  local dt = now() - t0
  local sum, max = 0, 0
  for i = 1, N do sum = sum + late[i]; if late[i] > max then max = late[i] end end
  result { { "total_ms", dt * 1e3 }, { "mean_late_ms", sum / N * 1e3 }, { "max_late_ms", max * 1e3 } }
else
  error("unknown bench " .. tostring(bench))
end
os.exit(0)
