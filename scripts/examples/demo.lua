-- A first look at greenlua: greenthreads that block anywhere, time out,
-- and come by the hundred thousand.  Run: build/greenlua scripts/examples/demo.lua
local green = require "green"

print("1. Three greenthreads interleave; each blocks in green.sleep:")
local T0 = green.now()
local function worker(name, n, pause)
  for i = 1, n do
    print(("   %-6s step %d  (t=%.2f s)"):format(name, i, green.now() - T0))
    green.sleep(pause)
  end
  return name .. " done"
end
local ws = {green.spawn(worker, "alpha", 3, 0.03), green.spawn(worker, "beta", 2, 0.05),
            green.spawn(worker, "gamma", 4, 0.02)}
green.joinall(ws)
for _, w in ipairs(ws) do io.write("   ", w.value, "\n") end

print("\n2. Blocking inside a table.sort comparator (a C-call boundary):")
local ticks = 0
local ticker = green.spawn(function()
  while true do ticks = ticks + 1; green.sleep(0) end
end)
local t = {5, 2, 8, 1, 9, 3}
table.sort(t, function(a, b) green.sleep(0); return a < b end)
print(("   sorted: %s, while another greenthread ran %d times"):format(
  table.concat(t, " "), ticks))
ticker:kill()

print("\n3. A Timeout interrupts a blocked call:")
print("   with_timeout(0.05, sleep 10 s) ->", green.with_timeout(0.05, green.sleep, 10))

print("\n4. 100,000 greenthreads, each sleeping 10 ms, then joined:")
local t0, n, done = green.now(), 100000, 0
local gs = {}
for i = 1, n do gs[i] = green.spawn(function() green.sleep(0.01); done = done + 1 end) end
green.joinall(gs)
print(("   %d finished in %.2f s"):format(done, green.now() - t0))

print("\n5. An error in a greenthread is reported and the program goes on:")
local bad = green.spawn(function() error("something broke") end)
bad:join()
print(("   bad:successful() = %s, bad.error = %s"):format(
  tostring(bad:successful()), tostring(bad.error)))
